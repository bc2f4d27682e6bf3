"""Binary metrics (conversion, correct prediction): two-proportion z-test and Bayesian beta-binomial.

Every function takes counts (scalars or numpy arrays of the same shape), so a simulation of many
experiments is one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlship.experiments.results import Serializable


def two_proportion_z(x_c: Any, n_c: Any, x_t: Any, n_t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of treatment minus control: ``(z, two-sided p)``.

    The same statistic as ``statsmodels.stats.proportion.proportions_ztest([x_t, x_c], [n_t, n_c])``
    (pooled variance under H0); NaN where the pooled rate is 0 or 1 (no variation)."""
    x_c, n_c, x_t, n_t = (np.asarray(v, dtype=np.float64) for v in (x_c, n_c, x_t, n_t))
    pooled = (x_c + x_t) / (n_c + n_t)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (x_t / n_t - x_c / n_c) / np.where(se > 0, se, 1.0), np.nan)
    return z, 2 * stats.norm.sf(np.abs(z))


def difference_variance(x_c: Any, n_c: Any, x_t: Any, n_t: Any) -> np.ndarray:
    """Unpooled variance of ``p_t - p_c`` (for intervals and the sequential bound)."""
    p_c, p_t = np.asarray(x_c) / np.asarray(n_c), np.asarray(x_t) / np.asarray(n_t)
    return p_c * (1 - p_c) / np.asarray(n_c) + p_t * (1 - p_t) / np.asarray(n_t)


@dataclass(frozen=True)
class BayesResult(Serializable):
    """Beta-binomial posterior comparison (uniform Beta(1, 1) priors)."""

    prob_treatment_better: float
    expected_loss_treatment: float  # expected rate given up by shipping the treatment if it is worse
    expected_loss_control: float  # expected rate given up by keeping the control if the treatment is better
    draws: int
    seed: int
    prior: tuple[float, float] = (1.0, 1.0)


def beta_binomial(x_c: int, n_c: int, x_t: int, n_t: int, *, draws: int = 200_000, seed: int = 0,
                  prior: tuple[float, float] = (1.0, 1.0)) -> BayesResult:
    """P(p_t > p_c) and expected losses by Monte Carlo over the Beta posteriors (fixed seed: the same
    data give the same numbers). Expected loss as in Stucchio (2015), "Bayesian A/B testing at VWO":
    E[max(p_c - p_t, 0)] for shipping the treatment. Monte-Carlo error of the probability is at most
    0.5 / sqrt(draws) (0.0011 at 200,000 draws)."""
    rng = np.random.default_rng(seed)
    a, b = prior
    c = rng.beta(a + x_c, b + n_c - x_c, draws)
    t = rng.beta(a + x_t, b + n_t - x_t, draws)
    return BayesResult(prob_treatment_better=float(np.mean(t > c)),
                       expected_loss_treatment=float(np.mean(np.maximum(c - t, 0))),
                       expected_loss_control=float(np.mean(np.maximum(t - c, 0))),
                       draws=draws, seed=seed, prior=prior)
