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
