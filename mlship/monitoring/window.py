"""Reading a time window of inference records from S3, in bounded batches of columns.

mlship records are partitioned by hour (``PREFIX/model=NAME/version=V/date=YYYY-MM-DD/hour=HH/``,
see :mod:`mlship.runtime.records`); SageMaker data capture by ``PREFIX/YYYY/MM/DD/HH/``. Only the
hour partitions that overlap the window are listed, and records are filtered by their time.
"""

from __future__ import annotations

from collections import deque
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


@dataclass(frozen=True)
class WindowObject:
    """One stored object of a window, as the listing gives it (its size is known before reading)."""

    key: str
    size: int


def list_window_objects(bucket: str, prefixes: list[str]) -> list[WindowObject]:
    """Every object under the prefixes, in listing order (prefix by prefix, keys ascending)."""
    from mlship.aws.clients import client

    paginator = client("s3").get_paginator("list_objects_v2")
    return [WindowObject(str(obj["Key"]), int(obj.get("Size", 0)))
            for prefix in prefixes
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])]


def iter_window_records(bucket: str, prefixes: list[str], window: Window, feature_names: list[str] | None = None,
                        stats: dict[str, int] | None = None, *, shadow: bool = False,
                        workers: int = 1, objects: list[WindowObject] | None = None) -> Iterator[dict[str, Any]]:
    """Every record under the prefixes whose time falls in the window, in listing order; ``shadow``
    adds the Lambda shadow model's records (``role: shadow``). ``workers`` > 1 fetches that many
    objects at once (:func:`iter_object_records`); ``objects``: a listing made already."""
    listing = list_window_objects(bucket, prefixes) if objects is None else objects
    yield from iter_object_records(bucket, listing, window, feature_names, stats, shadow=shadow, workers=workers)


def iter_object_records(bucket: str, objects: list[WindowObject], window: Window,
                        feature_names: list[str] | None = None, stats: dict[str, int] | None = None, *,
                        shadow: bool = False, workers: int = 1) -> Iterator[dict[str, Any]]:
    """The records of the listed objects whose time falls in the window, object by object in the
    listing's order whatever ``workers`` is (so a run is deterministic).

    Threads fetch the objects (S3 latency overlaps); this thread inflates and parses them, which is
    CPU-bound under the GIL anyway. At most ``workers`` stored objects are held besides the one
    being parsed, and that one is inflated a chunk at a time (:func:`mlship.runtime.records.iter_lines`),
    so memory is bounded by ``workers + 1`` stored objects, never by the window.
    """
    stats = stats if stats is not None else {}

    def bad_line(_line: str) -> None:
        stats["bad_lines"] = stats.get("bad_lines", 0) + 1

    for obj, body in _fetched(bucket, objects, max(1, workers)):
        stats["objects"] = stats.get("objects", 0) + 1
        stats["bytes"] = stats.get("bytes", 0) + len(body)
        for rec in object_records(obj.key, body, feature_names, shadow=shadow, on_bad_line=bad_line):
            if window.contains(rec.get("time")):
                yield rec


def _fetched(bucket: str, objects: list[WindowObject], workers: int) -> Iterator[tuple[WindowObject, bytes]]:
    """(object, stored body) in listing order, ``workers`` fetches in flight."""
    from mlship.aws.clients import client

    # botocore keeps 10 connections per client: more threads than that would open and drop one per call
    s3 = client("s3") if workers <= 10 else client("s3", max_pool_connections=workers)
    if workers == 1:
        for obj in objects:
            yield obj, _fetch(s3, bucket, obj.key)
        return
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[tuple[WindowObject, Future[bytes]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlship-window") as pool:
        try:
            for obj in objects:
                pending.append((obj, pool.submit(_fetch, s3, bucket, obj.key)))
                if len(pending) > workers:  # the oldest is parsed while `workers` others download
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:  # a consumer that stops early (or an error) must not wait for the whole window
            for _, future in pending:
                future.cancel()


def _fetch(s3: Any, bucket: str, key: str) -> bytes:
    """One object's stored body (inflated later, a chunk at a time, by the parser)."""
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


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
    # each record's inputs and outputs looked up once, not once per feature: this loop runs for
    # every row of a window (9-20 features), and the lookups were a fifth of the monitor's time
    inputs = [r.get("inputs") or {} for r in records]
    present = set()
    for inp in inputs[:50]:
        present.update(inp.keys())
    cols = {}
    for name in feature_names:
        if name in present or any(name in inp for inp in inputs):
            cols[name] = np.array([inp.get(name) for inp in inputs], dtype=object)
    outs = [r.get("outputs") or {} for r in records]
    preds = [o.get("prediction") for o in outs]
    probs = [o.get("probabilities") for o in outs]
    return RecordBatch(columns=cols, predictions=preds,
                       probabilities=probs if any(p is not None for p in probs) else None,
                       keys=[(str(r.get("request_id")), int(r.get("row") or 0)) for r in records])
