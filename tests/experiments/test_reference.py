"""The A/B statistics equal scipy / statsmodels where both compute them, and the parts they lack
(delta-method lift, Monte-Carlo beta-binomial) agree with a closed form or cover at their level."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

from mlship.experiments.binary import beta_binomial, two_proportion_z
from mlship.experiments.continuous import normal_interval, relative_lift, welch_t
from mlship.experiments.power import sample_size_binary, sample_size_continuous
from mlship.experiments.sequential import always_valid_p, halfwidth, mixture_rho
from mlship.experiments.srm import srm_check


@settings(max_examples=200, deadline=None)
@given(st.integers(30, 100_000), st.integers(30, 100_000), st.floats(0.01, 0.99), st.floats(0.01, 0.99))
def test_z_test_equals_statsmodels(n_c: int, n_t: int, p_c: float, p_t: float) -> None:
    x_c, x_t = round(n_c * p_c), round(n_t * p_t)
    z, p = two_proportion_z(x_c, n_c, x_t, n_t)
    with np.errstate(all="ignore"):
        ref_z, ref_p = proportions_ztest([x_t, x_c], [n_t, n_c])
    # both NaN when no unit of either arm succeeded (or every one did): no variation to test
    np.testing.assert_allclose([z, p], [ref_z, ref_p], rtol=1e-9, atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
def test_welch_equals_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = rng.lognormal(1.0, 0.8, rng.integers(20, 3000))
    t = rng.lognormal(1.05, 1.1, rng.integers(20, 3000))
    stat, df, p = welch_t(c.mean(), c.var(ddof=1), c.size, t.mean(), t.var(ddof=1), t.size)
    ref = stats.ttest_ind(t, c, equal_var=False)
    assert float(stat) == pytest.approx(ref.statistic, rel=1e-10)
    assert float(p) == pytest.approx(ref.pvalue, rel=1e-9)
    assert float(df) == pytest.approx(ref.df, rel=1e-10)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 50_000), st.integers(0, 50_000), st.floats(0.05, 0.95))
def test_srm_equals_scipy_chisquare(a: int, b: int, share: float) -> None:
    if a + b == 0:
        return
    got = srm_check({"A": a, "B": b}, {"A": 1 - share, "B": share})
    ref = stats.chisquare([a, b], [(a + b) * (1 - share), (a + b) * share])
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10, abs=1e-12)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert got.mismatch == (ref.pvalue < 0.001)


def test_sample_sizes_are_statsmodels_solutions() -> None:
    n_c, n_t = sample_size_binary(0.10, 0.2, alpha=0.05, power=0.8)
    h = proportion_effectsize(0.12, 0.10)
    assert n_c == n_t == int(np.ceil(NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=1.0)))
    n_c, n_t = sample_size_binary(0.10, 0.2, treatment_share=0.25)
    assert n_t == pytest.approx(n_c / 3, abs=1)
    n_c, _ = sample_size_continuous(10.0, 4.0, 0.05)
    assert n_c == int(np.ceil(TTestIndPower().solve_power(0.5 / 4.0, alpha=0.05, power=0.8, ratio=1.0)))


def _prob_b_beats_a(a1: int, b1: int, a2: int, b2: int) -> float:
    """Closed form P(p_B > p_A), p_A ~ Beta(a1, b1), p_B ~ Beta(a2, b2) (Evan Miller, 2015)."""
    i = np.arange(a2)
    return float(np.sum(np.exp(special.betaln(a1 + i, b1 + b2) - np.log(b2 + i)
                               - special.betaln(1 + i, b2) - special.betaln(a1, b1))))


@pytest.mark.parametrize(("x_c", "n_c", "x_t", "n_t"), [(100, 1000, 120, 1000), (30, 400, 28, 380), (5, 60, 9, 55)])
def test_beta_binomial_matches_closed_form(x_c: int, n_c: int, x_t: int, n_t: int) -> None:
    got = beta_binomial(x_c, n_c, x_t, n_t)
    exact = _prob_b_beats_a(1 + x_c, 1 + n_c - x_c, 1 + x_t, 1 + n_t - x_t)
    assert got.prob_treatment_better == pytest.approx(exact, abs=4 * 0.5 / np.sqrt(got.draws))
    assert beta_binomial(x_c, n_c, x_t, n_t) == got  # fixed seed: reproducible
    assert got.expected_loss_treatment >= 0 and got.expected_loss_control >= 0


def test_delta_method_lift_interval_covers_at_its_level() -> None:
    """2,000 simulated experiments (skewed outcomes): the 95 % interval of m_t/m_c - 1 covers the true lift."""
    rng = np.random.default_rng(7)
    n, mu_c, mu_t = 800, 2.0, 2.2
    c = rng.exponential(mu_c, (2000, n))
    t = rng.exponential(mu_t, (2000, n))
    lift, var = relative_lift(c.mean(1), c.var(1, ddof=1), n, t.mean(1), t.var(1, ddof=1), n)
    low, high = normal_interval(lift, var, 0.05)
    coverage = np.mean((low <= mu_t / mu_c - 1) & (mu_t / mu_c - 1 <= high))
    assert abs(coverage - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 2000) + 0.005


@settings(max_examples=200, deadline=None)
@given(st.floats(-5, 5), st.floats(1e-4, 10), st.integers(10, 10**7), st.floats(0.001, 0.2), st.integers(100, 10**6))
def test_sequential_p_value_and_interval_agree(estimate: float, variance: float, n: int, alpha: float,
                                               n_star: int) -> None:
    """The always-valid p-value is below α exactly when the confidence sequence excludes 0."""
    rho = mixture_rho(alpha, n_star)
    p = float(always_valid_p(estimate, variance, n, rho))
    half = float(halfwidth(variance, n, alpha, rho))
    if abs(abs(estimate) - half) > 1e-9 * max(half, 1.0):
        assert (p < alpha) == (abs(estimate) > half)
