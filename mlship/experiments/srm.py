"""Sample-ratio mismatch: do the unit counts match the traffic split the test was designed with?

A mismatch means assignment or logging is broken (a variant drops units), so no comparison of the
arms can be trusted (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled
Experiments", KDD). The threshold 0.001 is GrowthBook's default: a healthy test is flagged once
in a thousand.
"""

from __future__ import annotations

from scipy import stats

from mlship.experiments.results import SrmResult

SRM_THRESHOLD = 0.001


def srm_check(counts: dict[str, int], weights: dict[str, float], threshold: float = SRM_THRESHOLD) -> SrmResult:
    """χ² goodness of fit (``scipy.stats.chisquare``) of ``counts`` to ``weights`` (same keys, any scale)."""
    names = list(counts)
    total = sum(counts.values())
    scale = sum(weights[n] for n in names)
    expected = {n: total * weights[n] / scale for n in names}
    stat, p = stats.chisquare([counts[n] for n in names], [expected[n] for n in names])
    return SrmResult(observed=dict(counts), expected=expected, statistic=float(stat), p_value=float(p),
                     threshold=threshold, mismatch=bool(p < threshold))
