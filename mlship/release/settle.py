"""After a rollout ends: the registry learns the outcome, and only a success moves anything.

:func:`settle_rollout` records every outcome on the version (``Registry.record_rollout``). On
success it then moves ``champion`` to the deployed version (compare-and-swap against what it was
when the rollout started, audited) and writes the SSM parameters the stacks read the deployed model
from, so a later ``cdk deploy`` redeploys this version instead of reverting it. A failed rollout
changes neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlship.release.models import ResolvedModel
from mlship.release.outcome import RolloutOutcome


@dataclass(frozen=True)
class DeployedParameters:
    """SSM parameter names holding the deployed bundle URI and version (``None``: do not write)."""

    bundle_uri: str | None = None
    version: str | None = None

    @classmethod
    def of(cls, names: Any) -> DeployedParameters:
        """The parameters the stacks read, from the configuration's names (``MlshipConfig.names``)."""
        return cls(names.deployed_bundle_parameter, names.deployed_version_parameter)


@dataclass
class Settlement:
    """What settling changed."""

    recorded: Any | None = None  # the RolloutRecord
    moved: Any | None = None  # the AliasRecord of the champion move
    parameters: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def settle_rollout(outcome: RolloutOutcome, model: ResolvedModel, *, target: str,
                   expected_champion: Any, alias: str = "champion", ssm: Any | None = None,
                   parameters: DeployedParameters | None = None) -> Settlement:
    """Record ``outcome`` for ``model``; on success move ``alias`` and write the deployed parameters."""
    settled = Settlement()
    registry = model.registry
    if registry is None:
        settled.notes.append(f"{model.bundle_uri} is not in a registry: no rollout record, {alias} not moved")
    else:
        settled.recorded = registry.record_rollout(
            model.name, model.version, outcome=outcome.outcome, target=target, reason=outcome.reason,
            alarm=outcome.alarm, previous_version=outcome.previous_version, alias=alias,
            details={"endpoint_config": outcome.endpoint_config, "phases": len(outcome.phases)})
    if not outcome.ok:
        return settled
    if registry is not None:
        moved = registry.promote_after_rollout(
            model.name, model.version, alias=alias, expected_previous=expected_champion,
            evidence={"rollout": settled.recorded.to_dict()},
            reason=f"rollout to {target} succeeded")
        if getattr(expected_champion, "version", None) == model.version:  # nothing moved (returned as it was)
            settled.notes.append(f"{model.name}@{alias} already at {model.version}")
        else:
            settled.moved = moved
    if ssm is not None and parameters is not None:
        settled.parameters = write_deployed(ssm, parameters, model)
    return settled


def write_deployed(ssm: Any, parameters: DeployedParameters, model: ResolvedModel) -> dict[str, str]:
    """Overwrite the deployed-model parameters with ``model``; return what was written."""
    written: dict[str, str] = {}
    for name, value in ((parameters.bundle_uri, model.bundle_uri), (parameters.version, model.version)):
        if name:
            ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True,
                              Description=f"deployed by mlship rollout: {model.ref}"[:1024])
            written[name] = value
    return written
