"""Reading a time window of inference records from S3, in bounded batches of columns.

mlship records are partitioned by hour (``PREFIX/model=NAME/version=V/date=YYYY-MM-DD/hour=HH/``,
see :mod:`mlship.runtime.records`); SageMaker data capture by ``PREFIX/YYYY/MM/DD/HH/``. Only the
hour partitions that overlap the window are listed, and records are filtered by their time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlship.monitoring.config import LAYOUT_CAPTURE
from mlship.runtime.records import object_records


@dataclass
class Window:
    """A half-open time interval [start, end)."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, hours: float) -> Window:
        end = end.astimezone(UTC)
        return cls(end - timedelta(hours=hours), end)

    def hours(self) -> list[datetime]:
        """The start of every hour partition that overlaps the window."""
        h = self.start.replace(minute=0, second=0, microsecond=0)
        out = []
        while h < self.end:
            out.append(h)
            h += timedelta(hours=1)
        return out

    def contains(self, stamp: str | None) -> bool:
        ts = parse_time(stamp)
        return ts is None or self.start <= ts < self.end

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_time(stamp: str | None) -> datetime | None:
    """ISO-8601 time of a record (``Z`` suffix allowed); None when absent or unreadable."""
    if not stamp:
        return None
    try:
        ts = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def hour_prefixes(prefix: str, model: str, version: str, window: Window, layout: str) -> list[str]:
    """S3 prefixes of the hour partitions to read."""
    base = prefix.strip("/")
    if layout == LAYOUT_CAPTURE:
        return [f"{base}/{h:%Y/%m/%d/%H}/" for h in window.hours()]
    return [f"{base}/model={model}/version={version}/date={h:%Y-%m-%d}/hour={h:%H}/" for h in window.hours()]


def iter_window_records(bucket: str, prefixes: list[str], window: Window, feature_names: list[str] | None = None,
                        stats: dict[str, int] | None = None, *, shadow: bool = False) -> Iterator[dict[str, Any]]:
    """Every record under the prefixes whose time falls in the window (objects read one at a time);
    ``shadow`` adds the Lambda shadow model's records (``role: shadow``)."""
    from mlship.aws.clients import client

    s3 = client("s3")
    stats = stats if stats is not None else {}

    def bad_line(_line: str) -> None:
        stats["bad_lines"] = stats.get("bad_lines", 0) + 1

    for prefix in prefixes:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                stats["objects"] = stats.get("objects", 0) + 1
                stats["bytes"] = stats.get("bytes", 0) + len(body)
                for rec in object_records(obj["Key"], body, feature_names, shadow=shadow, on_bad_line=bad_line):
                    if window.contains(rec.get("time")):
                        yield rec


@dataclass
class RecordBatch:
    """Column arrays of a batch of records: inputs, outputs and identities."""

    columns: dict[str, np.ndarray]
    predictions: list[Any]
    probabilities: list[Any] | None
    keys: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.predictions)


def batches(records: Iterator[dict[str, Any]], feature_names: list[str], size: int = 5000) -> Iterator[RecordBatch]:
    """Group records into column batches of ``size`` rows (missing inputs become None)."""
    buf: list[dict[str, Any]] = []
    for rec in records:
        buf.append(rec)
        if len(buf) >= size:
            yield to_batch(buf, feature_names)
            buf = []
    if buf:
        yield to_batch(buf, feature_names)


def to_batch(records: list[dict[str, Any]], feature_names: list[str]) -> RecordBatch:
    """Columns from a list of records."""
    present = set()
    for rec in records[:50]:
        present.update((rec.get("inputs") or {}).keys())
    cols = {}
    for name in feature_names:
        if name in present or any(name in (r.get("inputs") or {}) for r in records):
            cols[name] = np.array([(r.get("inputs") or {}).get(name) for r in records], dtype=object)
    outs = [r.get("outputs") or {} for r in records]
    preds = [o.get("prediction") for o in outs]
    probs = [o.get("probabilities") for o in outs]
    return RecordBatch(columns=cols, predictions=preds,
                       probabilities=probs if any(p is not None for p in probs) else None,
                       keys=[(str(r.get("request_id")), int(r.get("row") or 0)) for r in records])
