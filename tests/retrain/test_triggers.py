"""Retraining triggers are claimed exactly once per trigger, with a cooldown per model, against
moto S3's conditional writes (made atomic as in S3: see the ``atomic_s3_conditions`` fixture)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.retrain.triggers import Trigger, TriggerError, TriggerLedger

BUCKET = "retrain-ledger"


def _event(kind: str = "DriftDetected", start: str = "2026-12-01T10:00:00+00:00", event_id: str = "e-1",
           model: str = "churn") -> dict[str, Any]:
    """An EventBridge event as the monitor sends it (``mlship/monitoring/run.py``)."""
    detail = {"model": {"name": model, "version": "1"}, "report": "s3://b/r.html",
              "window": {"start": start, "end": "2026-12-01T11:00:00+00:00"}, "share": 0.6,
              "drifted_features": ["age", "tenure_months"]}
    return {"version": "0", "id": event_id, "detail-type": kind, "source": "mlship.monitoring",
            "detail": detail}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(aws, atomic_s3_conditions) -> tuple[TriggerLedger, Clock]:
    from mlship.aws.clients import client

    client("s3").create_bucket(Bucket=BUCKET)
    clock = Clock()
    return TriggerLedger(BUCKET, cooldown_seconds=3600, clock=clock), clock


def test_the_same_event_three_times_and_two_others_in_the_cooldown_start_one_run(ledger):
    ledger, clock = ledger
    same = [Trigger.from_event(_event(event_id=f"redelivery-{i}")) for i in range(3)]  # one state change
    claims = [ledger.claim(t) for t in same]
    clock.now += 600
    others = [Trigger.from_event(_event("PerformanceDegraded", start="2026-12-01T10:10:00+00:00")),
              Trigger.from_event(_event(start="2026-12-01T10:20:00+00:00"))]
    claims += [ledger.claim(t) for t in others]
    assert [c.outcome for c in claims] == ["started", "duplicate", "duplicate", "cooldown", "cooldown"]
    run = claims[0].run_id
    assert all(c.run_id == run for c in claims)  # every skipped trigger names the run it belongs to or waits for
    assert "cooldown of 3600 s ends in 3000 s" in claims[3].reason
    records = ledger.records("churn")
    assert [r["outcome"] for r in records] == ["started", "cooldown", "cooldown"]  # duplicates write nothing
    clock.now += 3600
    later = ledger.claim(Trigger.from_event(_event(start="2026-12-01T12:00:00+00:00")))
    assert later.started and later.run_id != run


def test_concurrent_claims_of_different_triggers_start_exactly_one_run(ledger):
    ledger, _ = ledger
    triggers = [Trigger.from_event(_event(start=f"2026-12-01T10:{i:02d}:00+00:00")) for i in range(8)]
    claims: list[Any] = []
    lock = threading.Lock()

    def claim(trigger: Trigger) -> None:
        result = ledger.claim(trigger)
        with lock:
            claims.append(result)

    threads = [threading.Thread(target=claim, args=(t,)) for t in triggers * 2]  # each one twice
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcomes = sorted(c.outcome for c in claims)
    assert outcomes.count("started") == 1 and outcomes.count("duplicate") == 8 and outcomes.count("cooldown") == 7


def test_both_events_of_one_monitor_run_are_one_trigger():
    drift, degraded = Trigger.from_event(_event()), Trigger.from_event(_event("PerformanceDegraded", event_id="e-2"))
    assert drift.key == degraded.key and drift.kind != degraded.kind
    assert "2 features drifted" in drift.reason
    detail_as_text = {**_event(), "detail": json.dumps(_event()["detail"])}  # the PutEvents form
    assert Trigger.from_event(detail_as_text).key == drift.key


BAD_EVENTS = st.one_of(
    st.sampled_from([None, [], "DriftDetected", {"detail-type": "ScaleUp", "detail": {}},
                     {"detail-type": "DriftDetected", "detail": "{not json"},
                     {"detail-type": "DriftDetected", "detail": {"window": {}}},
                     {"detail-type": "DriftDetected", "detail": {"model": {"name": "churn"}}}]),
    st.dictionaries(st.sampled_from(["detail-type", "detail", "id"]),
                    st.one_of(st.none(), st.text(max_size=8), st.integers()), max_size=3))


@settings(max_examples=80, deadline=None)
@given(BAD_EVENTS)
def test_what_is_not_a_trigger_is_refused_by_name(event):
    with pytest.raises(TriggerError):
        Trigger.from_event(event)


def test_a_manual_trigger_is_one_per_model_reason_and_minute():
    assert Trigger.manual("churn", "fresh data", now=60).key == Trigger.manual("churn", "fresh data", now=119).key
    assert Trigger.manual("churn", "fresh data", now=60).key != Trigger.manual("churn", "fresh data", now=120).key
    assert Trigger.manual("churn", "a", now=60).key != Trigger.manual("churn", "b", now=60).key
