"""Attribution drift: how much the model's reliance on each field moved between the holdout and a window.

The baseline is the bundle's ``manifest["explain"]["summary"]`` (written at export: the mean
|contribution| of each field and target over the holdout). While the monitor scans a window,
:class:`RowSample` keeps a bounded, uniform sample of its rows (reservoir sampling with a fixed
seed: the same records give the same sample, and memory never exceeds the bound). After the scan
the sample is explained with the bundle's own explainer (``Predictor.explainer``) and its mean
|contribution| per field and target is compared with the baseline's: per field the absolute and
relative change and the shift of its *share* (the field's mean |contribution| over the sum over
fields). The summary statistic is the total variation distance between the baseline and window
shares (half the sum of the share shifts; the largest over targets): the fraction of the model's
attribution mass that moved from some fields to others, between 0 and 1, unchanged by a window
whose predictions are merely larger or smaller overall.

Default threshold 0.05 (a twentieth of the attribution mass moved): on the churn test model,
windows of 500 rows drawn like the holdout give 0.005-0.02 against a 500-row baseline (sampling
noise; about 0.03 at 100 rows, hence MIN_ROWS), while one informative field shifted (charges +60,
tenure or support calls raised) gives 0.08-0.2. A field only shuffled across rows keeps its
distribution and so its mean |contribution| (about 0.01): this measures how the model's reliance
moves, not row order. A bundle without a baseline, a model without an explainer or a window with
too few explainable rows is reported as not computed (or insufficient data) with the reason,
never as "no drift".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

COMPUTED, NOT_COMPUTED, INSUFFICIENT = "computed", "not_computed", "insufficient_data"
STATISTIC = "total_variation"
DEFAULT_SAMPLE_ROWS = 500
DEFAULT_THRESHOLD = 0.05
MIN_ROWS = 100  # fewer explained rows than this: sampling noise (~0.03 at 100 rows) nears the threshold
MIN_SHARE = 0.01  # the largest relative change is taken over fields with at least this baseline share
EXPLAIN_CHUNK = 100  # rows per explainer call: a failing call costs at most this many rows
SEED = 0
NO_BASELINE = "the bundle stores no attribution baseline; re-export it"


@dataclass(frozen=True)
class AttributionBaseline:
    """Mean |contribution| per field and target over the holdout (``manifest["explain"]["summary"]``)."""

    fields: list[str]
    targets: list[Any]
    mean_abs: np.ndarray  # (fields, targets)
    rows: int
    method: str
    exact: bool
    output_space: str

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> AttributionBaseline:
        """Read an export summary; ``ValueError`` names what is missing or malformed."""
        targets = list(summary.get("targets") or [])
        per_field = summary.get("mean_abs")
        if not targets or not isinstance(per_field, dict) or not per_field:
            raise ValueError("the attribution baseline has no targets or no mean_abs per field")
        values = np.asarray([per_field[name] for name in per_field], dtype=np.float64)
        if values.shape != (len(per_field), len(targets)) or not np.all(np.isfinite(values)):
            raise ValueError(f"the attribution baseline's mean_abs is not one finite value per target "
                             f"({len(targets)}) for each field")
        return cls(fields=[str(name) for name in per_field], targets=targets, mean_abs=np.abs(values),
                   rows=int(summary.get("rows") or 0), method=str(summary.get("method", "")),
                   exact=bool(summary.get("exact", True)), output_space=str(summary.get("output_space", "")))


def read_baseline(manifest: dict[str, Any]) -> tuple[AttributionBaseline | None, str | None]:
    """The bundle's attribution baseline, or None and why there is none."""
    summary = (manifest.get("explain") or {}).get("summary")
    if not isinstance(summary, dict):
        return None, NO_BASELINE
    try:
        return AttributionBaseline.from_summary(summary), None
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"the bundle's attribution baseline cannot be read ({exc}); re-export it"


@dataclass
class RowSample:
    """A uniform sample of at most ``size`` rows of a stream of column batches (reservoir sampling,
    algorithm R, seeded): the same rows in the same order give the same sample."""

    fields: list[str]
    size: int = DEFAULT_SAMPLE_ROWS
    seed: int = SEED
    seen: int = 0
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def update(self, columns: dict[str, np.ndarray], n_rows: int) -> None:
        """Offer a batch of ``n_rows`` rows (a field absent from ``columns`` is None)."""
        cols = [columns.get(name) for name in self.fields]

        def row(i: int) -> tuple[Any, ...]:
            return tuple(None if c is None else c[i] for c in cols)

        direct = max(0, min(n_rows, self.size - self.seen))
        self.rows.extend(row(i) for i in range(direct))
        if direct < n_rows:  # row t (0-based over the stream) replaces a random slot with probability size/(t+1)
            t = np.arange(self.seen + direct, self.seen + n_rows)
            slots = self._rng.integers(0, t + 1)
            for k in np.flatnonzero(slots < self.size):
                self.rows[int(slots[k])] = row(direct + int(k))
        self.seen += n_rows

    def merge(self, other: RowSample) -> RowSample:
        """Combine the sample of another stream (a Spark partition's) into this one, in place: a
        uniform sample of both streams' rows (how many come from each is hypergeometric in the
        rows each saw), though not the rows one pass over both streams would have kept."""
        total = self.seen + other.seen
        wanted = min(self.size, total)
        if wanted == 0:
            return self
        from_self = int(self._rng.hypergeometric(self.seen, other.seen, wanted)) if self.seen and other.seen \
            else (wanted if self.seen else 0)
        mine = self._rng.choice(len(self.rows), size=from_self, replace=False)
        theirs = self._rng.choice(len(other.rows), size=wanted - from_self, replace=False)
        self.rows = [self.rows[int(i)] for i in sorted(mine)] + [other.rows[int(i)] for i in sorted(theirs)]
        self.seen = total
        return self

    def records(self) -> list[dict[str, Any]]:
        """The sampled rows as records keyed by field."""
        return [dict(zip(self.fields, r, strict=True)) for r in self.rows]


def not_computed(reason: str, status: str = NOT_COMPUTED, **extra: Any) -> dict[str, Any]:
    """The report section when there is no verdict: ``drifted`` is None (unknown), never False."""
    return {"status": status, "reason": reason, "statistic": STATISTIC, "value": None, "drifted": None, **extra}


def compare(baseline: AttributionBaseline, window: np.ndarray, threshold: float) -> dict[str, Any]:
    """Window mean |contribution| (fields x targets, in the baseline's order) against the baseline."""
    base = baseline.mean_abs
    base_total, win_total = base.sum(axis=0), window.sum(axis=0)
    base_share = base / np.where(base_total > 0, base_total, 1.0)
    win_share = window / np.where(win_total > 0, win_total, 1.0)
    shift = win_share - base_share
    tv = 0.5 * np.abs(shift).sum(axis=0)  # per target
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(base > 0, (window - base) / base, np.nan)
    fields = {}
    for i, name in enumerate(baseline.fields):
        fields[name] = {"baseline": base[i].tolist(), "window": window[i].tolist(),
                        "abs_change": (window[i] - base[i]).tolist(),
                        "rel_change": [float(v) if np.isfinite(v) else None for v in rel[i]],
                        "baseline_share": base_share[i].tolist(), "window_share": win_share[i].tolist(),
                        "share_shift": shift[i].tolist()}
    order = np.argsort(-np.abs(shift).max(axis=1), kind="stable")
    value = float(tv.max())
    return {"status": COMPUTED, "reason": None, "statistic": STATISTIC, "value": value, "threshold": threshold,
            "drifted": bool(value >= threshold), "per_target": {str(t): float(v) for t, v in
                                                               zip(baseline.targets, tv, strict=True)},
            "max_relative_change": _largest_relative(baseline, rel, base_share),
            "top_fields": [baseline.fields[i] for i in order[:5]], "fields": fields}


def _largest_relative(baseline: AttributionBaseline, rel: np.ndarray, share: np.ndarray) -> dict[str, Any] | None:
    """The largest |relative change| among fields holding at least MIN_SHARE of the baseline attribution."""
    masked = np.where((share >= MIN_SHARE) & np.isfinite(rel), np.abs(rel), -1.0)
    if masked.size == 0 or masked.max() < 0:
        return None
    i, k = np.unravel_index(int(np.argmax(masked)), masked.shape)
    return {"field": baseline.fields[i], "target": baseline.targets[k], "value": float(rel[i, k])}


def explain_sample(explainer: Any, schema: Any,
                   records: list[dict[str, Any]]) -> tuple[Any, np.ndarray, dict[str, int]]:
    """Explain the sampled records in chunks of EXPLAIN_CHUNK: (the last chunk's explanation, for
    its fields and targets; the explained rows' contributions (rows, fields, targets); refused rows
    counted by reason). A row the schema refuses, a chunk the explainer fails on and a row with
    non-finite contributions are counted, not fatal; ``ExplainError`` (no explainer) propagates."""
    from mlship.errors import MlshipError
    from mlship.runtime.explain import ExplainError

    refused: dict[str, int] = {}

    def count(reason: str, n: int) -> None:
        refused[reason] = refused.get(reason, 0) + n

    parts, last = [], None
    for start in range(0, len(records), EXPLAIN_CHUNK):
        batch = schema.validate_records(records[start:start + EXPLAIN_CHUNK], allow_extra=True)
        for reason in batch.row_reasons().values():
            count(reason.split("; ")[0], 1)
        if not batch.valid.any():
            continue
        try:
            explanation = explainer.explain_columns({k: v[batch.valid] for k, v in batch.columns.items()})
        except ExplainError:
            raise
        except MlshipError as exc:
            count(f"explainer: {exc}", int(batch.valid.sum()))
            continue
        last = explanation
        contrib = np.asarray(explanation.contributions, dtype=np.float64)
        finite = np.isfinite(contrib).all(axis=(1, 2))
        if not finite.all():
            count("non-finite contributions", int((~finite).sum()))
        parts.append(contrib[finite])
    return last, (np.concatenate(parts) if parts else np.empty((0, 0, 0))), refused


def attribution_drift(bundle: Any, sample: RowSample | None, *, threshold: float = DEFAULT_THRESHOLD,
                      min_rows: int = MIN_ROWS, baseline: AttributionBaseline | None = None) -> dict[str, Any]:
    """The report's ``attribution_drift`` section: the sampled window rows explained with the
    bundle's explainer and compared with ``baseline`` (default: the bundle's stored one)."""
    from mlship.errors import MlshipError

    reason = None
    if baseline is None:
        baseline, reason = read_baseline(bundle.manifest)
    if baseline is None:
        return not_computed(reason or NO_BASELINE)
    if sample is None or sample.size <= 0:
        return not_computed("attribution sampling is off (a sample of 0 rows)")
    counts: dict[str, Any] = {"rows_in_window": sample.seen, "rows_sampled": len(sample.rows),
                              "sample_limit": sample.size, "baseline_rows": baseline.rows}
    if not sample.rows:
        return not_computed("no rows in the window", INSUFFICIENT, **counts)
    try:
        explainer, schema = _explainer(bundle)
        last, contrib, refused = explain_sample(explainer, schema, sample.records())
    except MlshipError as exc:  # ExplainError: no explainer for this model; BundleError: no session
        return not_computed(str(exc), **counts)
    except ImportError as exc:  # onnxruntime missing where the monitor runs
        return not_computed(f"{exc.name or exc} is not installed where the monitor runs", **counts)
    counts.update(rows_explained=int(contrib.shape[0]), rows_refused=sum(refused.values()), refused_reasons=refused)
    needed = max(1, min(min_rows, sample.size))
    if contrib.shape[0] < needed:
        return not_computed(f"{contrib.shape[0]} row(s) explained, fewer than the {needed} needed",
                            INSUFFICIENT, **counts)
    window, mismatch = _aligned(baseline, last, contrib)
    if window is None:
        return not_computed(str(mismatch), **counts)
    info = {"method": last.method, "exact": bool(last.exact), "output_space": last.output_space,
            "targets": baseline.targets, "baseline_method": baseline.method}
    return {**compare(baseline, window, threshold), **counts, **info}


def _explainer(bundle: Any) -> tuple[Any, Any]:
    """The bundle's explainer and input schema (a Predictor on the already verified bundle)."""
    from mlship.runtime.predictor import Predictor

    predictor = Predictor(bundle)
    return predictor.explainer(), predictor.schema


def _aligned(baseline: AttributionBaseline, explanation: Any,
             contrib: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The window's mean |contribution| in the baseline's field and target order, or why the two
    cannot be compared (other fields, targets or output space: the baseline is of another model)."""
    missing = [name for name in baseline.fields if name not in explanation.fields]
    if missing:
        return None, f"the attribution baseline names fields the explainer does not have: {missing}"
    if [str(t) for t in explanation.targets] != [str(t) for t in baseline.targets]:
        return None, (f"the attribution baseline's targets {baseline.targets} are not the explainer's "
                      f"{list(explanation.targets)}")
    if baseline.output_space and baseline.output_space != explanation.output_space:
        return None, (f"the attribution baseline is in {baseline.output_space}, the explainer in "
                      f"{explanation.output_space}")
    means = np.abs(contrib).mean(axis=0)
    return means[[list(explanation.fields).index(name) for name in baseline.fields]], None
