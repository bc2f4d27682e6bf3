"""The AWS IoT Jobs channel: take the next pending job, apply it, report the execution status.

The agent talks to the IoT Jobs data plane (``iot-jobs-data``) through a botocore client that
is created lazily (``mlship.aws.clients.client``), only when the agent runs with ``--thing``; local
directories and HTTP(S) URLs need no AWS library at all. Pass ``client=`` to inject one
(tests use botocore's ``Stubber``: moto does not implement the IoT Jobs data plane).

Job document (written by ``mlship edge publish``, see docs/edge.md)::

    {"operation": "mlship.install", "format": "mlship-edge-job/1",
     "package": {"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY}",
                 "sha256": "...", "size": 12345, "name": "churn", "version": "1.2.0",
                 "variant": "int8-dynamic", "key_id": "...", "signature": "<base64 Ed25519>"},
     "options": {"allow_downgrade": false}}
"""

from __future__ import annotations

import json
import re
from typing import Any

from mlship.edge.agent.device import Device, InstallResult

PLACEHOLDER = "${aws:iot:s3-presigned-url:"
OPERATION = "mlship.install"
_DETAIL_KEY = re.compile(r"[^a-zA-Z0-9:_-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def status_details(result: InstallResult | None, device: Device, state: str) -> dict[str, str]:
    """IoT statusDetails: string values, no control characters, bounded size."""
    details: dict[str, Any] = {"agent": "mlship", "device_state": device.status().get("state", state)}
    if result is not None:
        details.update({"outcome": result.outcome, "version": result.version, "reason": result.reason})
    current = (device.status().get("current") or {}).get("version")
    details["current_version"] = current
    out = {}
    for key, value in details.items():
        if value is None or value == "":
            continue
        text = _CONTROL.sub(" ", str(value))[:900]
        out[_DETAIL_KEY.sub("_", key)] = text
    return out


class IotJobs:
    """One thing's job queue in AWS IoT Jobs."""

    def __init__(self, thing_name: str, client: Any = None):
        self.thing_name = thing_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlship.aws.clients import client  # boto3/botocore: only devices that use IoT Jobs need it

            self._client = client("iot-jobs-data")
        return self._client

    def next_job(self) -> dict[str, Any] | None:
        """Start the next pending job execution; None when the queue is empty."""
        resp = self.client.start_next_pending_job_execution(
            thingName=self.thing_name, statusDetails={"agent": "mlship"}
        )
        execution = resp.get("execution")
        if not execution:
            return None
        document = execution.get("jobDocument") or "{}"
        return {
            "job_id": execution["jobId"],
            "thing": self.thing_name,
            "document": _parse_document(document),
            "version_number": execution.get("versionNumber"),
        }

    def reporter(self, device: Device):  # noqa: ANN201 - returns a Reporter callable
        """A :data:`edge.agent.device.Reporter` that updates this thing's job execution."""

        def report(job: dict[str, Any], result: InstallResult | None, state: str) -> None:
            self.client.update_job_execution(
                jobId=job["job_id"],
                thingName=self.thing_name,
                status=state,
                statusDetails=status_details(result, device, state),
            )

        return report


def _parse_document(document: Any) -> Any:
    """The job document as JSON; None when it is not JSON (the job is then refused, not retried)."""
    if not isinstance(document, str):
        return document
    try:
        return json.loads(document)
    except ValueError:
        return None


def apply_job(device: Device, job: dict[str, Any]) -> InstallResult:
    """Install the package a job document describes (reporting through ``device.reporter``)."""
    doc = job.get("document") or {}
    doc = doc if isinstance(doc, dict) else {}  # a malformed document is refused below, never a crash
    package = doc.get("package") if isinstance(doc.get("package"), dict) else {}
    job_info = {"job_id": job.get("job_id"), "thing": job.get("thing")}
    if doc.get("operation") != OPERATION or not package.get("url"):
        result = InstallResult(
            "rejected", package.get("version"), f"job document is not an {OPERATION} job with a package url"
        )
        device._write_status(state=device.status().get("state", "idle"), last=result, job=job_info)
        device._report(job_info, result, "REJECTED")
        return result
    url = str(package["url"])
    if url.startswith(PLACEHOLDER):
        result = InstallResult(
            "rejected",
            package.get("version"),
            "the job's presigned-URL placeholder was not "
            "substituted by AWS IoT (create the job with presignedUrlConfig)",
            package.get("sha256"),
        )
        device._write_status(state=device.status().get("state", "idle"), last=result, job=job_info)
        device._report(job_info, result, "REJECTED")
        return result
    options = doc.get("options") if isinstance(doc.get("options"), dict) else {}
    return device.install(
        url,
        sha256=package.get("sha256"),
        size=package.get("size"),
        allow_downgrade=options.get("allow_downgrade"),
        job=job_info,
        expected_key_id=package.get("key_id"),
        announced_version=package.get("version"),
        announced_name=package.get("name"),
    )
