"""The typed results of an A/B test analysis; every one turns into JSON-ready dicts with ``to_dict()``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DECISIONS = ("ship", "keep", "continue", "invalid")


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinity to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Serializable:
    """``to_dict()`` for the result dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class VariantSummary(Serializable):
    """One arm: its units and outcome summary."""

    name: str
    role: str  # "control" or "treatment"
    units: int
    mean: float
    std: float
    successes: int | None = None  # binary metric only


@dataclass(frozen=True)
class TestResult(Serializable):
    """A frequentist comparison of treatment minus control."""

    method: str
    statistic: float
    p_value: float
    difference: float
    difference_ci: tuple[float, float]
    relative_lift: float
    relative_lift_ci: tuple[float, float]
    alpha: float
    significant: bool
    df: float | None = None


@dataclass(frozen=True)
class SrmResult(Serializable):
    """Sample-ratio-mismatch check: χ² goodness of fit of the unit counts to the design's split."""

    observed: dict[str, int]
    expected: dict[str, float]
    statistic: float
    p_value: float
    threshold: float
    mismatch: bool


@dataclass(frozen=True)
class PowerResult(Serializable):
    """The sample a minimum detectable effect needs, and how much of it has been collected."""

    mde: float  # relative
    mde_absolute: float
    baseline: float
    alpha: float
    power: float
    required_control: int
    required_treatment: int
    observed_control: int
    observed_treatment: int
    remaining_units: int  # over both arms; 0 once reached
    method: str


@dataclass(frozen=True)
class GuardrailResult(Serializable):
    """One guardrail metric of both arms and whether the treatment stays within its limit."""

    name: str
    control: float | None
    treatment: float | None
    limit: str
    passed: bool
    message: str


@dataclass(frozen=True)
class TimelinePoint(Serializable):
    """The cumulative comparison after ``units`` units (in arrival order)."""

    units: int
    relative_lift: float
    low: float
    high: float
    p_value: float


@dataclass
class AbTestResult(Serializable):
    """Everything an A/B analysis computed, and its decision with reasons."""

    metric: str
    decision: str
    reasons: list[str]
    control: VariantSummary
    treatment: VariantSummary
    test: TestResult
    srm: SrmResult
    power: PowerResult
    sequential: bool
    guardrails: list[GuardrailResult] = field(default_factory=list)
    bayes: dict[str, Any] | None = None
    timeline: list[TimelinePoint] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
