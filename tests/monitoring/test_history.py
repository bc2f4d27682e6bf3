"""The report history (history.json) under concurrent monitor runs: appends are conditional
writes, so no run's entry is lost (in-process moto, with S3's atomic conditions)."""

from __future__ import annotations

import json
import threading
from typing import Any

from mlship.aws.clients import client
from mlship.monitoring.publish import HISTORY_LIMIT, append_history, read_history

BASE = "reports/model=churn/version=1"


def test_concurrent_appends_keep_every_entry(aws: None, atomic_s3_conditions: None) -> None:
    client("s3").create_bucket(Bucket="reports")
    client("s3").put_object(Bucket="reports", Key=f"{BASE}/history.json", Body=b'[{"time": "t-old"}]')
    writers = 8
    barrier = threading.Barrier(writers)
    errors: list[Exception] = []

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            append_history("reports", BASE, {"time": f"t{i}", "rows": i})
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = read_history("reports", BASE)
    assert history[0] == {"time": "t-old"}
    assert sorted(e["time"] for e in history[1:]) == sorted(f"t{i}" for i in range(writers))


def test_first_entry_creates_the_history_and_the_limit_holds(aws: None) -> None:
    client("s3").create_bucket(Bucket="reports")
    assert read_history("reports", BASE) == []
    assert append_history("reports", BASE, {"time": "t0"}) == [{"time": "t0"}]
    old: list[dict[str, Any]] = [{"time": f"old{i}"} for i in range(HISTORY_LIMIT)]
    client("s3").put_object(Bucket="reports", Key=f"{BASE}/history.json", Body=json.dumps(old).encode())
    history = append_history("reports", BASE, {"time": "new"})
    assert len(history) == HISTORY_LIMIT and history[-1] == {"time": "new"} and history[0] == {"time": "old1"}
    assert read_history("reports", BASE) == history


def test_a_write_between_read_and_put_is_retried_not_overwritten(aws: None, monkeypatch: Any) -> None:
    """Deterministic interleaving: another run writes right after our first read."""
    import mlship.monitoring.publish as publish

    client("s3").create_bucket(Bucket="reports")
    append_history("reports", BASE, {"time": "t0"})
    real_read = publish._read_history
    calls = {"n": 0}

    def read_then_interfere(bucket: str, base: str) -> Any:
        result = real_read(bucket, base)
        calls["n"] += 1
        if calls["n"] == 1:  # someone else appends between our read and our conditional put
            monkeypatch.setattr(publish, "_read_history", real_read)
            append_history(bucket, base, {"time": "other"})
            monkeypatch.setattr(publish, "_read_history", read_then_interfere)
        return result

    monkeypatch.setattr(publish, "_read_history", read_then_interfere)
    history = append_history("reports", BASE, {"time": "mine"})
    assert [e["time"] for e in history] == ["t0", "other", "mine"]
    assert calls["n"] >= 2  # our first put was refused (412) and we read again
