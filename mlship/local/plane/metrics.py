"""Metrics the plane observes, published to the local CloudWatch, and the evaluation of alarms on them.

moto stores alarms but never evaluates them (``../shared/FACTS.md``), so a rollback alarm would
never fire locally. The plane records every datapoint it publishes (SageMaker ``Invocations``,
``Invocation5XXErrors``, ``ModelLatency`` per variant; Lambda ``Invocations``, ``Errors``,
``Duration``) and :class:`AlarmEvaluator` evaluates an alarm defined in moto the way CloudWatch
documents it (user guide, "Evaluating an alarm"): the last ``EvaluationPeriods`` complete periods,
``DatapointsToAlarm`` of them breaching, ``TreatMissingData``; then it sets the state in moto with
``SetAlarmState``. Periods are time-scaled (``PlaneContext.time_scale``), which CloudWatch's own
statistics API cannot do, and moto computes no percentiles: hence the plane's own copy of the
datapoints. The same datapoints also go to moto's ``PutMetricData`` so dashboards and
``get_metric_data`` see them.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

log = logging.getLogger("mlship.local.plane.metrics")
_MAX_POINTS = 200_000
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def _key(namespace: str, name: str, dimensions: dict[str, str]) -> tuple[str, str, frozenset[tuple[str, str]]]:
    return namespace, name, frozenset(dimensions.items())


class MetricStore:
    """Datapoints by metric identity (namespace, name, exact dimension set), published to moto in batches."""

    def __init__(self, publish: Callable[[str, list[dict[str, Any]]], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, flush_seconds: float = 1.0):
        self.clock, self.started = clock, clock()
        self._points: dict[tuple[str, str, frozenset[tuple[str, str]]], deque[tuple[float, float]]] = {}
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._publish = publish
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if publish is not None:
            self._thread = threading.Thread(target=self._flush_loop, args=(flush_seconds,),
                                            name="mlship-plane-metrics", daemon=True)
            self._thread.start()

    def record(self, namespace: str, name: str, dimensions: dict[str, str], value: float,
               unit: str = "None") -> None:
        """Record one datapoint now (and queue it for CloudWatch)."""
        key = _key(namespace, name, dimensions)
        with self._lock:
            self._points.setdefault(key, deque(maxlen=_MAX_POINTS)).append((self.clock(), float(value)))
            if self._publish is not None:
                self._outbox.append((namespace, {
                    "MetricName": name, "Value": float(value), "Unit": unit, "Timestamp": datetime.now(UTC),
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}))

    def values(self, namespace: str, name: str, dimensions: dict[str, str], start: float,
               end: float) -> list[float]:
        """Values recorded in ``[start, end)`` (store clock)."""
        return [value for _, value in self.points(namespace, name, dimensions, start, end)]

    def points(self, namespace: str, name: str, dimensions: dict[str, str], start: float,
               end: float) -> list[tuple[float, float]]:
        """``(time, value)`` of the datapoints recorded in ``[start, end)`` (store clock)."""
        with self._lock:
            points = list(self._points.get(_key(namespace, name, dimensions), ()))
        return [(t, v) for t, v in points if start <= t < end]

    def flush(self) -> None:
        """Send queued datapoints to CloudWatch: one datum per metric with its values and counts
        (``Values``/``Counts``, at most 150 distinct values each), 20 data per call."""
        with self._lock:
            outbox, self._outbox = self._outbox, []
        grouped: dict[tuple[str, str], dict[str, Any]] = {}
        for namespace, datum in outbox:
            key = (namespace, json.dumps([datum["MetricName"], datum["Dimensions"], datum["Unit"]]))
            group = grouped.setdefault(key, {**datum, "counts": Counter()})
            group["counts"][datum["Value"]] += 1
            group["Timestamp"] = datum["Timestamp"]
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for (namespace, _), group in grouped.items():
            counts = list(group.pop("counts").items())
            group.pop("Value")
            for start in range(0, len(counts), 150):
                chunk = counts[start:start + 150]
                by_namespace.setdefault(namespace, []).append(
                    {**group, "Values": [v for v, _ in chunk], "Counts": [float(c) for _, c in chunk]})
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), 20):
                try:
                    self._publish(namespace, data[start:start + 20])  # type: ignore[misc]
                except Exception:  # noqa: BLE001 - metrics are best effort, as in the real services
                    log.exception("PutMetricData to the local CloudWatch failed")

    def _flush_loop(self, every: float) -> None:
        while not self._stop.wait(every):
            self.flush()

    def close(self) -> None:
        """Stop the publisher after a last flush."""
        self._stop.set()
        if self._publish is not None:
            self.flush()


def statistic(values: list[float], alarm: dict[str, Any]) -> float:
    """The alarm's statistic (``Statistic`` or ``ExtendedStatistic`` pNN) of one period's values."""
    extended = alarm.get("ExtendedStatistic")
    if extended:
        return float(np.percentile(np.asarray(values, dtype=float), float(extended.lstrip("p"))))
    kind = alarm.get("Statistic", "Average")
    reducers: dict[str, Callable[[list[float]], float]] = {
        "Average": lambda v: float(np.mean(v)), "Sum": lambda v: float(np.sum(v)),
        "SampleCount": lambda v: float(len(v)), "Maximum": lambda v: float(np.max(v)),
        "Minimum": lambda v: float(np.min(v))}
    return reducers[kind](values)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of an alarm: the state it should be in and why."""

    state: str
    reason: str
    datapoints: list[float | None]


def evaluate_alarm(alarm: dict[str, Any], period_values: Iterable[list[float]], current: str) -> Evaluation:
    """CloudWatch's rule for one alarm over its last ``EvaluationPeriods`` periods (oldest first)."""
    compare = _COMPARE.get(alarm.get("ComparisonOperator", ""))
    if compare is None:
        return Evaluation(current, f"unsupported ComparisonOperator {alarm.get('ComparisonOperator')}", [])
    threshold = float(alarm["Threshold"])
    points: list[float | None] = [statistic(v, alarm) if v else None for v in period_values]
    evaluation_periods = len(points)
    needed = int(alarm.get("DatapointsToAlarm") or evaluation_periods)
    missing = alarm.get("TreatMissingData") or "missing"
    present = [p for p in points if p is not None]
    if not present and missing in ("missing", "ignore"):
        state = "INSUFFICIENT_DATA" if missing == "missing" else current
        return Evaluation(state, "no datapoints in the evaluation range", points)
    breaching = sum(1 for p in points if (p is None and missing == "breaching") or
                    (p is not None and compare(p, threshold)))
    shown = ", ".join("missing" if p is None else f"{p:g}" for p in points)
    if breaching >= needed:
        return Evaluation("ALARM", f"Threshold Crossed: {breaching} out of the last {evaluation_periods} "
                          f"datapoints [{shown}] crossed the threshold ({threshold:g}).", points)
    return Evaluation("OK", f"Threshold Crossed: {breaching} out of the last {evaluation_periods} datapoints "
                      f"[{shown}] crossed the threshold ({threshold:g}); {needed} needed.", points)


class AlarmEvaluator:
    """Evaluates moto-defined alarms from the plane's datapoints and sets their state in moto."""

    def __init__(self, context: Any):
        self.context = context
        self.store: MetricStore = context.metrics
        self.cloudwatch = context.client("cloudwatch")

    def _period_values(self, alarm: dict[str, Any]) -> list[list[float]]:
        """Values of the last ``EvaluationPeriods`` complete (scaled) periods, oldest first."""
        period = max(self.context.scaled(alarm.get("Period", 60)), 1e-3)
        count = int(alarm.get("EvaluationPeriods", 1))
        dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        elapsed = self.store.clock() - self.store.started
        last_complete = math.floor(elapsed / period) - 1
        first = last_complete - count + 1
        start = self.store.started + max(first, 0) * period
        end = self.store.started + (last_complete + 1) * period
        out: list[list[float]] = [[] for _ in range(count)]
        for at, value in self.store.points(alarm.get("Namespace", ""), alarm.get("MetricName", ""), dims,
                                           start, end):
            index = min(max(math.floor((at - self.store.started) / period), first, 0), last_complete)  # float edges
            out[index - first].append(value)
        return out

    def evaluate(self, alarm_names: list[str]) -> dict[str, str]:
        """Evaluate ``alarm_names`` now; set each changed state in moto; return name -> state."""
        if not alarm_names:
            return {}
        found = self.cloudwatch.describe_alarms(AlarmNames=list(alarm_names)).get("MetricAlarms", [])
        states: dict[str, str] = {}
        for alarm in found:
            name, current = alarm["AlarmName"], alarm.get("StateValue", "INSUFFICIENT_DATA")
            if alarm.get("Metrics"):  # metric math: not evaluated here; the state stays as it is
                states[name] = current
                continue
            result = evaluate_alarm(alarm, self._period_values(alarm), current)
            if result.state != current:
                self.cloudwatch.set_alarm_state(
                    AlarmName=name, StateValue=result.state, StateReason=result.reason[:1023],
                    StateReasonData=json.dumps({"version": "1.0", "evaluatedDatapoints": [
                        {"value": p} for p in result.datapoints if p is not None]}))
                log.info("alarm %s: %s -> %s (%s)", name, current, result.state, result.reason)
            states[name] = result.state
        return states


def make_store(context_client: Callable[[str], Any]) -> MetricStore:
    """A store that publishes to the local CloudWatch through ``context_client('cloudwatch')``."""
    cloudwatch = context_client("cloudwatch")
    return MetricStore(lambda namespace, data: cloudwatch.put_metric_data(Namespace=namespace, MetricData=data))
