"""The window reader against moto: one listing, parallel fetches, the sequential reader's records exactly."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlship.aws.clients import client
from mlship.monitoring import window as window_module
from mlship.monitoring.config import LAYOUT_MLSHIP
from mlship.monitoring.window import (
    Window,
    hour_prefixes,
    iter_object_records,
    iter_window_records,
    list_window_objects,
)

BUCKET = "window-reader"
START = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=2))  # 09:30-11:30: three hour partitions, the first in part


def _record(i: int, ts: datetime) -> dict[str, Any]:
    return {"request_id": f"r{i}", "row": 0, "time": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "source": "lambda",
            "model": {"name": "churn", "version": "1"}, "inputs": {"age": 20 + i % 50, "gender": "fmx"[i % 3]},
            "outputs": {"prediction": i % 2, "probabilities": [0.4, 0.6]}}


def _body(lines: list[str], gz: bool) -> bytes:
    raw = ("\n".join(lines) + "\n").encode()
    return gzip.compress(raw, mtime=0) if gz else raw


@pytest.fixture
def stored(aws: None) -> tuple[list[str], int]:
    """18 objects over the window's three hour partitions (and one outside it): gzip'd and plain,
    records before the window's start and after its end, unparseable lines, Firehose's back-to-back
    documents. Returns the window's prefixes and how many records fall in it."""
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    prefixes = hour_prefixes("inference-records", "churn", "1", WINDOW, LAYOUT_MLSHIP)
    outside = hour_prefixes("inference-records", "churn", "1", Window(START + timedelta(hours=3),
                                                                      START + timedelta(hours=4)), LAYOUT_MLSHIP)
    i = inside = 0
    for h, prefix in enumerate([*prefixes, *outside]):
        for k in range(6 if h < len(prefixes) else 1):
            ts = START.replace(minute=0) + timedelta(hours=h, minutes=k * 9)
            lines = []
            for _ in range(40):
                stamp = ts + timedelta(seconds=i % 60)
                lines.append(json.dumps(_record(i, stamp)))
                inside += WINDOW.start <= stamp < WINDOW.end
                i += 1
            if k == 2:
                lines.insert(5, "{not json")
            if k == 3:  # Firehose without a delimiter: two documents on one line
                lines[7] = lines[7] + lines.pop(8)
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}part-{k:03d}.jsonl" + (".gz" if k % 2 else ""),
                          Body=_body(lines, gz=bool(k % 2)))
    return prefixes, inside


def test_listing_is_made_once_in_order(stored: tuple[list[str], int]) -> None:
    prefixes = stored[0]
    objects = list_window_objects(BUCKET, prefixes)
    assert [o.key for o in objects] == sorted(o.key for o in objects)  # hour partitions in order, keys ascending
    assert len(objects) == 18 and all(o.size > 0 for o in objects)
    assert all(o.key.startswith(tuple(prefixes)) for o in objects)


@pytest.mark.parametrize("workers", [2, 8, 32])
def test_parallel_reader_returns_what_the_sequential_one_did(stored: tuple[list[str], int], workers: int) -> None:
    prefixes, inside = stored
    one: dict[str, int] = {}
    many: dict[str, int] = {}
    sequential = list(iter_window_records(BUCKET, prefixes, WINDOW, ["age", "gender"], one))
    parallel = list(iter_window_records(BUCKET, prefixes, WINDOW, ["age", "gender"], many, workers=workers))
    assert parallel == sequential  # the same records in the same order
    assert many == one
    assert one["objects"] == 18 and one["bad_lines"] == 3  # one per hour partition
    assert one["bytes"] == sum(o.size for o in list_window_objects(BUCKET, prefixes))
    # records before 09:30 and from 11:30 were filtered out, the rest kept
    times = [r["time"] for r in sequential]
    assert min(times) >= "2026-12-01T09:30" and max(times) < "2026-12-01T11:30"
    assert len(sequential) == inside and 0 < inside < 18 * 40


def test_at_most_workers_objects_are_fetched_ahead(stored: tuple[list[str], int],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fetch = window_module._fetch
    started = 0
    lock = threading.Lock()

    def counted(s3: Any, bucket: str, key: str) -> bytes:
        nonlocal started
        with lock:
            started += 1
        return fetch(s3, bucket, key)

    monkeypatch.setattr(window_module, "_fetch", counted)
    stats: dict[str, int] = {}
    ahead = []
    objects = list_window_objects(BUCKET, stored[0])
    for _ in iter_object_records(BUCKET, objects, WINDOW, None, stats, workers=3):
        ahead.append(started - stats["objects"])
    assert max(ahead) <= 3  # fetched but not yet parsed: bounded by the worker count, not the window
    assert started == 18


def test_a_consumer_that_stops_early_does_not_read_the_window(stored: tuple[list[str], int]) -> None:
    stats: dict[str, int] = {}
    records = iter_window_records(BUCKET, stored[0], WINDOW, None, stats, workers=4)
    first = next(records)  # in the 5th object: the first four are before 09:30
    records.close()
    assert first["request_id"] == "r160" and stats["objects"] == 5


def test_stored_objects_are_inflated_a_chunk_at_a_time_as_gzip_reads_them() -> None:
    """Lines that straddle the 1 MiB chunks (and multi-byte characters cut by them), several gzip
    members, zero padding, Firehose's back-to-back documents, no final newline: the lines
    ``gzip.decompress`` + splitting give; a truncated or trailing-garbage object fails as gzip does."""
    from mlship.runtime.records import iter_lines

    text = "".join(f'{{"name":"é€☃{i}"}}\n' for i in range(150_000)) + '{"x":1}{"y":2}\n\n{"z":"ü"}'
    raw = text.encode()
    expected = [*(f'{{"name":"é€☃{i}"}}' for i in range(150_000)), '{"x":1}', '{"y":2}', '{"z":"ü"}']
    assert len(raw) > 3 << 20
    for body in (raw, gzip.compress(raw), gzip.compress(raw[:1_500_001]) + gzip.compress(raw[1_500_001:]),
                 gzip.compress(raw) + b"\0" * 8):
        assert list(iter_lines(body)) == expected
    with pytest.raises(EOFError):
        list(iter_lines(gzip.compress(raw)[:-12]))
    with pytest.raises(gzip.BadGzipFile):
        list(iter_lines(gzip.compress(raw) + b"junk"))
