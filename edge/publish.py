"""``mlship edge publish`` / ``mlship edge status``: S3 upload and an AWS IoT Job for a thing group.

The package goes to ``s3://BUCKET/edge-packages/NAME/VERSION/FILE``. The job targets the
thing group ``mlship-<env>-devices`` (continuous: devices added later get it too), uses the
job template ``mlship-<env>-model-rollout`` when it exists (rollout rate and abort criteria
come from there, provisioned by infra) and carries the job document described in
:mod:`edge.agent.iot`, with a presigned-URL placeholder that AWS IoT replaces per device
(``presignedUrlConfig``: the role must allow ``s3:GetObject`` on the prefix).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from mlship.edge.agent.iot import OPERATION
from mlship.edge.package import EDGE_FORMAT

from mlship.errors import MlshipError
from mlship.runtime.archive import extract_tarball
from mlship.runtime.bundle import SIGNATURE, Bundle
from mlship.runtime.hashing import sha256_file
from mlship.runtime.versions import InvalidVersionError, parse_version

PREFIX = "edge-packages/"
JOB_FORMAT = "mlship-edge-job/1"
MAX_DOCUMENT_BYTES = 32 * 1024  # AWS IoT job document limit
ABORT_CONFIG = {
    "criteriaList": [
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 20.0, "minNumberOfExecutedThings": 5}
    ]
}
ROLLOUT_CONFIG = {"maximumPerMinute": 50}


class PublishError(MlshipError):
    """The package cannot be published (not an edge package, AWS refused, document too large)."""

    kind = "edge-publish"


def thing_group(env: str) -> str:
    return f"mlship-{env}-devices"


def job_template(env: str) -> str:
    return f"mlship-{env}-model-rollout"


def presign_role_arn(env: str) -> str:
    """Default role IoT assumes to presign the download URL (provisioned by infra)."""
    from mlship.aws.clients import client

    account = client("sts").get_caller_identity()["Account"]
    return f"arn:aws:iam::{account}:role/mlship-{env}-edge-presign"


def read_package(package: str | Path) -> tuple[Bundle, dict[str, Any]]:
    """Open and hash-check a package; return it and its signature record."""
    path = Path(package)
    if not path.is_file():
        raise PublishError(f"package not found: {path}")
    bundle = Bundle(extract_tarball(path))
    bundle.verify()
    edge = bundle.manifest.get("edge") or {}
    if edge.get("format") != EDGE_FORMAT:
        raise PublishError(
            f"{path.name} is not an edge package (no '{EDGE_FORMAT}' manifest section): "
            "build one with `mlship edge build`"
        )
    if not bundle.is_signed:
        raise PublishError(f"{path.name} is not signed: devices would refuse it")
    try:
        parse_version(bundle.version)  # devices order versions by PEP 440 and refuse any other
    except InvalidVersionError as exc:
        raise PublishError(f"{path.name}: {exc}: devices would refuse it") from None
    return bundle, bundle.read_json(SIGNATURE)


def job_document(
    bundle: Bundle,
    signature: dict[str, Any],
    *,
    bucket: str,
    key: str,
    sha256: str,
    size: int,
    allow_downgrade: bool = False,
) -> dict[str, Any]:
    """The IoT job document for one package (see :mod:`edge.agent.iot`)."""
    edge = bundle.manifest["edge"]
    return {
        "operation": OPERATION,
        "format": JOB_FORMAT,
        "package": {
            "url": f"${{aws:iot:s3-presigned-url:https://s3.amazonaws.com/{bucket}/{key}}}",
            "sha256": sha256,
            "size": size,
            "name": bundle.name,
            "version": bundle.version,
            "variant": edge.get("variant"),
            "key_id": signature.get("key_id"),
            "signature": signature.get("signature"),
            "min_onnxruntime": (edge.get("constraints") or {}).get("min_onnxruntime"),
        },
        "options": {"allow_downgrade": bool(allow_downgrade)},
    }


def _job_id(name: str, version: str, variant: str) -> str:
    raw = f"mlship-{name}-{version}-{variant}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    return re.sub(r"[^a-zA-Z0-9_-]", "-", raw)[-64:].lstrip("-_")


def publish(
    package: str | Path,
    *,
    bucket: str,
    env: str = "dev",
    group: str | None = None,
    role_arn: str | None = None,
    expires_in: int = 3600,
    allow_downgrade: bool = False,
    create_group: bool = False,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Upload a package and create the IoT job; return ids, URIs and the job document."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import client

    path = Path(package)
    bundle, signature = read_package(path)
    digest, size = sha256_file(path), path.stat().st_size
    key = f"{PREFIX}{bundle.name}/{bundle.version}/{path.name}"
    document = job_document(
        bundle, signature, bucket=bucket, key=key, sha256=digest, size=size, allow_downgrade=allow_downgrade
    )
    text = json.dumps(document, separators=(",", ":"))
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise PublishError(f"job document is {len(text.encode())} bytes, over the IoT limit of {MAX_DOCUMENT_BYTES}")
    group = group or thing_group(env)
    iot, s3 = client("iot"), client("s3")
    try:
        s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest, "version": bundle.version}})
        group_arn = _thing_group_arn(iot, group, create_group)
        kwargs: dict[str, Any] = {
            "jobId": job_id or _job_id(bundle.name, bundle.version, document["package"]["variant"] or "model"),
            "targets": [group_arn],
            "document": text,
            "targetSelection": "CONTINUOUS",
            "description": f"install {bundle.name} {bundle.version} ({document['package']['variant']})",
            "presignedUrlConfig": {"roleArn": role_arn or presign_role_arn(env), "expiresInSec": int(expires_in)},
        }
        template = _apply_job_template(iot, job_template(env), kwargs)
        job = iot.create_job(**kwargs)
    except PublishError:
        raise
    except (ClientError, BotoCoreError) as exc:
        raise PublishError(f"publishing {path.name} failed: {exc}") from None
    return {
        "job_id": job["jobId"],
        "job_arn": job["jobArn"],
        "s3_uri": f"s3://{bucket}/{key}",
        "sha256": digest,
        "size": size,
        "thing_group": group,
        "job_template": template,
        "document": document,
        "document_bytes": len(text.encode()),
    }


def _thing_group_arn(iot: Any, group: str, create: bool) -> str:
    """The thing group's ARN; a missing group is created only when ``create`` is set."""
    from botocore.exceptions import ClientError

    try:
        return str(iot.describe_thing_group(thingGroupName=group)["thingGroupArn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException" or not create:
            raise PublishError(
                f"thing group {group} not found ({exc.response['Error']['Code']}): deploy the "
                "edge infrastructure or pass --create-group"
            ) from None
    return str(iot.create_thing_group(thingGroupName=group)["thingGroupArn"])


def _apply_job_template(iot: Any, template: str, job_kwargs: dict[str, Any]) -> str | None:
    """Point the job at the rollout template when it exists (its rollout and abort settings win),
    else set the default ones; return the template used, or None."""
    from botocore.exceptions import ClientError

    try:
        job_kwargs["jobTemplateArn"] = iot.describe_job_template(jobTemplateId=template)["jobTemplateArn"]
    except ClientError:
        job_kwargs.update(abortConfig=ABORT_CONFIG, jobExecutionsRolloutConfig=ROLLOUT_CONFIG)
        return None
    return template


def status(job_id: str) -> dict[str, Any]:
    """The job's status, counts per state and every execution with its status details."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import client

    iot = client("iot")
    try:
        job = iot.describe_job(jobId=job_id)["job"]
        executions = []
        for page in iot.get_paginator("list_job_executions_for_job").paginate(jobId=job_id):
            for item in page.get("executionSummaries", []):
                thing = item["thingArn"].rsplit("/", 1)[-1]
                summary = item.get("jobExecutionSummary", {})
                entry = {
                    "thing": thing,
                    "status": summary.get("status"),
                    "execution_number": summary.get("executionNumber"),
                }
                try:
                    described = iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]
                    entry["details"] = (described.get("statusDetails") or {}).get("detailsMap", {})
                except ClientError:
                    entry["details"] = {}
                executions.append(entry)
    except ClientError as exc:
        raise PublishError(f"cannot read job {job_id}: {exc.response['Error']['Message']}") from None
    except BotoCoreError as exc:
        raise PublishError(f"cannot read job {job_id}: {exc}") from None
    return {
        "job_id": job_id,
        "status": job.get("status"),
        "targets": job.get("targets"),
        "counts": job.get("jobProcessDetails", {}),
        "executions": executions,
    }
