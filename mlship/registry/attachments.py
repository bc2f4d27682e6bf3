"""Reports attached to a registered version: ``models/NAME/VERSION/<folder>/<stamp>-<id>.json`` (and
its ``.html`` page) in the registry bucket, beside the version's rollout records. Load tests
(``loadtests/``) and shadow reports (``shadows/``) are attached so; the gate reads the newest."""

from __future__ import annotations

import json
from typing import Any

from mlship.registry.store import RegistryError


def attached_prefix(registry: Any, name: str, version: str, folder: str) -> str:
    """Where a version's reports of one kind are stored."""
    return f"{registry.prefix}models/{name}/{version}/{folder}/"


def attach_report(registry: Any, name: str, version: str, folder: str, report: dict[str, Any],
                  html: bytes | None = None) -> str:
    """Store ``report`` (with ``created`` and ``id``) and its page under the version; the version must
    exist. Returns the JSON object's ``s3://`` URI; keys sort by creation time."""
    from botocore.exceptions import BotoCoreError, ClientError

    registry.get_version(name, version)  # NotFoundError for a version that is not registered
    stamp = report["created"].replace(":", "").replace("-", "")
    key = f"{attached_prefix(registry, name, version, folder)}{stamp}-{report['id']}"
    body = json.dumps({**report, "model": {"name": name, "version": version}}, indent=2, default=str) + "\n"
    try:  # the page first: the JSON, which the gate reads, appears only with its page beside it
        if html is not None:
            registry.s3.put_object(Bucket=registry.bucket, Key=f"{key}.html", Body=html, ContentType="text/html")
        registry.s3.put_object(Bucket=registry.bucket, Key=f"{key}.json", Body=body.encode("utf-8"),
                               ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise RegistryError(f"cannot attach the report to {name}/{version} in s3://{registry.bucket}: {exc}") from None
    return f"s3://{registry.bucket}/{key}.json"


def latest_report(registry: Any, name: str, version: str, folder: str) -> dict[str, Any] | None:
    """The newest report of one kind attached to ``NAME/VERSION`` (None: none attached)."""
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = attached_prefix(registry, name, version, folder)
    keys: list[str] = []
    try:
        for page in registry.s3.get_paginator("list_objects_v2").paginate(Bucket=registry.bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        if not keys:
            return None
        return json.loads(registry.s3.get_object(Bucket=registry.bucket, Key=max(keys))["Body"].read())
    except (ClientError, BotoCoreError, ValueError) as exc:
        raise RegistryError(f"cannot read the {folder} report of {name}/{version} in s3://{registry.bucket}/"
                            f"{prefix}: {exc}") from None
