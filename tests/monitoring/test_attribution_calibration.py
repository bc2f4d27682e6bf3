"""Attribution drift's threshold, validated by simulation (the issue-19 leftover: its false-positive
rate had not been measured).

The churn bundle's exact TreeSHAP explains a pool of fresh rows from the training distribution
and pools of shifted rows once; resampled baselines and windows then give the statistic's null
distribution (both sides from the same distribution, as a holdout and a quiet window are) and its
power against a shift. Measured when this was written (1,000 resamples): at 500-row baseline and
window the null's 99th percentile is 0.028, none of 1,000 reached the 0.05 threshold; at a
100-row window (the minimum) 1.4% did; a 1-sd shift of the churn generator was always detected,
a 0.5-sd shift in 5% of windows (feature drift catches that one: attribution drift is the
slower, model-centred signal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlship.local.datasets import CHURN_LABEL, make_churn
from mlship.monitoring.attribution import DEFAULT_SAMPLE_ROWS, DEFAULT_THRESHOLD, MIN_ROWS, AttributionBaseline, compare
from mlship.runtime.predictor import Predictor

RESAMPLES = 400


@pytest.fixture(scope="module")
def pools(churn_bundle: Path) -> dict[str, np.ndarray]:
    """|contribution| (rows, fields, targets) of fresh and shifted churn rows, explained once."""
    predictor = Predictor.load(churn_bundle)

    def explained(rows: int, seed: int, shift: float) -> np.ndarray:
        frame = make_churn(rows, seed=seed, shift=shift).drop(columns=[CHURN_LABEL])
        return np.abs(np.asarray(predictor.explain(frame.to_dict(orient="records")).contributions))

    return {"fresh": explained(2500, 31, 0.0), "shifted": explained(600, 32, 1.0)}


def _statistic(baseline_rows: np.ndarray, window_rows: np.ndarray) -> float:
    fields = [f"f{i}" for i in range(baseline_rows.shape[1])]
    baseline = AttributionBaseline(fields=fields, targets=list(range(baseline_rows.shape[2])),
                                   mean_abs=baseline_rows.mean(axis=0), rows=len(baseline_rows), method="tree_shap",
                                   exact=True, output_space="log-odds")
    return compare(baseline, window_rows.mean(axis=0), DEFAULT_THRESHOLD)["value"]


def _null(pool: np.ndarray, window_rows: int, rng: np.random.Generator) -> np.ndarray:
    """The statistic when baseline and window are disjoint samples of the same rows."""
    values = []
    for _ in range(RESAMPLES):
        order = rng.permutation(len(pool))
        baseline = pool[order[:DEFAULT_SAMPLE_ROWS]]
        values.append(_statistic(baseline, pool[order[DEFAULT_SAMPLE_ROWS:DEFAULT_SAMPLE_ROWS + window_rows]]))
    return np.asarray(values)


def test_a_quiet_window_rarely_reaches_the_threshold(pools: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    full = _null(pools["fresh"], DEFAULT_SAMPLE_ROWS, rng)
    smallest = _null(pools["fresh"], MIN_ROWS, rng)
    assert np.mean(full >= DEFAULT_THRESHOLD) <= 0.01, np.quantile(full, [0.5, 0.99])
    assert np.mean(smallest >= DEFAULT_THRESHOLD) <= 0.05, np.quantile(smallest, [0.5, 0.95])
    assert np.median(smallest) > np.median(full)  # the noise the minimum guards against grows as rows shrink


def test_a_shifted_window_reaches_it(pools: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    fresh, shifted = pools["fresh"], pools["shifted"]
    values = np.asarray([_statistic(fresh[rng.permutation(len(fresh))[:DEFAULT_SAMPLE_ROWS]],
                                    shifted[rng.permutation(len(shifted))[:DEFAULT_SAMPLE_ROWS]])
                         for _ in range(RESAMPLES)])
    assert np.mean(values >= DEFAULT_THRESHOLD) >= 0.95, np.quantile(values, [0.05, 0.5])
