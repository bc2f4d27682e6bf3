"""Attach a load-test report to a registered version: ``models/NAME/VERSION/loadtests/<id>.json``
in the registry bucket (beside the version's rollout records). The gate reads the newest one."""

from __future__ import annotations

import json
from typing import Any

from mlship.evaluation.gate import LOADTEST_DIR, loadtest_prefix
from mlship.loadtest.errors import LoadTestError


def attach(registry: Any, name: str, version: str, report: dict[str, Any], html: bytes | None = None) -> str:
    """Store the report (and its page) under the version; returns the JSON object's ``s3://`` URI.

    The version must exist. Keys sort by creation time, so the newest report is the last key."""
    registry.get_version(name, version)  # NotFoundError for a version that is not registered
    stamp = report["created"].replace(":", "").replace("-", "")
    key = f"{loadtest_prefix(registry, name, version)}{stamp}-{report['id']}"
    body = (json.dumps({**report, "model": {"name": name, "version": version}}, indent=2, default=str) + "\n")
    from botocore.exceptions import BotoCoreError, ClientError

    try:  # the page first: the JSON, which the gate reads, appears only with its page beside it
        if html is not None:
            registry.s3.put_object(Bucket=registry.bucket, Key=f"{key}.html", Body=html, ContentType="text/html")
        registry.s3.put_object(Bucket=registry.bucket, Key=f"{key}.json", Body=body.encode("utf-8"),
                               ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise LoadTestError(f"cannot attach the report to {name}/{version} in s3://{registry.bucket}: {exc}") from None
    return f"s3://{registry.bucket}/{key}.json"


__all__ = ["LOADTEST_DIR", "attach"]
