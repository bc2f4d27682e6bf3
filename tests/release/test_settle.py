"""Settling a rollout in the registry: a success that redeploys the champion moves nothing and says so."""

from __future__ import annotations

from pathlib import Path


def test_redeploying_the_champion_is_not_reported_as_a_move(aws, churn_bundle: Path):
    from mlship.aws.clients import client
    from mlship.registry.store import Registry
    from mlship.release.models import ResolvedModel
    from mlship.release.outcome import RolloutOutcome
    from mlship.release.settle import settle_rollout

    client("s3").create_bucket(Bucket="settle-registry")
    registry = Registry("settle-registry", sagemaker=False)
    record, _ = registry.register(churn_bundle)
    champion = registry.set_alias("churn", "champion", record.version, reason="first")
    model = ResolvedModel("churn", record.version, registry.bundle_uri("churn", record.version), registry)
    outcome = RolloutOutcome("succeeded", "second-endpoint", "cfg-1", model_version=record.version)
    settled = settle_rollout(outcome, model, target="endpoint:second-endpoint", expected_champion=champion)
    assert settled.moved is None and settled.notes == [f"churn@champion already at {record.version}"]
    assert registry.get_alias("churn", "champion").version == record.version
    assert registry.rollouts("churn", record.version)[-1].outcome == "succeeded"  # still recorded


def test_a_shadow_deployment_is_shadowed_and_cannot_move_the_champion(aws, churn_bundle: Path):
    import pytest

    from mlship.aws.clients import client
    from mlship.registry.store import Registry, RegistryError

    client("s3").create_bucket(Bucket="shadow-status")
    registry = Registry("shadow-status", sagemaker=False)
    record, _ = registry.register(churn_bundle)
    registry.record_rollout("churn", record.version, outcome="succeeded", target="endpoint:ep:shadow",
                            alias="shadow", details={"mode": "shadow"})
    assert registry.version_status("churn", record.version) == "shadowed"
    with pytest.raises(RegistryError, match="shadow deployment"):
        registry.promote_after_rollout("churn", record.version, alias="champion", expected_previous=None)
