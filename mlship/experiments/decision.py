"""The decision of an A/B analysis, always with the reasons an ML lead can check.

``invalid``: the data cannot support a decision (sample-ratio mismatch, no variation in the
outcome, a guardrail the treatment breaks). ``ship``: the treatment is significantly better.
``keep``: it is significantly worse, or the planned sample was reached with no significant
difference. ``continue``: not significant yet, or (fixed-horizon mode) read before the sample the
MDE needs, where a significant result is not yet a decision (peeking); the reasons give the
estimated remaining units. The sequential mode may decide at any look.
"""

from __future__ import annotations

from mlship.experiments.results import AbTestResult


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.2%}"


def _invalid_reasons(r: AbTestResult, no_variation: bool) -> list[str]:
    out = []
    if r.srm.mismatch:
        obs = ", ".join(f"{k}: {v}" for k, v in r.srm.observed.items())
        exp = ", ".join(f"{k}: {v:.0f}" for k, v in r.srm.expected.items())
        out.append(f"sample ratio mismatch: units {obs} against the design's {exp} (χ² p = {r.srm.p_value:.2e} "
                   f"< {r.srm.threshold}); assignment or logging is broken, so no comparison can be trusted")
    if no_variation:
        out.append("too little data: the outcome has the same value for every unit of both variants")
    out += [f"guardrail {g.name} vetoes the treatment: {g.message}" for g in r.guardrails if not g.passed]
    return out


def decide(r: AbTestResult, no_variation: bool, higher_is_better: bool = True) -> tuple[str, list[str]]:
    """``(decision, reasons)`` for an analysed experiment."""
    t = r.test
    effect = (f"relative lift {_pct(t.relative_lift)} [{_pct(t.relative_lift_ci[0])}, {_pct(t.relative_lift_ci[1])}], "
              f"difference {t.difference:+.4g}, p = {t.p_value:.3g} ({t.method}, α = {t.alpha})")
    invalid = _invalid_reasons(r, no_variation)
    if invalid:
        return "invalid", [*invalid, f"for information only, not a decision: {effect}"]
    reasons = [f"sample ratio matches the design (χ² p = {r.srm.p_value:.3g})"]
    reasons += [f"guardrail {g.name} passed: {g.message}" for g in r.guardrails]
    if r.bayes:
        reasons.append(f"P(treatment better) = {r.bayes['prob_treatment_better']:.3f}, expected loss if shipped "
                       f"{r.bayes['expected_loss_treatment']:.2e}")
    p = r.power
    early = not r.sequential and p is not None and p.remaining_units > 0
    if t.significant and early:
        return "continue", [f"significant at this look but before the planned sample ({effect}); a fixed-horizon "
                            f"test read early inflates false positives: collect about {p.remaining_units} more "
                            f"units ({p.required_control} + {p.required_treatment} planned) or analyse with the "
                            "sequential mode", *reasons]
    if t.significant:
        better = (t.difference > 0) == higher_is_better
        head = "the treatment is significantly better" if better else "the treatment is significantly worse"
        return ("ship" if better else "keep"), [f"{head}: {effect}", *reasons]
    if p is not None and p.remaining_units == 0:
        return "keep", [f"no significant difference after the planned sample ({p.required_control} + "
                        f"{p.required_treatment} units, power {p.power:.0%} for a {p.mde:.1%} lift): {effect}",
                        *reasons]
    if p is None:
        return "continue", [f"not significant yet: {effect}; no sample size estimate (the baseline "
                            f"{r.control.mean:.4g} gives no effect to power for)", *reasons]
    return "continue", [f"not significant yet: {effect}; about {p.remaining_units} more units "
                        f"({p.required_control} + {p.required_treatment} planned, {p.observed_control} + "
                        f"{p.observed_treatment} seen) to detect a {p.mde:.1%} lift with power {p.power:.0%}",
                        *reasons]
