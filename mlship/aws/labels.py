"""Late ground-truth labels in S3: JSON Lines under ``s3://BUCKET/PREFIX/model=NAME/`` (any
sub-layout), each line ``{"request_id": ..., "row": 0, "label": ...}``; ``(request_id, row)`` joins
a label to its inference record (see :mod:`mlship.runtime.records`). The monitor, the A/B
analysis and the shadow report read them through :func:`read_labels`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mlship.aws.clients import client
from mlship.runtime.records import iter_lines


def read_labels(bucket: str, prefix: str, model: str | None = None, since: datetime | None = None,
                stats: dict[str, int] | None = None) -> dict[tuple[str, int], Any]:
    """``(request_id, row) -> label`` from the label objects of ``model`` (every model when None)
    modified at or after ``since``; lines that are not labels are counted in ``stats`` and skipped."""
    s3 = client("s3")
    stats = stats if stats is not None else {}
    labels: dict[tuple[str, int], Any] = {}
    for key in label_keys(bucket, prefix, model, since):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        stats["label_objects"] = stats.get("label_objects", 0) + 1
        for line in iter_lines(body):
            try:
                doc = json.loads(line)
                labels[(str(doc["request_id"]), int(doc.get("row") or 0))] = doc["label"]
            except (ValueError, KeyError, TypeError):
                stats["bad_label_lines"] = stats.get("bad_label_lines", 0) + 1
    return labels


def label_keys(bucket: str, prefix: str, model: str | None = None, since: datetime | None = None) -> list[str]:
    """The keys of the label objects :func:`read_labels` reads (listed only)."""
    base = f"{prefix.strip('/')}/" + (f"model={model}/" if model else "")
    return [str(obj["Key"])
            for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base)
            for obj in page.get("Contents", []) if since is None or obj["LastModified"] >= since]


def label_matches(prediction: Any, label: Any) -> bool:
    """A prediction equals a label across the JSON forms a class takes (1, 1.0, "1", true)."""
    if prediction == label:
        return True
    try:
        return float(prediction) == float(label)
    except (TypeError, ValueError):
        return str(prediction).strip().lower() == str(label).strip().lower()
