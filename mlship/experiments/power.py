"""Sample size for a minimum detectable effect (MDE), fixed-horizon and sequential.

Fixed horizon: statsmodels' power solvers, ``NormalIndPower`` on Cohen's h
(``proportion_effectsize``) for rates and ``TTestIndPower`` on Cohen's d for means. Sequential:
the total sample at which the normal-mixture confidence sequence (:mod:`.sequential`) is expected
to exclude 0 with the stated power when the true effect is the MDE, found by root finding.
"""

from __future__ import annotations

import math

from scipy import optimize, stats

from mlship.experiments import sequential


def _ratio(treatment_share: float) -> float:
    return treatment_share / (1 - treatment_share)


def sample_size_binary(baseline: float, mde: float, *, alpha: float = 0.05, power: float = 0.8,
                       treatment_share: float = 0.5) -> tuple[int, int]:
    """Units (control, treatment) a two-sided z-test needs to detect a relative lift ``mde`` on a
    rate ``baseline`` at level ``alpha`` with probability ``power``."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    target = min(baseline * (1 + mde), 1 - 1e-9)
    h = abs(float(proportion_effectsize(target, baseline)))
    n_c = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=_ratio(treatment_share),
                                       alternative="two-sided")
    return math.ceil(n_c), math.ceil(n_c * _ratio(treatment_share))


def sample_size_continuous(mean: float, sd: float, mde: float, *, alpha: float = 0.05, power: float = 0.8,
                           treatment_share: float = 0.5) -> tuple[int, int]:
    """Units (control, treatment) a two-sided t-test needs to detect a relative change ``mde`` of a
    mean ``mean`` with per-unit standard deviation ``sd``."""
    from statsmodels.stats.power import TTestIndPower

    d = abs(mean * mde) / sd
    n_c = TTestIndPower().solve_power(effect_size=d, alpha=alpha, power=power, ratio=_ratio(treatment_share),
                                      alternative="two-sided")
    return math.ceil(n_c), math.ceil(n_c * _ratio(treatment_share))


def sample_size_sequential(unit_variance: float, effect: float, *, alpha: float, power: float, rho: float) -> int:
    """Total units at which the confidence sequence's half-width plus ``z_power`` standard errors
    equals ``effect`` (absolute), i.e. a true effect of that size is excluded from 0 with about
    ``power``. ``unit_variance`` is n times the variance of the difference estimate."""
    z = stats.norm.ppf(power)

    def gap(log_n: float) -> float:
        n = math.exp(log_n)
        return float(sequential.halfwidth(unit_variance / n, n, alpha, rho)) + z * math.sqrt(unit_variance / n) - effect

    lo, hi = math.log(4), math.log(1e12)
    if gap(lo) <= 0:
        return 4
    if gap(hi) > 0:
        return 10 ** 12
    return math.ceil(math.exp(optimize.brentq(gap, lo, hi)))
