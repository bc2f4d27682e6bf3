"""Analyse an A/B test: checks (SRM, guardrails, enough data), the comparison, power, a decision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlship.experiments import power as power_mod
from mlship.experiments import sequential
from mlship.experiments.binary import beta_binomial
from mlship.experiments.config import AbTestConfig
from mlship.experiments.data import ExperimentData, from_frame, read_table
from mlship.experiments.decision import decide
from mlship.experiments.errors import ExperimentInputError, TooFewUnitsError
from mlship.experiments.estimate import Comparison, Moments, compare, moments
from mlship.experiments.guardrails import check_guardrails
from mlship.experiments.results import AbTestResult, PowerResult, TestResult, VariantSummary
from mlship.experiments.srm import srm_check
from mlship.experiments.timeline import timeline


def _summary(name: str, role: str, values: np.ndarray, metric: str) -> VariantSummary:
    successes = int(values.sum()) if metric == "binary" else None
    std = float(values.std(ddof=1)) if values.size > 1 else float("nan")
    return VariantSummary(name, role, int(values.size), float(values.mean()), std, successes)


def _fixed_sample(c: Moments, t: Moments, cfg: AbTestConfig) -> tuple[int, int, float, float, float, str] | None:
    """``(control, treatment, per-unit variance, absolute effect, baseline, method)`` of the
    fixed-horizon test for the MDE; None when the baseline gives no effect to detect."""
    baseline = cfg.baseline if cfg.baseline is not None else float(c.mean)
    effect = abs(baseline * cfg.mde)
    if cfg.metric == "binary":
        if not 0 < baseline < 1:
            return None
        req_c, req_t = power_mod.sample_size_binary(baseline, cfg.mde, alpha=cfg.alpha, power=cfg.power,
                                                    treatment_share=cfg.treatment_share)
        return req_c, req_t, baseline * (1 - baseline), effect, baseline, "NormalIndPower on Cohen's h (statsmodels)"
    unit_var = (float(c.var) + float(t.var)) / 2
    if effect == 0 or unit_var == 0:
        return None
    req_c, req_t = power_mod.sample_size_continuous(baseline, unit_var ** 0.5, cfg.mde, alpha=cfg.alpha,
                                                    power=cfg.power, treatment_share=cfg.treatment_share)
    return req_c, req_t, unit_var, effect, baseline, "TTestIndPower on Cohen's d (statsmodels)"


def _power(c: Moments, t: Moments, cfg: AbTestConfig, rho: float | None) -> PowerResult | None:
    """Sample needed for the MDE (sequential: where the confidence sequence reaches it with the power)."""
    fixed = _fixed_sample(c, t, cfg)
    if fixed is None:
        return None
    req_c, req_t, unit_var, effect, baseline, method = fixed
    if rho is not None:
        w = cfg.treatment_share
        total = power_mod.sample_size_sequential(unit_var / (1 - w) + unit_var / w, effect, alpha=cfg.alpha,
                                                 power=cfg.power, rho=rho)
        req_c, req_t = int(np.ceil(total * (1 - w))), int(np.ceil(total * w))
        method = "normal-mixture confidence sequence (root finding)"
    remaining = max(0, req_c - int(c.n)) + max(0, req_t - int(t.n))
    return PowerResult(cfg.mde, effect, baseline, cfg.alpha, cfg.power, req_c, req_t, int(c.n), int(t.n),
                       remaining, method)


def _rho(cfg: AbTestConfig, c: Moments, t: Moments) -> float | None:
    """ρ of the sequential bound: tuned to ``n_star``, else to the fixed-horizon sample of the MDE."""
    if not cfg.sequential:
        return None
    n_star = cfg.n_star
    if n_star is None:
        fixed = _fixed_sample(c, t, cfg)
        n_star = fixed[0] + fixed[1] if fixed else 1000
    return sequential.mixture_rho(cfg.alpha, max(n_star, 100))


def _test(cmp: Comparison, alpha: float) -> TestResult:
    p = float(cmp.p_value)
    return TestResult(cmp.method, float(cmp.statistic), p, float(cmp.difference),
                      (float(cmp.difference_ci[0]), float(cmp.difference_ci[1])), float(cmp.lift),
                      (float(cmp.lift_ci[0]), float(cmp.lift_ci[1])), alpha, bool(p < alpha),
                      None if cmp.df is None else float(cmp.df))


def analyze(data: ExperimentData, config: AbTestConfig | None = None) -> AbTestResult:
    """The analysis and decision of an experiment's two arms (see :func:`mlship.experiments.decision.decide`)."""
    cfg = config or AbTestConfig()
    cfg.validate()
    for name, arm in ((data.control_name, data.control), (data.treatment_name, data.treatment)):
        if len(arm) < cfg.min_units:
            raise TooFewUnitsError(f"variant {name!r} has {len(arm)} unit(s); the analysis needs at least "
                                   f"{cfg.min_units} per variant")
    _require_guardrail_data(cfg, data)
    c, t = moments(data.control.outcome, cfg.metric), moments(data.treatment.outcome, cfg.metric)
    srm = srm_check({data.control_name: len(data.control), data.treatment_name: len(data.treatment)},
                    {data.control_name: 1 - cfg.treatment_share, data.treatment_name: cfg.treatment_share},
                    cfg.srm_threshold)
    rho = _rho(cfg, c, t)
    test = _test(compare(c, t, cfg.metric, cfg.alpha, rho), cfg.alpha)
    power = _power(c, t, cfg, rho)
    guards = check_guardrails(cfg.guardrails, _pair(data, "latency"), _pair(data, "error"))
    bayes = None
    if cfg.metric == "binary":
        bayes = beta_binomial(int(data.control.outcome.sum()), len(data.control), int(data.treatment.outcome.sum()),
                              len(data.treatment), draws=cfg.bayes_draws, seed=cfg.seed).to_dict()
    result = AbTestResult(cfg.metric, "continue", [], _summary(data.control_name, "control", data.control.outcome,
                                                               cfg.metric),
                          _summary(data.treatment_name, "treatment", data.treatment.outcome, cfg.metric), test, srm,
                          power, cfg.sequential, guards, bayes, timeline(data, cfg.metric, cfg.alpha, rho),
                          dict(data.excluded), {**cfg.to_dict(), "rho": rho})
    result.decision, result.reasons = decide(result, c.var == 0 and t.var == 0, cfg.higher_is_better)
    return result


def _require_guardrail_data(cfg: AbTestConfig, data: ExperimentData) -> None:
    """A guardrail that was asked for must have data: refuse rather than silently pass it."""
    if cfg.guardrails.latency and _pair(data, "latency") is None:
        raise ExperimentInputError("a latency guardrail needs latencies: a latency column (table) or records "
                                   "with latency_ms")
    if cfg.guardrails.errors and _pair(data, "error") is None:
        raise ExperimentInputError("an error-rate guardrail needs error flags: an error column (table) or "
                                   "records with an error field")


def _pair(data: ExperimentData, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    a, b = getattr(data.control, what), getattr(data.treatment, what)
    return None if a is None or b is None else (a, b)


def analyze_table(table: Any, *, variant_column: str = "variant", outcome_column: str = "outcome",
                  control: str = "control", treatment: str = "treatment", time_column: str | None = None,
                  latency_column: str | None = None, error_column: str | None = None,
                  config: AbTestConfig | None = None) -> AbTestResult:
    """Analyse a per-unit table: a DataFrame or the path of a CSV/Parquet file."""
    cfg = config or AbTestConfig()
    df = read_table(table) if isinstance(table, (str, Path)) else table
    data = from_frame(df, variant_column=variant_column, outcome_column=outcome_column, control=control,
                      treatment=treatment, metric=cfg.metric, time_column=time_column,
                      latency_column=latency_column, error_column=error_column)
    return analyze(data, cfg)


def analyze_s3(bucket: str, prefix: str, *, labels_prefix: str = "labels", model: str | None = None,
               control: str = "control", treatment: str = "treatment", outcome: str = "correct",
               unit_field: str | None = None, config: AbTestConfig | None = None) -> AbTestResult:
    """Analyse inference records under ``s3://bucket/prefix`` joined with their late labels."""
    from mlship.experiments.labelled import load_s3

    cfg = config or AbTestConfig()
    cfg.validate()
    data = load_s3(bucket, prefix, labels_prefix=labels_prefix, model=model, control=control, treatment=treatment,
                   metric=cfg.metric, outcome=outcome, unit_field=unit_field)
    return analyze(data, cfg)
