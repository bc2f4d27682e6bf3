"""Global attribution statistics of a bundle: mean |contribution| per field over a bounded sample of
rows (the bundle's own explainer, :meth:`Predictor.explainer`) and permutation importance through
onnxruntime (:meth:`Predictor.predict_columns` on columns with one field shuffled).

The JSON summary (:func:`attribution_summary`) is what ``mlship evaluate`` reports and what export
stores as ``manifest["explain"]["summary"]``: the baseline that attribution drift is measured
against. The per-row contributions and field values stay in memory for the plots.

Example::

    from mlship.evaluation.attributions import explain_globally
    explained = explain_globally(predictor, columns, y_true)      # columns: schema.validate(frame).columns
    explained.summary()["mean_abs"]["tenure_months"]               # [float per target]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlship.errors import MlshipError
from mlship.runtime.explain import ExplainError
from mlship.runtime.jsonutil import jsonable, python_value, python_values
from mlship.stats.metrics import regression_metrics, roc_auc

DEFAULT_ROWS = 500  # rows explained: TreeSHAP on a boosted model takes ~1 s for these
DEFAULT_SECONDS = 10.0  # and no more than this on a slow explainer (a large forest, sampling)
PERMUTATION_ROWS = 5000  # rows scored per shuffled field
FIRST_CHUNK_ROWS = 10  # rows explained by the first call: a slow explainer's cost is known early
CHUNK_ROWS = 50  # rows explained per later call; the time budget is checked between calls
PRIMARY_METRIC = {"classification": "roc_auc", "regression": "rmse"}
LOWER_IS_BETTER = {"rmse", "mae", "mse", "log_loss"}


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """A deterministic random order of at most ``max_rows`` of ``n`` row indices (all rows, shuffled,
    when ``n <= max_rows``): any prefix of it is itself a random sample."""
    return np.random.default_rng(seed).permutation(n)[:max(0, max_rows)]


@dataclass
class GlobalAttributions:
    """Per field and target mean |contribution| over the explained rows, and those rows' values."""

    fields: list[str]
    targets: list[Any]
    method: str
    exact: bool
    output_space: str
    available_rows: int  # rows the sample was drawn from
    mean_abs: np.ndarray  # (fields, targets)
    contributions: np.ndarray = field(repr=False)  # (rows, fields, targets)
    values: dict[str, np.ndarray] = field(repr=False)  # each field's validated values on the same rows
    categorical: frozenset[str] = frozenset()

    @property
    def rows(self) -> int:
        return int(self.contributions.shape[0])

    @property
    def summary_index(self) -> int | None:
        """The target the plots show: the only one, or the positive (last) class of a binary
        classifier scored per class; None (the mean |contribution| over targets) otherwise."""
        if len(self.targets) == 1:
            return 0
        if len(self.targets) == 2 and self.output_space != "value":
            return 1
        return None

    @property
    def summary_target(self) -> str:
        """What :meth:`field_scores` holds, in words."""
        k = self.summary_index
        if k is None:
            return f"mean |contribution| over the {len(self.targets)} targets"
        return "the value" if self.targets[k] == "value" else f"class {self.targets[k]}"

    def field_scores(self) -> np.ndarray:
        """(rows, fields): each row's contribution to the summarised target (signed), or its mean
        |contribution| over targets."""
        k = self.summary_index
        return self.contributions[:, :, k] if k is not None else np.abs(self.contributions).mean(axis=2)

    def importance(self) -> np.ndarray:
        """(fields,): mean |field_scores| per field (the order of every plot)."""
        if not self.rows:
            return np.zeros(len(self.fields))
        return np.abs(self.field_scores()).mean(axis=0)

    def top(self, k: int) -> list[int]:
        """The indices of the ``k`` most important fields, most important first."""
        return np.argsort(-self.importance(), kind="stable")[:k].tolist()


@dataclass
class PermutationImportance:
    """How much worse the primary metric gets when one field is shuffled (mean and std over repeats)."""

    fields: list[str]
    metric: str
    baseline: float
    repeats: int
    rows: int
    drops: np.ndarray = field(repr=False)  # (fields, repeats), positive = the metric got worse

    @property
    def worse(self) -> str:
        """What a drop is for this metric, in words: ``drop`` or (lower is better) ``increase``."""
        return "increase" if self.metric in LOWER_IS_BETTER else "drop"

    @property
    def mean(self) -> np.ndarray:
        return self.drops.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.drops.std(axis=1, ddof=1) if self.repeats > 1 else np.zeros(len(self.fields))

    def to_dict(self) -> dict[str, Any]:
        """Per field ``{"mean", "std"}`` (the summary's ``permutation`` entry)."""
        return {name: {"mean": float(m), "std": float(s)}
                for name, m, s in zip(self.fields, self.mean, self.std, strict=True)}


def global_attributions(predictor: Any, columns: dict[str, np.ndarray], *, max_rows: int = DEFAULT_ROWS,
                        seed: int = 0, budget_seconds: float | None = None) -> GlobalAttributions:
    """Explain a deterministic sample of at most ``max_rows`` rows of validated ``columns`` with the
    bundle's explainer, in chunks; with ``budget_seconds`` no chunk starts that would end past it
    (the first always runs). Raises :class:`~mlship.runtime.explain.ExplainError` when the bundle
    cannot be explained."""
    explainer = predictor.explainer()
    n = len(next(iter(columns.values())))
    order = sample_rows(n, max_rows, seed)
    parts, done, started, first = [], 0, time.perf_counter(), None
    while done < len(order):
        chunk = order[done:done + (CHUNK_ROWS if done else FIRST_CHUNK_ROWS)]
        elapsed = time.perf_counter() - started
        if budget_seconds is not None and done and elapsed + elapsed / done * len(chunk) > budget_seconds:
            break
        explained = explainer.explain_columns({k: v[chunk] for k, v in columns.items()})
        first = explained if first is None else first
        parts.append(np.asarray(explained.contributions, dtype=np.float64))
        done += len(chunk)
    if first is None:
        raise ExplainError("there are no rows to explain")
    used = order[:done]
    contributions = np.concatenate(parts)
    strings = frozenset(f.name for f in predictor.schema.fields if not f.is_numeric)
    return GlobalAttributions(
        fields=list(first.fields), targets=python_values(first.targets),
        method=first.method, exact=bool(first.exact), output_space=first.output_space, available_rows=n,
        mean_abs=np.abs(contributions).mean(axis=0), contributions=contributions,
        values={name: np.asarray(columns[name])[used] for name in first.fields}, categorical=strings)


def _primary_scorer(task: str, metric: str, y_true: np.ndarray, classes: list[Any]) -> Callable[[Any], float | None]:
    """The evaluation's ``metric`` of a Prediction on ``y_true``, with the labels' class indices
    found once (the same values :func:`classification_metrics` gives, without the other metrics)."""
    if task != "classification":
        return lambda prediction: regression_metrics(y_true, prediction.values).get(metric)
    index = {python_value(c): i for i, c in enumerate(classes)}
    truth = np.array([index.get(python_value(v), -1) for v in y_true])
    known = truth >= 0

    def score(prediction: Any) -> float | None:
        if metric == "accuracy":
            predicted = np.array([index.get(python_value(v), -1) for v in prediction.labels])
            return float(np.mean(truth == predicted)) if len(truth) else None
        probs = np.asarray(prediction.probabilities, dtype=np.float64)[known]
        if len(classes) == 2:
            return roc_auc((truth[known] == 1).astype(int), probs[:, 1])
        aucs = [roc_auc((truth[known] == j).astype(int), probs[:, j]) for j in range(len(classes))]
        found = [a for a in aucs if a is not None]
        return float(np.mean(found)) if found else None

    return score


def permutation_importance(predictor: Any, columns: dict[str, np.ndarray], y_true: Any, task: str, *,
                           repeats: int = 5, seed: int = 0, max_rows: int = PERMUTATION_ROWS) -> PermutationImportance:
    """Permutation importance through onnxruntime on a sample of at most ``max_rows`` rows: per field,
    the drop of the evaluation's primary metric (ROC-AUC, or accuracy when it is undefined; RMSE for
    a regressor, where a drop is an increase) when that field's values are shuffled, ``repeats`` times."""
    rows = np.sort(sample_rows(len(y_true), max_rows, seed))
    sample = {k: np.asarray(v)[rows] for k, v in columns.items()}
    y = np.asarray(y_true, dtype=object if task == "classification" else np.float64)[rows]
    classes = list(predictor.classes or [])
    metric = PRIMARY_METRIC[task]
    unshuffled = predictor.predict_columns(sample)
    baseline = _primary_scorer(task, metric, y, classes)(unshuffled)
    if baseline is None and task == "classification":
        metric = "accuracy"
        baseline = _primary_scorer(task, metric, y, classes)(unshuffled)
    if baseline is None:
        raise MlshipError(f"the {metric} of the model on these rows is undefined")
    scorer = _primary_scorer(task, metric, y, classes)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    rng = np.random.default_rng(seed)
    names = list(predictor.schema.names)
    drops = np.zeros((len(names), repeats))
    for f, name in enumerate(names):
        for r in range(repeats):
            value = scorer(predictor.predict_columns({**sample, name: sample[name][rng.permutation(len(rows))]}))
            drops[f, r] = np.nan if value is None else sign * (baseline - value)
    return PermutationImportance(names, metric, baseline, repeats, int(len(rows)), drops)


def attribution_summary(attributions: GlobalAttributions,
                        permutation: PermutationImportance | None = None) -> dict[str, Any]:
    """The JSON-ready summary: ``method``, ``exact``, ``output_space``, ``rows``, ``targets``,
    ``mean_abs`` (field -> one number per target) and, with labels, ``permutation``
    (field -> ``{"mean", "std"}``)."""
    out: dict[str, Any] = {
        "method": attributions.method, "exact": attributions.exact, "output_space": attributions.output_space,
        "rows": attributions.rows, "targets": jsonable(attributions.targets),
        "mean_abs": {name: [float(v) for v in attributions.mean_abs[i]] for i, name in enumerate(attributions.fields)},
    }
    if permutation is not None:
        out["permutation"] = jsonable(permutation.to_dict())  # a NaN drop would be null, not invalid JSON
    return out


@dataclass
class GlobalExplanation:
    """Attributions (or why there are none) and permutation importance (when labels were given)."""

    attributions: GlobalAttributions | None
    permutation: PermutationImportance | None
    reason: str | None = None  # why there are no attributions
    permutation_reason: str | None = None  # why there is no permutation importance

    def summary(self) -> dict[str, Any] | None:
        """:func:`attribution_summary`, or None when the bundle could not be explained."""
        return None if self.attributions is None else attribution_summary(self.attributions, self.permutation)

    def describe(self) -> str:
        """How the attributions and permutation importance were computed, or why there are none."""
        attr, perm = self.attributions, self.permutation
        if attr is None:
            text = f"No attributions: {str(self.reason).rstrip('.')}."
        else:
            text = (f"{attr.method} ({'exact' if attr.exact else 'approximate'}) on {attr.rows} of "
                    f"{attr.available_rows} rows, contributions in {attr.output_space} space; the plots show "
                    f"{attr.summary_target}.")
        if perm is not None:
            text += (f" Permutation importance: the {perm.worse} of {perm.metric} (baseline {perm.baseline:.4g}) when "
                     f"one field is shuffled, {perm.repeats} repeats on {perm.rows} rows, through onnxruntime.")
        elif self.permutation_reason:
            text += f" No permutation importance: {self.permutation_reason.rstrip('.')}."
        return text

    def to_dict(self) -> dict[str, Any]:
        """The report's ``explanations`` entry."""
        attr, perm = self.attributions, self.permutation
        return jsonable({
            "available": attr is not None, "reason": self.reason, "summary": self.summary(),
            "summary_target": None if attr is None else attr.summary_target,
            "sampled_from": None if attr is None else attr.available_rows,
            "permutation": None if perm is None else {"metric": perm.metric, "baseline": perm.baseline,
                                                      "repeats": perm.repeats, "rows": perm.rows,
                                                      "fields": perm.to_dict()},
            "permutation_reason": self.permutation_reason})


def explain_globally(predictor: Any, columns: dict[str, np.ndarray], y_true: Any = None, *,
                     max_rows: int = DEFAULT_ROWS, seed: int = 0, budget_seconds: float | None = DEFAULT_SECONDS,
                     repeats: int = 5, progress: Callable[[str], None] | None = None) -> GlobalExplanation:
    """Attributions and (with ``y_true``) permutation importance of validated ``columns``; a bundle
    that cannot be explained gets ``reason`` (the :class:`ExplainError` message) instead of attributions."""
    say = progress or (lambda _msg: None)
    n = len(next(iter(columns.values()), []))
    attributions, reason = None, None
    say(f"explaining up to {min(max_rows, n)} rows with the bundle's explainer")
    try:
        attributions = global_attributions(predictor, columns, max_rows=max_rows, seed=seed,
                                           budget_seconds=budget_seconds)
    except MlshipError as exc:  # ExplainError: no explainer; or the explainer failed on these rows
        reason = str(exc)
    permutation, permutation_reason = None, "no labels"
    if y_true is not None:
        permutation_reason = None
        say(f"permutation importance ({repeats} repeats per field, onnxruntime)")
        try:
            permutation = permutation_importance(predictor, columns, y_true, predictor.task, repeats=repeats,
                                                 seed=seed)
        except MlshipError as exc:
            permutation_reason = str(exc)
    return GlobalExplanation(attributions, permutation, reason, permutation_reason)
