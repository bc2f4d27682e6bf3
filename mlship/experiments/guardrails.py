"""Guardrail metrics (latency p99, error rate): limits the treatment must stay within to ship.

Limits are absolute (``max_latency_p99_ms``, ``max_error_rate``) or relative to the control arm
(``max_latency_p99_increase`` as a fraction, ``max_error_rate_increase`` in rate points), checked on
the observed values of each arm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlship.experiments.results import GuardrailResult, Serializable


@dataclass(frozen=True)
class Guardrails(Serializable):
    """Guardrail limits; None switches a limit off."""

    max_latency_p99_ms: float | None = None
    max_latency_p99_increase: float | None = None
    max_error_rate: float | None = None
    max_error_rate_increase: float | None = None

    @property
    def latency(self) -> bool:
        return self.max_latency_p99_ms is not None or self.max_latency_p99_increase is not None

    @property
    def errors(self) -> bool:
        return self.max_error_rate is not None or self.max_error_rate_increase is not None


def _p99(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, 99)) if finite.size else None


def _check(name: str, control: float | None, treatment: float | None, absolute: float | None,
           increase: float | None, relative: bool, unit: str) -> GuardrailResult:
    limits, broken = [], []
    if absolute is not None:
        limits.append(f"<= {absolute:g}{unit}")
        if treatment is not None and treatment > absolute:
            broken.append(f"{treatment:.4g}{unit} > {absolute:g}{unit}")
    if increase is not None and control is not None:
        cap = control * (1 + increase) if relative else control + increase
        shown = f"+{increase:.0%} of control" if relative else f"control + {increase:g}"
        limits.append(f"<= {shown} ({cap:.4g}{unit})")
        if treatment is not None and treatment > cap:
            broken.append(f"{treatment:.4g}{unit} > {cap:.4g}{unit} ({shown})")
    if treatment is None:
        return GuardrailResult(name, control, treatment, "; ".join(limits), False, f"{name}: no treatment values")
    seen = f"treatment {treatment:.4g}{unit}" + ("" if control is None else f", control {control:.4g}{unit}")
    message = f"{name}: {seen}; " + ("; ".join(broken) if broken else f"within {'; '.join(limits)}")
    return GuardrailResult(name, control, treatment, "; ".join(limits), not broken, message)


def check_guardrails(limits: Guardrails, latency: tuple[np.ndarray, np.ndarray] | None,
                     errors: tuple[np.ndarray, np.ndarray] | None) -> list[GuardrailResult]:
    """Check each active guardrail on (control, treatment) arrays of latency (ms) and error flags."""
    out = []
    if limits.latency and latency is not None:
        out.append(_check("latency p99", _p99(latency[0]), _p99(latency[1]), limits.max_latency_p99_ms,
                          limits.max_latency_p99_increase, True, " ms"))
    if limits.errors and errors is not None:
        rates = [float(np.mean(e)) if e.size else None for e in errors]
        out.append(_check("error rate", rates[0], rates[1], limits.max_error_rate, limits.max_error_rate_increase,
                          False, ""))
    return out
