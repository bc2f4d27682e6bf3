"""A window too large for one process: the monitor run submitted as a Spark job on EMR Serverless.

The core only starts the job run (``client("emr-serverless").start_job_run``); the job's code
lives in the batch target (``batch/monitor_window.py``, uploaded with its code and dependencies by
``mlship batch monitor-artifacts``, which prints the ``SPARK_ENTRY_POINT`` and
``SPARK_SUBMIT_PARAMETERS`` to set). The job lists the same window, reads it in Spark partitions,
merges the partial accumulators and runs the same finish step (``mlship.monitoring.run.finish``):
it publishes the metrics, events and reports of the run, not the invocation that submitted it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mlship.monitoring.config import MonitorConfig

# what a run reads from its environment besides its configuration (mlship:// bundles, signatures):
# the job run gets the submitting process's values as arguments
FORWARDED_ENV = ("MLSHIP_REGISTRY_BUCKET", "MLSHIP_PUBLIC_KEY")


def job_arguments(config: MonitorConfig, now: datetime, env: Mapping[str, str] | None = None) -> list[str]:
    """The entry point's arguments: the run's whole configuration (JSON), its time and the
    forwarded environment (``--env NAME=VALUE``)."""
    args = ["--config", json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"), default=str),
            "--now", now.isoformat()]
    for name in FORWARDED_ENV:
        if (env or {}).get(name):
            args += ["--env", f"{name}={env[name]}"]  # type: ignore[index]
    return args


def pinned_model_uri(uri: str, name: str, version: str) -> str:
    """``mlship://NAME@ALIAS`` as the version this run resolved (query kept): the job monitors the
    version whose window was listed, even if the alias moves before the job starts."""
    base, sep, query = uri.partition("?")
    if not base.startswith("mlship://") or "@" not in base:
        return uri
    return f"mlship://{name}/{version}{sep}{query}"


def job_request(config: MonitorConfig, now: datetime, model: str,
                env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``start_job_run`` request. The client token is derived from the arguments: a retried
    invocation for the same window (same time, same settings) gets the same job run, not a second one."""
    args = job_arguments(config, now, env)
    token = hashlib.sha256("|".join([str(config.spark_application_id), *args]).encode()).hexdigest()[:32]
    spark_submit: dict[str, Any] = {"entryPoint": config.spark_entry_point, "entryPointArguments": args}
    if config.spark_submit_parameters:
        spark_submit["sparkSubmitParameters"] = config.spark_submit_parameters
    return {"applicationId": config.spark_application_id, "executionRoleArn": config.spark_job_role_arn,
            "clientToken": token, "name": f"mlship-monitor-{model}-{now:%Y%m%dT%H%M%SZ}"[:256],
            # no tags: tagging on create would need emr-serverless:TagResource besides StartJobRun
            "jobDriver": {"sparkSubmit": spark_submit}}


def submit_window_job(config: MonitorConfig, plan: Any, now: datetime, say: Callable[[str], None], *,
                      stored: int, model: tuple[str, str]) -> Any:
    """Start the job run for the window of ``plan`` (``mlship.monitoring.run.WindowPlan``) of ``model``
    (name, version); ``stored``: the bytes the run would read, label window included. The result's
    report says where the run went (``spark_job``) and carries no statistics."""
    import os
    from dataclasses import replace

    from mlship.aws.clients import client
    from mlship.monitoring.run import MonitorResult

    name, version = model
    job_config = replace(config, model_uri=pinned_model_uri(config.model_uri, name, version))
    request = job_request(job_config, now, f"{name}-{version}", os.environ)
    response = client("emr-serverless").start_job_run(**request)
    job = {"application_id": config.spark_application_id, "job_run_id": response["jobRunId"],
           "arn": response.get("arn"), "name": request["name"],
           "reason": f"{stored:,} stored bytes to read, over {config.spark_above_bytes:,}"}
    say(f"window of {len(plan.objects):,} objects ({stored:,} stored bytes to read with the label window's) "
        f"submitted as Spark job run {job['job_run_id']} of application {job['application_id']}")
    report = {"format": "mlship-monitor-report/1", "generated_at": now.isoformat(), "status": "submitted",
              "model": {"name": name, "version": version, "uri": config.model_uri}, "window": plan.window.to_dict(),
              "input": {"bucket": config.records_bucket, "prefixes": plan.prefixes, "objects": len(plan.objects),
                        "bytes": plan.bytes, "bytes_to_read": stored},
              "spark_job": job}
    return MonitorResult(report=report)
