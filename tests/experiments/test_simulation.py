"""Statistical validity by simulation (vectorised: each experiment is a row of arrays).

- A/A with a look every 100 units: the sequential mode declares a difference in at most α of the
  experiments (plus Monte-Carlo error); a fixed-horizon z-test read at every look exceeds α.
- A true effect of the MDE at the sample the power calculation gives is detected at about the
  stated power (fixed-horizon and sequential).
- A 45/55 split on a 50/50 design is flagged as a sample-ratio mismatch; a 50/50 one rarely.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlship.experiments import AbTestConfig, analyze_table
from mlship.experiments.estimate import Moments, compare
from mlship.experiments.power import sample_size_binary, sample_size_continuous, sample_size_sequential
from mlship.experiments.sequential import mixture_rho
from mlship.experiments.srm import srm_check

ALPHA = 0.05
EXPERIMENTS = 1000
UNITS = 3000  # per experiment, 30 looks of 100 units
LOOKS = np.arange(100, UNITS + 1, 100) - 1


def _mc_error(rate: float, n: int) -> float:
    return 3 * np.sqrt(rate * (1 - rate) / n)


def _looks(assign: np.ndarray, y: np.ndarray, metric: str) -> tuple[Moments, Moments]:
    """Moments of both arms at every look (experiments × looks)."""
    def arm(mask: np.ndarray) -> Moments:
        n = np.cumsum(mask, axis=1)[:, LOOKS].astype(float)
        s = np.cumsum(y * mask, axis=1)[:, LOOKS]
        mean = s / n
        if metric == "binary":
            return Moments(n, mean, mean * (1 - mean))
        q = np.cumsum(y * y * mask, axis=1)[:, LOOKS]
        return Moments(n, mean, (q - n * mean * mean) / (n - 1))
    return arm(~assign), arm(assign)


def _aa(metric: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Share of A/A experiments declared different at any look: (sequential, fixed read at every look)."""
    rng = np.random.default_rng(seed)
    assign = rng.random((EXPERIMENTS, UNITS)) < 0.5
    y = (rng.random((EXPERIMENTS, UNITS)) < 0.2).astype(float) if metric == "binary" else \
        rng.lognormal(0.0, 0.75, (EXPERIMENTS, UNITS))
    c, t = _looks(assign, y, metric)
    with np.errstate(all="ignore"):
        seq = compare(c, t, metric, ALPHA, mixture_rho(ALPHA, UNITS)).p_value
        fixed = compare(c, t, metric, ALPHA).p_value
    return np.mean(np.any(seq < ALPHA, axis=1)), np.mean(np.any(fixed < ALPHA, axis=1))


@pytest.mark.parametrize(("metric", "seed"), [("binary", 1), ("continuous", 2)])
def test_aa_sequential_keeps_alpha_and_peeking_does_not(metric: str, seed: int) -> None:
    sequential_rate, peeking_rate = _aa(metric, seed)
    print(f"A/A {metric}: sequential {sequential_rate:.3f}, fixed z read at 30 looks {peeking_rate:.3f}")
    assert sequential_rate <= ALPHA + _mc_error(ALPHA, EXPERIMENTS)
    assert peeking_rate > ALPHA + _mc_error(ALPHA, EXPERIMENTS)  # the peeking problem
    assert peeking_rate > 2 * ALPHA


def test_binary_power_at_the_planned_sample() -> None:
    """Baseline 10 %, MDE +20 % relative: statsmodels' sample gives about 80 % detections."""
    rng = np.random.default_rng(3)
    n_c, n_t = sample_size_binary(0.10, 0.20, alpha=ALPHA, power=0.8)
    sims = 4000
    c = Moments(np.full(sims, n_c, float), rng.binomial(n_c, 0.10, sims) / n_c, None)
    t = Moments(np.full(sims, n_t, float), rng.binomial(n_t, 0.12, sims) / n_t, None)
    c.var, t.var = c.mean * (1 - c.mean), t.mean * (1 - t.mean)
    rate = np.mean(compare(c, t, "binary", ALPHA).p_value < ALPHA)
    print(f"binary power at n={n_c}+{n_t}: {rate:.3f}")
    assert abs(rate - 0.8) <= _mc_error(0.8, sims) + 0.01  # + Cohen's h vs pooled z approximation


def test_continuous_power_at_the_planned_sample() -> None:
    """Normal outcomes, mean 10, sd 4, MDE +5 %: TTestIndPower's sample gives about 80 % detections."""
    rng = np.random.default_rng(4)
    n, _ = sample_size_continuous(10.0, 4.0, 0.05, alpha=ALPHA, power=0.8)
    sims = 4000
    mean_c, mean_t = rng.normal(10.0, 4.0 / np.sqrt(n), sims), rng.normal(10.5, 4.0 / np.sqrt(n), sims)
    var_c, var_t = (16.0 * rng.chisquare(n - 1, (2, sims)) / (n - 1))
    nn = np.full(sims, n, float)
    rate = np.mean(compare(Moments(nn, mean_c, var_c), Moments(nn, mean_t, var_t), "continuous", ALPHA).p_value
                   < ALPHA)
    print(f"continuous power at n={n} per arm: {rate:.3f}")
    assert abs(rate - 0.8) <= _mc_error(0.8, sims) + 0.005


def test_sequential_power_by_its_planned_sample() -> None:
    """By the sequential sample for the MDE, the always-valid test (read every 100 units) has detected a
    true effect of the MDE in at least about the stated share of experiments."""
    rng = np.random.default_rng(5)
    p_c, p_t, sims = 0.2, 0.24, 2000
    fixed = sum(sample_size_binary(p_c, 0.2, alpha=ALPHA, power=0.8))
    rho = mixture_rho(ALPHA, fixed)
    total = sample_size_sequential(2 * 2 * p_c * (1 - p_c), p_t - p_c, alpha=ALPHA, power=0.8, rho=rho)
    assign = rng.random((sims, total)) < 0.5
    y = rng.random((sims, total)) < np.where(assign, p_t, p_c)
    looks = np.unique(np.append(np.arange(100, total, 100), total)) - 1
    n_t = np.cumsum(assign, 1, dtype=np.int32)[:, looks].astype(float)
    n_c = looks + 1 - n_t
    x_t = np.cumsum(y & assign, 1, dtype=np.int32)[:, looks]
    x_c = np.cumsum(y & ~assign, 1, dtype=np.int32)[:, looks]
    c = Moments(n_c, x_c / n_c, x_c / n_c * (1 - x_c / n_c))
    t = Moments(n_t, x_t / n_t, x_t / n_t * (1 - x_t / n_t))
    with np.errstate(all="ignore"):
        p = compare(c, t, "binary", ALPHA, rho).p_value
    at_end, any_look = np.mean(p[:, -1] < ALPHA), np.mean(np.any(p < ALPHA, axis=1))
    print(f"sequential: {total} units (fixed {fixed}); detected at the end {at_end:.3f}, by then {any_look:.3f}")
    assert total > fixed  # always-valid inference costs sample
    assert any_look >= 0.8 - _mc_error(0.8, sims)
    assert any_look <= 0.8 + 0.1  # not wildly over-sized either


def test_srm_flags_a_45_55_split_on_a_50_50_design() -> None:
    rng = np.random.default_rng(6)
    sims, units = 1000, 5000
    skewed = rng.binomial(units, 0.55, sims)
    fair = rng.binomial(units, 0.50, sims)
    flag = np.array([srm_check({"A": units - b, "B": b}, {"A": 1, "B": 1}).mismatch for b in skewed])
    false_flag = np.array([srm_check({"A": units - b, "B": b}, {"A": 1, "B": 1}).mismatch for b in fair])
    print(f"SRM flagged: 45/55 {flag.mean():.3f}, 50/50 {false_flag.mean():.3f}")
    assert flag.mean() > 0.99
    assert false_flag.mean() <= 0.001 + _mc_error(0.001, sims)


def test_srm_blocks_the_decision() -> None:
    rng = np.random.default_rng(8)
    variant = np.where(rng.random(4000) < 0.55, "treatment", "control")
    outcome = (rng.random(4000) < np.where(variant == "treatment", 0.3, 0.1)).astype(int)  # a huge "win"
    result = analyze_table(pd.DataFrame({"variant": variant, "outcome": outcome}), config=AbTestConfig(mde=0.5))
    assert result.srm.mismatch
    assert result.decision == "invalid"
    assert any("sample ratio mismatch" in r for r in result.reasons)
