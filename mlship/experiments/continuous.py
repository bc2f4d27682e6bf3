"""Continuous metrics: Welch's t-test and the delta-method relative lift (also used for rates).

Functions take summary statistics (scalars or arrays), so simulations run vectorised.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def welch_t(m_c: Any, v_c: Any, n_c: Any, m_t: Any, v_t: Any, n_t: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Welch's t-test of treatment minus control from means, sample variances (ddof=1) and counts:
    ``(t, df, two-sided p)`` with the Welch–Satterthwaite degrees of freedom (Welch 1947), the same as
    ``scipy.stats.ttest_ind(treatment, control, equal_var=False)``."""
    m_c, v_c, n_c, m_t, v_t, n_t = (np.asarray(x, dtype=np.float64) for x in (m_c, v_c, n_c, m_t, v_t, n_t))
    a, b = v_t / n_t, v_c / n_c
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, (m_t - m_c) / np.where(se > 0, se, 1.0), np.nan)
        df = (a + b) ** 2 / (a ** 2 / (n_t - 1) + b ** 2 / (n_c - 1))
    return t, df, 2 * stats.t.sf(np.abs(t), df)


def relative_lift(m_c: Any, v_c: Any, n_c: Any, m_t: Any, v_t: Any, n_t: Any) -> tuple[np.ndarray, np.ndarray]:
    """Relative lift ``m_t / m_c - 1`` and its delta-method variance (Deng, Knoblich & Lu 2018,
    "Applying the Delta Method in Metric Analytics", KDD; the form GrowthBook uses):
    ``v_t / (n_t m_c²) + m_t² v_c / (n_c m_c⁴)``. NaN where the control mean is 0."""
    m_c, v_c, n_c, m_t, v_t, n_t = (np.asarray(x, dtype=np.float64) for x in (m_c, v_c, n_c, m_t, v_t, n_t))
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(m_c != 0, m_c, np.nan)
        lift = m_t / safe - 1
        var = v_t / (n_t * safe ** 2) + m_t ** 2 * v_c / (n_c * safe ** 4)
    return lift, var


def normal_interval(estimate: Any, variance: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``1 - alpha`` normal interval ``estimate ± z sqrt(variance)``."""
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(np.asarray(variance, dtype=np.float64))
    return np.asarray(estimate) - half, np.asarray(estimate) + half
