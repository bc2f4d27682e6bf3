"""Experiment data from inference records and late labels on S3 (the monitor's inputs).

Records (:mod:`mlship.runtime.records`, read with :func:`mlship.aws.records.read_records`) carry the
``variant`` that answered; labels (``{"request_id", "row", "label"}`` JSON Lines under
``LABELS_PREFIX/model=NAME/``) join on ``(request_id, row)``. A unit is the value of an input field
(``unit_field``, e.g. a hashed user id) or else the request. The outcome of a row is whether the
prediction equals the label (``outcome="correct"``) or the label itself (``outcome="label"``); a
unit's binary outcome is whether any of its rows succeeded, a continuous one the mean of its rows.
Units seen under both variants (non-sticky assignment) are excluded and counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.aws.labels import label_matches as _same
from mlship.aws.labels import read_labels
from mlship.experiments.data import ExperimentData, binary_values, check_variants, numeric_values, split_arms
from mlship.experiments.errors import ExperimentInputError, NoLabelsError
from mlship.runtime.records import LABELS_PREFIX

OUTCOMES = ("correct", "label")


@dataclass
class _Unit:
    variants: set[str] = field(default_factory=set)
    first: str = ""
    values: list[Any] = field(default_factory=list)


@dataclass
class _Collected:
    units: dict[str, _Unit] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1


def _guardrail_values(rec: dict[str, Any], variant: str, out: _Collected) -> None:
    outputs = rec.get("outputs") or {}
    latency = rec.get("latency_ms", outputs.get("latency_ms"))
    if isinstance(latency, (int, float)):
        out.latency.setdefault(variant, []).append(float(latency))
    if "error" in rec or "error" in outputs:
        out.errors.setdefault(variant, []).append(1.0 if (rec.get("error") or outputs.get("error")) else 0.0)


def collect(records: Iterable[dict[str, Any]], labels: dict[tuple[str, int], Any], *, outcome: str,
            unit_field: str | None) -> _Collected:
    """Group labelled records into units (one pass; memory bounded by the labelled rows)."""
    out = _Collected()
    for rec in records:
        variant = rec.get("variant")
        if variant is None:
            out.count("records without a variant")
            continue
        variant = str(variant)
        _guardrail_values(rec, variant, out)
        key = (str(rec.get("request_id")), int(rec.get("row") or 0))
        if key not in labels:
            out.count("records without a label")
            continue
        label = labels[key]
        value = _same((rec.get("outputs") or {}).get("prediction"), label) if outcome == "correct" else label
        inputs = rec.get("inputs") if isinstance(rec.get("inputs"), dict) else {}
        unit_id = inputs.get(unit_field) if unit_field else None
        unit = out.units.setdefault(str(unit_id if unit_id is not None else key[0]), _Unit(first=str(rec.get("time"))))
        unit.variants.add(variant)
        unit.first = min(unit.first, str(rec.get("time")))
        unit.values.append(value)
    return out


def _arrays(collected: _Collected, metric: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    excluded = {k: v for k, v in collected.counts.items() if k != "records without a label"}
    units = [u for u in collected.units.values() if len(u.variants) == 1]
    if len(units) < len(collected.units):
        excluded["units seen under both variants"] = len(collected.units) - len(units)
    units.sort(key=lambda u: u.first)
    variants = np.array([next(iter(u.variants)) for u in units], dtype=object)
    if metric == "binary":
        values = np.array([binary_values(u.values, "labelled outcome").max() for u in units], dtype=np.float64)
    else:
        values = np.array([numeric_values(u.values, "labelled outcome").mean() for u in units], dtype=np.float64)
    return variants, values, excluded


def from_records(records: Iterable[dict[str, Any]], labels: dict[tuple[str, int], Any], *, control: str,
                 treatment: str, metric: str, outcome: str = "correct", unit_field: str | None = None,
                 where: str = "the window") -> ExperimentData:
    """Both arms from records and labels (``where`` names the source in error messages)."""
    if outcome not in OUTCOMES:
        raise ExperimentInputError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    if not labels:
        raise NoLabelsError(f"no labels in {where}: nothing to compare")
    collected = collect(records, labels, outcome=outcome, unit_field=unit_field)
    if not collected.units:
        raise NoLabelsError(f"no inference record in {where} has a label (labels read: {len(labels)})")
    variants, values, excluded = _arrays(collected, metric)
    if not variants.size:
        raise ExperimentInputError(f"all {len(collected.units)} labelled units were served by more than one "
                                   f"variant: assignment is not sticky per {unit_field or 'request'}")
    check_variants(list(dict.fromkeys(variants.tolist())), control, treatment)
    keep = (variants == control) | (variants == treatment)
    for v in dict.fromkeys(variants[~keep].tolist()):
        excluded[f"variant {v!r}"] = int(np.sum(variants == v))
    data = split_arms(variants[keep], values[keep], control, treatment, excluded=excluded)
    for arm, name in ((data.control, control), (data.treatment, treatment)):
        arm.latency = np.array(collected.latency[name]) if name in collected.latency else None
        arm.error = np.array(collected.errors[name]) if name in collected.errors else None
    return data


def load_s3(bucket: str, prefix: str, *, labels_prefix: str = LABELS_PREFIX, model: str | None = None,
            **kwargs: Any) -> ExperimentData:
    """:func:`from_records` over every record under ``s3://bucket/prefix`` and its labels."""
    from mlship.aws.records import read_records

    labels = read_labels(bucket, labels_prefix, model)
    where = f"s3://{bucket}/{labels_prefix.strip('/')}/" + (f"model={model}/" if model else "")
    return from_records(read_records(bucket, prefix), labels, where=where, **kwargs)
