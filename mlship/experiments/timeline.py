"""The cumulative comparison over units in arrival order (the report's lift-over-time plot)."""

from __future__ import annotations

import numpy as np

from mlship.experiments.data import ExperimentData
from mlship.experiments.estimate import Moments, compare, cumulative_moments
from mlship.experiments.results import TimelinePoint

POINTS = 80


def timeline(data: ExperimentData, metric: str, alpha: float, rho: float | None,
             points: int = POINTS) -> list[TimelinePoint]:
    """Relative lift, its interval (the confidence sequence when ``rho`` is set) and p-value after
    about ``points`` evenly spaced numbers of units."""
    total = len(data.control) + len(data.treatment)
    is_t = np.zeros(total, dtype=bool)
    is_t[data.treatment.order] = True
    y = np.empty(total)
    y[data.control.order] = data.control.outcome
    y[data.treatment.order] = data.treatment.outcome
    c_all = cumulative_moments(data.control.outcome, metric)
    t_all = cumulative_moments(data.treatment.outcome, metric)
    n_t = np.cumsum(is_t)
    n_c = np.arange(1, total + 1) - n_t
    at = np.unique(np.linspace(0, total - 1, points).astype(int))
    at = at[(n_c[at] >= 2) & (n_t[at] >= 2)]
    ci, ti = n_c[at] - 1, n_t[at] - 1

    def pick(m: Moments, i: np.ndarray) -> Moments:
        return Moments(m.n[i], m.mean[i], m.var[i])

    cmp = compare(pick(c_all, ci), pick(t_all, ti), metric, alpha, rho)
    keep = np.isfinite(cmp.lift) & np.isfinite(cmp.lift_ci[0])
    return [TimelinePoint(int(at[k] + 1), float(cmp.lift[k]), float(cmp.lift_ci[0][k]), float(cmp.lift_ci[1][k]),
                          float(cmp.p_value[k]))
            for k in np.flatnonzero(keep)]
