"""Decisions of the analysis on constructed experiments, and typed errors (never a verdict) on bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlship.errors import MlshipError
from mlship.experiments import (
    AbTestConfig,
    Guardrails,
    MissingColumnError,
    TooFewUnitsError,
    UnknownVariantError,
    analyze_table,
)
from mlship.experiments.errors import BadOutcomeError, ExperimentInputError


def _table(n: int, p_c: float, p_t: float, seed: int = 0, **extra: object) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    variant = np.where(rng.random(n) < 0.5, "treatment", "control")
    outcome = (rng.random(n) < np.where(variant == "treatment", p_t, p_c)).astype(int)
    return pd.DataFrame({"variant": variant, "outcome": outcome, **extra})


def test_a_clear_win_at_the_planned_sample_ships() -> None:
    result = analyze_table(_table(20_000, 0.10, 0.13), config=AbTestConfig(mde=0.2))
    assert result.decision == "ship"
    assert result.test.significant and result.test.relative_lift > 0
    assert result.test.relative_lift_ci[0] > 0
    assert result.power is not None and result.power.remaining_units == 0
    assert result.bayes is not None and result.bayes["prob_treatment_better"] > 0.99
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_clear_loss_keeps_the_champion() -> None:
    result = analyze_table(_table(20_000, 0.13, 0.10), config=AbTestConfig(mde=0.2))
    assert result.decision == "keep"
    assert "significantly worse" in result.reasons[0]


def test_no_difference_after_the_planned_sample_keeps() -> None:
    result = analyze_table(_table(20_000, 0.10, 0.10, seed=2), config=AbTestConfig(mde=0.2))
    assert not result.test.significant
    assert result.decision == "keep"
    assert "planned sample" in result.reasons[0]


def test_too_early_continues_with_the_remaining_sample() -> None:
    result = analyze_table(_table(1000, 0.10, 0.11), config=AbTestConfig(mde=0.1))
    assert result.decision == "continue"
    assert result.power is not None and result.power.remaining_units > 0
    assert f"about {result.power.remaining_units} more units" in result.reasons[0]


def test_a_fixed_horizon_win_read_early_is_not_a_decision_but_a_sequential_one_is() -> None:
    df = _table(4000, 0.10, 0.25, seed=3)
    early = analyze_table(df, config=AbTestConfig(mde=0.02))
    assert early.test.significant and early.decision == "continue"
    assert "sequential" in early.reasons[0]
    seq = analyze_table(df, config=AbTestConfig(mde=0.02, sequential=True))
    assert seq.decision == "ship"
    assert seq.test.p_value >= early.test.p_value  # the always-valid p-value is larger
    lo, hi = seq.test.relative_lift_ci
    assert lo < early.test.relative_lift_ci[0] and hi > early.test.relative_lift_ci[1]


def test_continuous_metric_uses_welch_and_delta_method() -> None:
    rng = np.random.default_rng(4)
    variant = np.where(rng.random(8000) < 0.5, "B", "A")
    value = rng.gamma(2.0, np.where(variant == "B", 5.6, 5.0))
    result = analyze_table(pd.DataFrame({"arm": variant, "revenue": value}), variant_column="arm",
                           outcome_column="revenue", control="A", treatment="B",
                           config=AbTestConfig(metric="continuous", mde=0.05))
    assert result.test.method == "Welch t-test" and result.test.df is not None
    assert result.decision == "ship"
    assert result.test.relative_lift == pytest.approx(result.treatment.mean / result.control.mean - 1)


def test_guardrails_veto_a_win() -> None:
    rng = np.random.default_rng(5)
    df = _table(20_000, 0.10, 0.13)
    df["latency_ms"] = rng.gamma(2.0, np.where(df["variant"] == "treatment", 40.0, 20.0))
    df["error"] = (rng.random(len(df)) < 0.01).astype(int)
    guards = Guardrails(max_latency_p99_increase=0.2, max_error_rate=0.05)
    result = analyze_table(df, latency_column="latency_ms", error_column="error",
                           config=AbTestConfig(mde=0.2, guardrails=guards))
    assert result.decision == "invalid"
    latency, errors = result.guardrails
    assert not latency.passed and errors.passed
    assert any("guardrail latency p99 vetoes" in r for r in result.reasons)


def test_a_guardrail_without_data_is_refused() -> None:
    with pytest.raises(ExperimentInputError, match="latency guardrail needs latencies"):
        analyze_table(_table(500, 0.1, 0.1), config=AbTestConfig(guardrails=Guardrails(max_latency_p99_ms=100)))
    with pytest.raises(ExperimentInputError, match="error-rate guardrail"):
        analyze_table(_table(500, 0.1, 0.1), config=AbTestConfig(guardrails=Guardrails(max_error_rate=0.1)))


def test_no_variation_is_invalid() -> None:
    df = pd.DataFrame({"variant": ["control", "treatment"] * 100, "outcome": [0] * 200})
    result = analyze_table(df)
    assert result.decision == "invalid"
    assert any("too little data" in r for r in result.reasons)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"outcome_column": "converted"}, MissingColumnError, "no column 'converted'"),
    ({"treatment": "challenger"}, UnknownVariantError, "'challenger' not in the data"),
    ({"control": "treatment"}, UnknownVariantError, "same variant"),
])
def test_bad_table_input_raises_typed_errors(kwargs: dict[str, str], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        analyze_table(_table(500, 0.1, 0.1), **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, MlshipError)


def test_fewer_units_than_the_minimum_is_refused() -> None:
    with pytest.raises(TooFewUnitsError, match="at least 30"):
        analyze_table(_table(40, 0.5, 0.5))


def test_outcomes_a_binary_metric_cannot_read_are_refused() -> None:
    df = _table(500, 0.1, 0.1)
    df.loc[3, "outcome"] = 7
    with pytest.raises(BadOutcomeError, match="got 7"):
        analyze_table(df)
    df.loc[3, "outcome"] = np.nan
    with pytest.raises(BadOutcomeError, match="not finite"):
        analyze_table(df, config=AbTestConfig(metric="continuous"))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ExperimentInputError, match="alpha"):
        analyze_table(_table(500, 0.1, 0.1), config=AbTestConfig(alpha=1.5))
    with pytest.raises(ExperimentInputError, match="metric"):
        analyze_table(_table(500, 0.1, 0.1), config=AbTestConfig(metric="ratio"))
