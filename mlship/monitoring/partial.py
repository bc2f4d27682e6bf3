"""The mergeable state of a window scan: what the monitor accumulates before it computes anything.

One pass over a window's records builds a :class:`WindowPartial`: the drift accumulator (feature
and prediction sketches against the bundle's profile), rows and predicted positives per
sensitive group (fairness without labels), the bounded row sample attribution drift explains,
and the read counters. The in-process path builds one; the Spark path builds one per partition
of the listing (``mlship.batch.monitor_window``) and merges them on the driver. Everything after
the accumulation (``mlship.monitoring.run.finish``) is one function for both paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.monitoring.window import RecordBatch, Window, batches


@dataclass(frozen=True)
class ScanSpec:
    """What a scan needs to know about the model and the window (picklable: Spark ships it)."""

    profile: dict[str, Any]
    features: list[str]
    task: str
    sensitive: str | None
    positive: Any
    window: Window
    sample_fields: list[str] | None = None  # None: no attribution sample
    sample_rows: int = 0
    batch_rows: int = 5000

    def new_partial(self) -> WindowPartial:
        """An empty partial for this model and window."""
        from mlship.monitoring.attribution import RowSample
        from mlship.stats.drift import DriftAccumulator

        sample = RowSample(self.sample_fields, self.sample_rows) if self.sample_fields is not None else None
        return WindowPartial(drift=DriftAccumulator(self.profile), sample=sample)


@dataclass
class WindowPartial:
    """Drift sketches, group counts, the attribution sample and read counters of some records."""

    drift: Any  # mlship.stats.drift.DriftAccumulator
    groups: dict[str, list[int]] = field(default_factory=dict)  # sensitive group -> [rows, predicted positive]
    sample: Any = None  # mlship.monitoring.attribution.RowSample
    stats: dict[str, int] = field(default_factory=dict)  # objects, bytes, bad_lines read

    @property
    def rows(self) -> int:
        return int(self.drift.rows)

    def update(self, batch: RecordBatch, spec: ScanSpec) -> WindowPartial:
        """Add one batch of records."""
        self.drift.update(batch.columns, batch_predictions(batch, spec.task))
        count_groups(self.groups, batch, spec.sensitive, spec.positive)
        if self.sample is not None:
            self.sample.update(batch.columns, len(batch))
        return self

    def scan(self, records: Iterable[dict[str, Any]], spec: ScanSpec, progress: Any = None) -> WindowPartial:
        """Add every record, in batches of ``spec.batch_rows`` (``progress(rows)`` now and then)."""
        for batch in batches(iter(records), spec.features, spec.batch_rows):
            self.update(batch, spec)
            if progress is not None and self.rows % (spec.batch_rows * 20) == 0:
                progress(self.rows)
        return self

    def merge(self, other: WindowPartial) -> WindowPartial:
        """Add another partial of the same spec (in place; the other one is left as it was)."""
        self.drift.merge(other.drift)
        for group, (n, positive) in other.groups.items():
            entry = self.groups.setdefault(group, [0, 0])
            entry[0] += n
            entry[1] += positive
        if self.sample is not None and other.sample is not None:
            self.sample.merge(other.sample)
        for key, value in other.stats.items():
            self.stats[key] = self.stats.get(key, 0) + value
        return self


def score_of(outputs_probs: list[Any] | None) -> np.ndarray | None:
    """The drift score of each row's probabilities (None unless every row has them)."""
    from mlship.stats.profile import prediction_score

    if not outputs_probs or any(p is None for p in outputs_probs):
        return None
    probs = np.asarray(outputs_probs, dtype=np.float64)
    return prediction_score(probs) if probs.ndim == 2 else None


def batch_predictions(batch: RecordBatch, task: str) -> dict[str, Any]:
    """A batch's predictions as the drift accumulator takes them (label and score, or value)."""
    preds: dict[str, Any] = {}
    if task == "classification":
        preds["label"] = np.array([str(p) for p in batch.predictions], dtype=object)
        score = score_of(batch.probabilities)
        if score is not None:
            preds["score"] = score
    else:
        preds["value"] = np.array([p if p is not None else np.nan for p in batch.predictions], dtype=float)
    return preds


def count_groups(groups: dict[str, list[int]], batch: RecordBatch, sensitive: str | None, positive: Any) -> None:
    """Add a batch's rows and predicted positives per sensitive group (no labels needed)."""
    if not sensitive or sensitive not in batch.columns or positive is None:
        return
    for g, p in zip(batch.columns[sensitive].tolist(), batch.predictions, strict=True):
        entry = groups.setdefault("<null>" if g is None else str(g), [0, 0])
        entry[0] += 1
        entry[1] += int(str(p) == str(positive))
