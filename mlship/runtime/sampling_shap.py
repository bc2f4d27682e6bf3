"""Approximate Shapley values for any model the bundle serves, by permutation sampling on its fields.

For a row ``x`` and a weighted background (rows stored in the bundle at export), a permutation of
the fields adds ``x``'s values one field at a time to each background row; the change of the
model's output at each step is that field's marginal contribution (Štrumbelj & Kononenko 2014,
"Explaining prediction models and individual predictions with feature contributions"). The
permutations come in antithetic pairs (a permutation and its reverse), which lowers the variance
of the estimate (Mitchell et al. 2022, "Sampling permutations for Shapley value estimation").

Each permutation's contributions telescope to ``f(x) - f(b)``, so base value plus contributions
equal the model's output exactly, whatever the number of permutations. The permutations depend on
the number of fields and the budget only, never on the other rows of a request: the same input
gets the same explanation on every path. numpy only: this runs in Lambda and on devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_BUDGET = 1024  # model evaluations per explained row (SageMaker Clarify: 2^f - 2, 1,022 at 10 fields)
EVALS_PER_CALL = 65_536  # hybrid rows per model call: bounds the memory of one pass
SEED = 20_190_638  # fixed: the permutations are part of the explainer, not of a request

Columns = dict[str, np.ndarray]
Model = Callable[[Columns], np.ndarray]  # validated columns -> (rows, targets) outputs


@dataclass(frozen=True)
class SamplingPlan:
    """The permutations and background rows one explained row is evaluated on."""

    permutations: np.ndarray  # (P, fields): each row a permutation of the field indices
    background: Columns  # the background rows, validated (B rows)
    weights: np.ndarray  # (B,), summing to 1

    @property
    def evaluations(self) -> int:
        """Model evaluations per explained row."""
        p, f = self.permutations.shape
        return p * len(self.weights) * (f + 1)


def plan(n_fields: int, background: Columns, weights: np.ndarray, budget: int = DEFAULT_BUDGET) -> SamplingPlan:
    """The largest even number of permutations (at least 2) over the background that fits ``budget``.

    When even two permutations over every background row exceed it, the heaviest background rows
    are kept (their weights renormalised) so that the cost stays bounded.
    """
    weights = np.asarray(weights, dtype=np.float64)
    per_permutation = n_fields + 1
    kept = int(np.clip(budget // (2 * per_permutation), 1, len(weights)))
    if kept < len(weights):
        heaviest = np.sort(np.argsort(-weights, kind="stable")[:kept])
        background = {name: values[heaviest] for name, values in background.items()}
        weights = weights[heaviest]
    pairs = max(1, budget // (2 * per_permutation * kept))
    rng = np.random.default_rng(SEED + n_fields)
    forward = np.stack([rng.permutation(n_fields) for _ in range(pairs)])
    permutations = np.stack([forward, forward[:, ::-1]], axis=1).reshape(2 * pairs, n_fields)
    return SamplingPlan(permutations, background, weights / weights.sum())


def base_value(model: Model, sampling: SamplingPlan) -> np.ndarray:
    """The weighted mean output over the background: what the contributions start from."""
    return np.asarray(sampling.weights @ np.asarray(model(sampling.background), dtype=np.float64))


def shapley_values(model: Model, columns: Columns, fields: list[str], sampling: SamplingPlan) -> np.ndarray:
    """(rows, fields, targets) contributions of each of ``fields`` for validated ``columns`` (at least one row)."""
    n_rows = len(columns[fields[0]])
    rows_per_pass = max(1, EVALS_PER_CALL // sampling.evaluations)
    return np.concatenate([
        _explain_rows(model, {name: columns[name][start:start + rows_per_pass] for name in fields}, fields, sampling)
        for start in range(0, n_rows, rows_per_pass)])


def _explain_rows(model: Model, columns: Columns, fields: list[str], sampling: SamplingPlan) -> np.ndarray:
    n_rows = len(columns[fields[0]])
    perms = sampling.permutations
    p, n_fields = perms.shape
    n_background = len(sampling.weights)
    steps = n_fields + 1
    # mask[p, k, field]: the field comes from x at step k of permutation p (its rank in p is below k)
    rank = np.argsort(perms, axis=1)
    mask = rank[:, None, :] < np.arange(steps)[None, :, None]
    row_of = np.repeat(np.arange(n_rows), p * n_background * steps)
    background_of = np.tile(np.repeat(np.arange(n_background), steps), n_rows * p)
    from_x = np.tile(np.repeat(mask, n_background, axis=0).reshape(-1, n_fields), (n_rows, 1))
    hybrid = {}
    for index, name in enumerate(fields):
        hybrid[name] = np.where(from_x[:, index], columns[name][row_of], sampling.background[name][background_of])
    outputs = np.asarray(model(hybrid), dtype=np.float64)
    outputs = outputs.reshape(n_rows, p, n_background, steps, -1)
    marginal = np.einsum("rpbkt,b->rpkt", np.diff(outputs, axis=3), sampling.weights) / p
    values = np.zeros((n_rows, n_fields, outputs.shape[-1]))
    for k in range(p):
        values[:, perms[k], :] += marginal[:, k]
    return values
