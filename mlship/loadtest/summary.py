"""What a phase measured: latency percentiles, achieved vs target rate, errors, queueing."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.loadtest.engine import PhaseRun, Sample

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


@dataclass(frozen=True)
class Slo:
    """The service level a rate must meet: p99 latency (from the intended send) and error rate."""

    p99_ms: float
    error_rate: float = 0.01
    min_achieved: float = 0.95  # achieved / target throughput below this means requests queue up


def percentiles_ms(values: list[float] | np.ndarray) -> dict[str, float | None]:
    """p50/p90/p99/p99.9 in milliseconds (nearest-rank, no interpolation into unseen values)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return dict.fromkeys(PERCENTILES)
    return {k: float(np.percentile(arr, q, method="inverted_cdf")) * 1000.0 for k, q in PERCENTILES.items()}


def summarize(run: PhaseRun, slo: Slo | None = None) -> dict[str, Any]:
    """One phase as JSON-ready numbers; ``meets_slo`` when an SLO is given."""
    answered = [s for s in run.samples if s.outcome != "dropped"]
    ok = [s for s in answered if s.outcome == "ok"]
    outcomes = Counter(s.outcome for s in run.samples)
    errors = {k: v for k, v in sorted(outcomes.items()) if k != "ok"}
    total = len(run.samples)
    error_rate = (total - len(ok)) / total if total else 0.0
    achieved = len(answered) / run.elapsed if run.elapsed > 0 else 0.0
    out: dict[str, Any] = {
        "phase": run.name, "mode": run.mode, "target_rps": run.target_rps, "duration_s": run.duration,
        "elapsed_s": round(run.elapsed, 4), "requests": total, "ok": len(ok), "achieved_rps": round(achieved, 3),
        "sent_rps": round(_sent_rate(run), 3), "achieved_ratio": round(achieved / run.target_rps, 4)
        if run.target_rps else None,
        "error_rate": round(error_rate, 6), "errors": errors,
        "timeouts": outcomes.get("timeout", 0), "dropped": outcomes.get("dropped", 0),
        "latency_ms": percentiles_ms([s.latency for s in answered]),
        "service_ms": percentiles_ms([s.service for s in answered]),
        "max_latency_ms": round(max((s.latency for s in answered), default=0.0) * 1000.0, 3),
        "max_outstanding": run.max_outstanding, "queue_growth_ms_per_s": _queue_growth(answered),
    }
    if slo is not None:
        out["meets_slo"], out["slo_failures"] = judge(out, slo)
    return out


def judge(phase: dict[str, Any], slo: Slo) -> tuple[bool, list[str]]:
    """Whether a summarised phase meets the SLO, and the reasons when it does not."""
    why = []
    p99 = phase["latency_ms"]["p99"]
    if p99 is None or p99 > slo.p99_ms:
        why.append(f"p99 {_ms(p99)} > {slo.p99_ms:g} ms")
    if phase["error_rate"] > slo.error_rate:
        why.append(f"error rate {phase['error_rate']:.2%} > {slo.error_rate:.2%}")
    ratio = phase.get("achieved_ratio")
    if ratio is not None and ratio < slo.min_achieved:
        why.append(f"achieved {phase['achieved_rps']:.1f} of {phase['target_rps']:g} rps")
    return not why, why


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _sent_rate(run: PhaseRun) -> float:
    """Requests actually sent per second of the arrival window (shows a client that fell behind)."""
    sent = [s.sent for s in run.samples if s.outcome != "dropped"]
    if len(sent) < 2:
        return float(len(sent)) / run.duration if run.duration else 0.0
    span = max(sent) - min(sent)
    return (len(sent) - 1) / span if span > 0 else len(sent) / run.duration  # all sent at once: no rate to see


def _queue_growth(samples: list[Sample]) -> float | None:
    """Slope of latency over the phase (ms per second): clearly positive when a queue builds up."""
    if len(samples) < 10:
        return None
    x = np.array([s.intended for s in samples])
    y = np.array([s.latency for s in samples]) * 1000.0
    if np.ptp(x) == 0:
        return None
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def timeline(run: PhaseRun, offset: float, bucket: float = 1.0) -> list[dict[str, Any]]:
    """Per-second buckets (by intended time, shifted by the phase's start in the whole run)."""
    out = []
    if not run.samples:
        return out
    n = int(math.ceil(max(s.intended for s in run.samples) / bucket + 1e-9)) or 1
    for b in range(n):
        inside = [s for s in run.samples if b * bucket <= s.intended < (b + 1) * bucket]
        if not inside:
            continue
        lat = [s.latency for s in inside if s.outcome != "dropped"]
        pct = percentiles_ms(lat)
        out.append({"t": round(offset + b * bucket, 3), "phase": run.name, "offered_rps": len(inside) / bucket,
                    "errors": sum(s.outcome != "ok" for s in inside), "p50_ms": pct["p50"], "p99_ms": pct["p99"]})
    return out


def failure_mode(phase: dict[str, Any]) -> str:
    """How an overloaded phase failed, in words: rejections by status, timeouts, client drops, queueing."""
    if phase.get("meets_slo"):
        return "no failure: the target met the SLO at this rate"
    parts = []
    by_status = {k: v for k, v in phase["errors"].items() if k.startswith("status:")}
    if by_status:
        parts.append("rejected " + ", ".join(f"{v} x {k.removeprefix('status:')}" for k, v in by_status.items()))
    if phase["timeouts"]:
        parts.append(f"{phase['timeouts']} timed out")
    other = {k: v for k, v in phase["errors"].items() if k.startswith("error:")}
    if other:
        parts.append("failed " + ", ".join(f"{v} x {k.removeprefix('error:')}" for k, v in other.items()))
    if phase["dropped"]:
        parts.append(f"{phase['dropped']} not sent (client limit of outstanding requests)")
    growth = phase.get("queue_growth_ms_per_s")
    if growth is not None and growth > 1.0:
        parts.append(f"queued: latency grew {growth:.0f} ms per second of load")
    if (phase.get("achieved_ratio") or 1.0) < 0.95:
        parts.append(f"throughput capped at {phase['achieved_rps']:.0f} of {phase['target_rps']:g} rps")
    return "; ".join(parts) or "no failure: the target kept up"
