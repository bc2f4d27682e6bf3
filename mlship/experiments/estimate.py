"""The comparison of two arms from their moments: the fixed-horizon test or the sequential one.

Works on scalars for a report and on arrays for simulations and the cumulative timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlship.experiments import sequential
from mlship.experiments.binary import difference_variance, two_proportion_z
from mlship.experiments.continuous import normal_interval, relative_lift, welch_t


@dataclass
class Moments:
    """Count, mean and per-unit variance of an arm (binary: p(1-p); continuous: sample variance)."""

    n: Any
    mean: Any
    var: Any


def moments(values: np.ndarray, metric: str) -> Moments:
    """Moments of one arm's outcomes."""
    n = values.size
    mean = float(values.mean())
    var = mean * (1 - mean) if metric == "binary" else float(values.var(ddof=1))
    return Moments(n, mean, var)


def cumulative_moments(values: np.ndarray, metric: str) -> Moments:
    """Moments after each unit along the last axis (vectorised over leading axes, e.g. experiments)."""
    n = np.arange(1, values.shape[-1] + 1, dtype=np.float64)
    s = np.cumsum(values, axis=-1)
    mean = s / n
    if metric == "binary":
        return Moments(n, mean, mean * (1 - mean))
    q = np.cumsum(values * values, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n > 1, (q - n * mean * mean) / np.maximum(n - 1, 1), np.nan)
    return Moments(n, mean, np.maximum(var, 0))


@dataclass
class Comparison:
    """Treatment minus control: statistic, p-value, difference and relative lift with intervals."""

    method: str
    statistic: Any
    p_value: Any
    difference: Any
    difference_ci: tuple[Any, Any]
    lift: Any
    lift_ci: tuple[Any, Any]
    df: Any = None


def compare(c: Moments, t: Moments, metric: str, alpha: float, rho: float | None = None) -> Comparison:
    """The fixed-horizon comparison, or with ``rho`` the always-valid one (confidence sequences)."""
    diff = np.asarray(t.mean) - np.asarray(c.mean)
    if metric == "binary":
        stat, p = two_proportion_z(c.mean * c.n, c.n, t.mean * t.n, t.n)
        var_diff, df, method = difference_variance(c.mean * c.n, c.n, t.mean * t.n, t.n), None, "two-proportion z-test"
        diff_ci = normal_interval(diff, var_diff, alpha)
    else:
        stat, df, p = welch_t(c.mean, c.var, c.n, t.mean, t.var, t.n)
        var_diff, method = t.var / t.n + c.var / c.n, "Welch t-test"
        half = stats.t.ppf(1 - alpha / 2, df) * np.sqrt(var_diff)
        diff_ci = (diff - half, diff + half)
    lift, var_lift = relative_lift(c.mean, c.var, c.n, t.mean, t.var, t.n)
    lift_ci = normal_interval(lift, var_lift, alpha)
    if rho is None:
        return Comparison(method, stat, p, diff, diff_ci, lift, lift_ci, df)
    n = np.asarray(c.n) + np.asarray(t.n)
    h_diff = sequential.halfwidth(var_diff, n, alpha, rho)
    h_lift = sequential.halfwidth(var_lift, n, alpha, rho)
    return Comparison(f"{method}, sequential (normal-mixture confidence sequence)", stat,
                      sequential.always_valid_p(diff, var_diff, n, rho), diff, (diff - h_diff, diff + h_diff), lift,
                      (lift - h_lift, lift + h_lift), df)
