"""How a shadow model agrees with the champion on the same live rows (``mlship shadow report``).

The two sides of every row are joined by inference id and row, ``(request_id, row)``:

* the prediction Lambda's shadow (``SHADOW_MODEL_URI``): its records are the ``role: shadow``
  records of the champion's capture lines (:func:`mlship.runtime.records.parse_line` with
  ``shadow=True``), with the shadow's latency and the champion's;
* an endpoint's shadow variant: SageMaker data capture of the production and the shadow variant,
  each record's ``variant`` taken from its object key, paired by the inference id both carry.

What is measured (:func:`analyze`): label agreement with a Wilson score interval
(``statsmodels.stats.proportion.proportion_confint``; rows of one request are treated as
independent), the absolute probability (or value) difference p50/p99/max, disagreement per
champion class and per slice of a categorical input, the shadow's error kinds and rate, latency
of both sides where the records carry it, and, with late labels, both models' metric on the same
labelled rows with a paired test (McNemar's exact test on correctness for a classifier,
``statsmodels.stats.contingency_tables.mcnemar``; the Wilcoxon signed-rank test on absolute
errors for a regressor, ``scipy.stats.wilcoxon``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.errors import MlshipError

MAX_SLICE_VALUES = 20  # a categorical input with more distinct values is not sliced


class ShadowReportError(MlshipError):
    """The records cannot give a shadow report (no shadow rows, unknown variants, ...)."""

    kind = "shadow_report"


@dataclass
class Pairs:
    """The champion's and the shadow's side of each joined row."""

    primary: list[dict[str, Any]] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    unmatched_primary: int = 0
    unmatched_shadow: int = 0
    variants: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.primary)


def pair(records: Iterable[dict[str, Any]], *, shadow_variant: str | None = None,
         primary_variant: str | None = None) -> Pairs:
    """Join champion and shadow records by ``(request_id, row)``.

    With ``shadow_variant`` (an endpoint's shadow), records of that variant are the shadow's and
    those of ``primary_variant`` (default: every other variant) the champion's; without it, the
    ``role: shadow`` records are the shadow's (the Lambda)."""
    primary: dict[tuple[str, int], dict[str, Any]] = {}
    shadow: dict[tuple[str, int], dict[str, Any]] = {}
    variants: Counter[str] = Counter()
    for rec in records:
        variant = str(rec.get("variant"))
        variants[variant] += 1
        key = (str(rec.get("request_id")), int(rec.get("row") or 0))
        if (rec.get("role") == "shadow") if shadow_variant is None else variant == shadow_variant:
            shadow[key] = rec
        elif primary_variant is None or variant == primary_variant:
            primary[key] = rec
    keys = [k for k in primary if k in shadow]
    return Pairs([primary[k] for k in keys], [shadow[k] for k in keys], len(primary) - len(keys),
                 len(shadow) - len(keys), dict(variants))


def check_pairs(pairs: Pairs, *, shadow_variant: str | None, primary_variant: str | None) -> None:
    """Refuse, naming the problem, what cannot give a report."""
    seen = sorted(pairs.variants)
    for name, given in (("shadow", shadow_variant), ("champion", primary_variant)):
        if given is not None and given not in pairs.variants:
            raise ShadowReportError(f"no records of the {name} variant {given!r} in the window "
                                    f"(variants seen: {', '.join(seen) or 'none'})")
    if not pairs.variants:
        raise ShadowReportError("no inference records in the window")
    if not pairs:
        raise ShadowReportError(f"no row has both a champion and a shadow answer in the window "
                                f"({pairs.unmatched_primary} champion rows, {pairs.unmatched_shadow} shadow rows): "
                                "is a shadow deployed, and does capture reach this prefix?")


def prediction_of(rec: dict[str, Any]) -> Any:
    return (rec.get("outputs") or {}).get("prediction")


def _scores(rec: dict[str, Any]) -> list[float] | None:
    """The probabilities, or ``[value]`` for a regressor."""
    outputs = rec.get("outputs") or {}
    probs = outputs.get("probabilities")
    if probs is not None:
        return [float(p) for p in probs]
    value = outputs.get("prediction")
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _delta(primary: dict[str, Any], shadow: dict[str, Any]) -> float | None:
    a, b = _scores(primary), _scores(shadow)
    if a is None or b is None or len(a) != len(b):
        return None
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def agreement(answered: list[tuple[dict[str, Any], dict[str, Any]]], confidence: float) -> dict[str, Any]:
    """Share of rows whose labels agree, with a Wilson score interval."""
    from statsmodels.stats.proportion import proportion_confint

    n = len(answered)
    agree = sum(prediction_of(p) == prediction_of(s) for p, s in answered)
    if n == 0:
        return {"rows": 0, "agree": 0, "rate": None, "lower": None, "upper": None, "confidence": confidence}
    lower, upper = proportion_confint(agree, n, alpha=1 - confidence, method="wilson")
    return {"rows": n, "agree": int(agree), "rate": agree / n, "lower": float(lower), "upper": float(upper),
            "confidence": confidence}


def deltas(answered: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """|Δp| (largest over the classes) or |Δ value| per row: p50, p99, max and the values."""
    values = [d for d in (_delta(p, s) for p, s in answered) if d is not None]
    if not values:
        return {"rows": 0, "p50": None, "p99": None, "max": None, "values": []}
    arr = np.asarray(values)
    return {"rows": len(values), "p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)),
            "max": float(arr.max()), "values": [round(v, 6) for v in values]}


def by_group(answered: list[tuple[dict[str, Any], dict[str, Any]]], key: Any) -> dict[str, dict[str, Any]]:
    """Rows and disagreement rate per group (``key(primary_record)``)."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for p, s in answered:
        groups[str(key(p))].append(prediction_of(p) != prediction_of(s))
    return {g: {"rows": len(v), "disagreement": float(np.mean(v))} for g, v in sorted(groups.items())}


def slice_features(answered: list[tuple[dict[str, Any], dict[str, Any]]], requested: list[str] | None) -> list[str]:
    """The inputs to slice by: ``requested``, or every string input with few distinct values."""
    if requested:
        return requested
    values: dict[str, set[Any]] = defaultdict(set)
    for p, _ in answered:
        for name, value in (p.get("inputs") or {}).items():
            if isinstance(value, str):
                values[name].add(value)
    return sorted(name for name, seen in values.items() if len(seen) <= MAX_SLICE_VALUES)


def errors(shadow_side: list[dict[str, Any]]) -> dict[str, Any]:
    """The shadow's error kinds and rate over the joined rows (the champion answered them all:
    only answered requests are captured)."""
    kinds = Counter(str(s["shadow_error"]) for s in shadow_side if s.get("shadow_error"))
    n = len(shadow_side)
    return {"rows": n, "errors": int(sum(kinds.values())), "rate": (sum(kinds.values()) / n) if n else None,
            "by_kind": dict(sorted(kinds.items())), "primary_rate": 0.0}


def latency(shadow_side: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Both sides' latency per request (ms, p50/p99) where the records carry it (the Lambda's do;
    SageMaker data capture does not: see the variants' ``ModelLatency`` in CloudWatch)."""
    per_request: dict[str, tuple[float, float]] = {}
    for s in shadow_side:
        shadow_ms, primary_ms = s.get("shadow_latency_ms"), s.get("primary_latency_ms")
        if shadow_ms is not None and primary_ms is not None and not s.get("shadow_error"):
            per_request[str(s.get("request_id"))] = (float(primary_ms), float(shadow_ms))
    if not per_request:
        return None
    primary, shadow = (np.asarray(side) for side in zip(*per_request.values(), strict=True))
    return {"requests": len(per_request),
            "primary_ms": {"p50": float(np.percentile(primary, 50)), "p99": float(np.percentile(primary, 99))},
            "shadow_ms": {"p50": float(np.percentile(shadow, 50)), "p99": float(np.percentile(shadow, 99))},
            "delta_p50_ms": float(np.percentile(shadow, 50) - np.percentile(primary, 50)),
            "primary_values": primary.round(3).tolist(), "shadow_values": shadow.round(3).tolist()}
