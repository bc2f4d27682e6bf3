"""The settings of an A/B analysis."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlship.experiments.errors import ExperimentInputError
from mlship.experiments.guardrails import Guardrails
from mlship.experiments.results import Serializable
from mlship.experiments.srm import SRM_THRESHOLD

METRICS = ("binary", "continuous")


@dataclass(frozen=True)
class AbTestConfig(Serializable):
    """How to analyse: the metric, error rates, the MDE the test is powered for, the design's split.

    ``mde`` is a relative lift (0.05 = +5 % of the control's mean); ``baseline`` the control mean the
    power calculation starts from (default: the observed one); ``n_star`` the total sample the
    sequential bound is tuned for (default: the fixed-horizon sample the MDE needs)."""

    metric: str = "binary"
    alpha: float = 0.05
    power: float = 0.8
    mde: float = 0.05
    sequential: bool = False
    n_star: int | None = None
    treatment_share: float = 0.5
    srm_threshold: float = SRM_THRESHOLD
    min_units: int = 30
    higher_is_better: bool = True
    baseline: float | None = None
    guardrails: Guardrails = field(default_factory=Guardrails)
    bayes_draws: int = 200_000
    seed: int = 0

    def validate(self) -> None:
        """Refuse settings no analysis can use."""
        problems = []
        if self.metric not in METRICS:
            problems.append(f"metric must be one of {', '.join(METRICS)}, not {self.metric!r}")
        for name in ("alpha", "power", "treatment_share", "srm_threshold"):
            value = getattr(self, name)
            if not 0 < value < 1:
                problems.append(f"{name} must be between 0 and 1 (exclusive), not {value}")
        if not self.mde > 0:
            problems.append(f"mde must be a positive relative lift, not {self.mde}")
        if self.min_units < 2:
            problems.append(f"min_units must be at least 2, not {self.min_units}")
        if self.n_star is not None and self.n_star < 1:
            problems.append(f"n_star must be positive, not {self.n_star}")
        if problems:
            raise ExperimentInputError("; ".join(problems))
