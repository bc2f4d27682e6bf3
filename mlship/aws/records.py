"""Inference records on S3: a batching writer and a reader (the format is :mod:`mlship.runtime.records`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from mlship.aws.clients import client
from mlship.runtime.records import DEFAULT_PREFIX, encode, object_key, object_records, utc_now


class RecordWriter:
    """Buffers records and writes them to S3 in batches (thread-safe).

    ``flush()`` writes one object per (model, version); call it when the buffer is large
    (``max_records``) or at the end of an invocation.
    """

    def __init__(self, bucket: str, prefix: str = DEFAULT_PREFIX, *, max_records: int = 1000):
        self.bucket, self.prefix, self.max_records = bucket, prefix, max_records
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            self._buffer.extend(records)
            full = len(self._buffer) >= self.max_records
        if full:
            self.flush()

    def flush(self) -> list[str]:
        """Write buffered records; return the keys written."""
        with self._lock:
            pending, self._buffer = self._buffer, []
        groups: dict[tuple[str, str], list[dict]] = {}
        for rec in pending:
            groups.setdefault((rec["model"]["name"], rec["model"]["version"]), []).append(rec)
        keys = []
        for (name, version), recs in groups.items():
            key = object_key(self.prefix, name, version, utc_now())
            client("s3").put_object(Bucket=self.bucket, Key=key, Body=encode(recs),
                                    ContentType="application/x-ndjson", ContentEncoding="gzip")
            keys.append(key)
        return keys

    def __len__(self) -> int:
        return len(self._buffer)


def read_records(bucket: str, prefix: str, feature_names: list[str] | None = None, *,
                 shadow: bool = False) -> Iterator[dict[str, Any]]:
    """Stream every record stored under an S3 prefix (mlship records or SageMaker data capture);
    ``shadow`` adds the Lambda shadow model's records (``role: shadow``)."""
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            yield from object_records(obj["Key"], body, feature_names, shadow=shadow)
