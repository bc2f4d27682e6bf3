"""Always-valid inference: the normal-mixture confidence sequence and its p-value.

Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Annals of Statistics 49(2), eq. (14) (two-sided normal mixture), in the asymptotic form
of Waudby-Smith et al. (2021) "Time-uniform central limit theory", as GrowthBook's sequential engine
uses it. With ``s² = n · Var(estimate)`` (the per-unit variance) the half-width after ``n`` units is

    sqrt(s²) · sqrt( 2 (n ρ² + 1) / (n² ρ²) · log( sqrt(n ρ² + 1) / α ) )

and the interval covers the true effect at every look simultaneously with probability >= 1 - α, so
the experiment may be read after every batch of units. ``ρ`` sets the sample size at which the
bound is tightest (:func:`mixture_rho`). The p-value is the smallest α whose interval excludes 0
(the mixture sequential probability ratio test of Robbins 1970 / Johari et al. 2017).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mixture_rho(alpha: float, n_star: float) -> float:
    """ρ that makes the bound tightest at ``n_star`` units (Howard et al. 2021; GrowthBook's formula)."""
    two_log = -2 * np.log(alpha)
    return float(np.sqrt((two_log + np.log(two_log + 1)) / n_star))


def halfwidth(variance: Any, n: Any, alpha: float, rho: float) -> np.ndarray:
    """Half-width of the ``1 - alpha`` confidence sequence for an estimate with variance ``variance``
    after ``n`` units in total."""
    n = np.asarray(n, dtype=np.float64)
    s2 = np.asarray(variance, dtype=np.float64) * n
    r2 = rho * rho
    return np.sqrt(s2 * 2 * (n * r2 + 1) / (n * n * r2) * np.log(np.sqrt(n * r2 + 1) / alpha))


def always_valid_p(estimate: Any, variance: Any, n: Any, rho: float) -> np.ndarray:
    """The always-valid p-value: ``min(1, sqrt(nρ²+1) · exp(-z² nρ² / (2 (nρ²+1))))`` with
    ``z² = estimate² / variance``; NaN where the variance is 0."""
    n = np.asarray(n, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z2 = np.where(var > 0, np.asarray(estimate) ** 2 / np.where(var > 0, var, 1.0), np.nan)
    k = n * rho * rho
    return np.minimum(1.0, np.sqrt(k + 1) * np.exp(-z2 * k / (2 * (k + 1))))
