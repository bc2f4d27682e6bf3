"""Retraining triggers, claimed exactly once, with a cooldown per model (issue 16, item 4).

A trigger is a ``DriftDetected`` / ``PerformanceDegraded`` event of the monitor (EventBridge may
deliver one state change more than once, and a monitor re-run reports the same window again),
a schedule tick or a manual request. Its **key** is the model and the monitored window when the
event has one (so both events of one monitor run, and every redelivery, are one trigger), else
the event's id, else the reason and the minute.

:meth:`TriggerLedger.claim` decides, atomically against concurrent callers, with S3 conditional
writes (``If-None-Match: *`` and ``If-Match: <etag>``, as the registry's aliases):

1. the trigger's record ``retrain/MODEL/triggers/KEY.json`` is created only if absent: a second
   claim of the same key is a ``duplicate``;
2. the model's lease ``retrain/MODEL/lease.json`` (the last run's start) is moved by
   compare-and-swap only when the cooldown has passed: a claim inside it is ``cooldown``, recorded
   with the run it waits for;
3. otherwise the claim is ``started`` and names the run.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlship.aws.clients import ConditionalWriteConflict, backoff, client, conditional_put, get_if_exists
from mlship.errors import MlshipError

TRIGGER_TYPES = ("DriftDetected", "PerformanceDegraded", "Scheduled", "Manual")


class TriggerError(MlshipError):
    """An event that is not a retraining trigger, or a ledger that cannot be written."""

    kind = "retrain_trigger"


@dataclass(frozen=True)
class Trigger:
    """What asks for a retraining run of one model."""

    model: str
    kind: str
    key: str
    reason: str
    detail: dict[str, Any]

    @classmethod
    def from_event(cls, event: Any) -> Trigger:
        """A trigger from an EventBridge event (``detail-type`` and ``detail``) of the monitor."""
        if not isinstance(event, dict):
            raise TriggerError(f"a trigger event is a JSON object, not {type(event).__name__}")
        kind = event.get("detail-type") or event.get("DetailType")
        detail = event.get("detail", event.get("Detail"))
        if isinstance(detail, str):
            try:
                detail = json.loads(detail)
            except ValueError:
                raise TriggerError("the event's detail is not JSON") from None
        if kind not in TRIGGER_TYPES or not isinstance(detail, dict):
            raise TriggerError(f"not a retraining trigger: detail-type {kind!r} (expected one of "
                               f"{', '.join(TRIGGER_TYPES)}) with an object detail")
        named = detail.get("model")
        model = named.get("name") if isinstance(named, dict) else named
        if not isinstance(model, str) or not model:
            raise TriggerError("the event's detail names no model (detail.model.name)")
        return cls(model, kind, trigger_key(model, detail, event.get("id")), _reason(kind, detail), detail)

    @classmethod
    def manual(cls, model: str, reason: str, now: float | None = None) -> Trigger:
        """A trigger from ``mlship retrain run --reason`` (one per model, reason and minute)."""
        minute = int((time.time() if now is None else now) // 60)
        return cls(model, "Manual", _digest(model, reason, str(minute)), reason, {})


def trigger_key(model: str, detail: dict[str, Any], event_id: Any = None) -> str:
    """The model and monitored window, else the event id (see the module docstring)."""
    window = detail.get("window")
    if isinstance(window, dict) and window.get("start") and window.get("end"):
        return _digest(model, str(window["start"]), str(window["end"]))
    if event_id:
        return _digest(model, str(event_id))
    raise TriggerError("the event has neither a monitored window (detail.window) nor an id: it cannot be "
                       "told apart from its duplicates")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _reason(kind: str, detail: dict[str, Any]) -> str:
    if kind == "DriftDetected":
        return f"drift: {len(detail.get('drifted_features') or [])} features drifted (share {detail.get('share')})"
    if kind == "PerformanceDegraded":
        return f"performance: {detail.get('metric')} {detail.get('value')} vs {detail.get('reference')}"
    return kind.lower()


@dataclass(frozen=True)
class Claim:
    """The ledger's answer for one trigger."""

    outcome: str  # started | duplicate | cooldown
    trigger: Trigger
    run_id: str | None  # the run started, or (cooldown/duplicate) the run it belongs to or waits for
    reason: str

    @property
    def started(self) -> bool:
        return self.outcome == "started"


class TriggerLedger:
    """Trigger records and the per-model lease in S3 (the registry bucket by default)."""

    def __init__(self, bucket: str, prefix: str = "", *, cooldown_seconds: float = 6 * 3600,
                 clock: Callable[[], float] = time.time):
        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.cooldown_seconds, self._clock = cooldown_seconds, clock
        self.s3 = client("s3")

    def _key(self, model: str, name: str) -> str:
        return f"{self.prefix}retrain/{model}/{name}"

    def claim(self, trigger: Trigger, run_id: str | None = None) -> Claim:
        """Claim ``trigger``: ``started`` once, ``duplicate`` for the same key again, ``cooldown``
        inside the model's cooldown (see the module docstring). ``run_id`` names the run it starts
        (in AWS the Step Functions execution's name); by default a new one."""
        now = self._clock()
        record = {"trigger": asdict(trigger), "claimed_at": _iso(now), "outcome": "pending", "run_id": None}
        etag = self._put(self._key(trigger.model, f"triggers/{trigger.key}.json"), record, if_none_match=True)
        if etag is None:
            existing = self._get(self._key(trigger.model, f"triggers/{trigger.key}.json"))[0] or {}
            return Claim("duplicate", trigger, existing.get("run_id"),
                         f"the same trigger was claimed at {existing.get('claimed_at')} ({existing.get('outcome')})")
        outcome, run_id, why = self._take_lease(trigger, now, run_id)
        self._put(self._key(trigger.model, f"triggers/{trigger.key}.json"),
                  {**record, "outcome": outcome, "run_id": run_id, "reason": why}, if_match=etag)
        return Claim(outcome, trigger, run_id, why)

    def _take_lease(self, trigger: Trigger, now: float, wanted: str | None) -> tuple[str, str | None, str]:
        key = self._key(trigger.model, "lease.json")
        for attempt in range(16):
            lease, etag = self._get(key)
            if lease is not None and now - float(lease["started"]) < self.cooldown_seconds:
                started = float(lease["started"])
                why = (f"run {lease['run_id']} started at {_iso(started)}; cooldown of {self.cooldown_seconds:g} s "
                       f"ends in {self.cooldown_seconds - (now - started):.0f} s")
                return "cooldown", lease["run_id"], why
            run_id = wanted or f"{datetime.fromtimestamp(now, UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
            new = {"run_id": run_id, "started": now, "trigger": trigger.key}
            written = self._put(key, new, if_match=etag) if etag else self._put(key, new, if_none_match=True)
            if written is not None:
                return "started", run_id, trigger.reason
            backoff(attempt)  # another claim moved the lease first: read it again
        raise TriggerError(f"the lease of {trigger.model} kept changing: too many concurrent claims")

    def records(self, model: str) -> list[dict[str, Any]]:
        """Every trigger record of ``model``, oldest first."""
        base = self._key(model, "triggers/")
        out = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            out += [self._get(o["Key"])[0] for o in page.get("Contents", [])]
        return sorted((r for r in out if r), key=lambda r: r["claimed_at"])

    def _get(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            obj = get_if_exists(self.s3, self.bucket, key)
        except Exception as exc:  # botocore ClientError
            raise TriggerError(f"cannot read s3://{self.bucket}/{key}: {exc}") from None
        return (None, None) if obj is None else (json.loads(obj["Body"].read()), str(obj["ETag"]))

    def _put(self, key: str, doc: dict[str, Any], *, if_none_match: bool = False,
             if_match: str | None = None) -> str | None:
        """Write ``doc`` under a condition; None when the condition failed (someone wrote first)."""
        condition = {"IfNoneMatch": "*"} if if_none_match else {"IfMatch": if_match} if if_match else {}
        try:
            return conditional_put(self.s3, self.bucket, key, json.dumps(doc, default=str).encode(), condition,
                                   ContentType="application/json")
        except ConditionalWriteConflict as exc:
            raise TriggerError(str(exc)) from None
        except Exception as exc:
            raise TriggerError(f"cannot write s3://{self.bucket}/{key}: {exc}") from None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
