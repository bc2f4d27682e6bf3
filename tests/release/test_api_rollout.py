"""``mlship.rollout`` (the Python API of ``mlship rollout endpoint``) on the local control plane:
the first version creates the endpoint, the next is canaried under client traffic and moves
``champion`` (the rollback paths are the command's, tests/release/test_rollout_endpoint_cli.py)."""

from __future__ import annotations

import uuid
from typing import Any

import mlship
from mlship.release.policy import CapacitySize, EndpointRollout
from release.plane import IMAGE, ROLE, BackgroundClient, plane_clients


def test_rollout_creates_then_canaries_and_moves_the_champion(plane: Any, moto_server: str,
                                                              versioned_bundles: dict[str, Any], record: dict):
    from mlship.registry.store import Registry

    clients = plane_clients(plane, moto_server)
    bucket, endpoint = f"api-rollout-{uuid.uuid4().hex[:8]}", f"api-rollout-{uuid.uuid4().hex[:6]}"
    clients["s3"].create_bucket(Bucket=bucket)
    registry = Registry(bucket, sagemaker=False)
    for version in ("1", "2"):
        registry.register(versioned_bundles[version])
    policy = EndpointRollout(strategy="CANARY", canary=CapacitySize(value=50), wait_interval_seconds=60,
                             termination_wait_seconds=0)
    common = {"bucket": bucket, "endpoint": endpoint, "image": IMAGE, "role": ROLE, "poll": 0.2, "timeout": 120}
    first = mlship.rollout("churn/1", **common)
    assert first.ok and registry.get_alias("churn", "champion").version == "1"
    phases = []
    with BackgroundClient(clients["runtime"], endpoint, record) as client:
        second = mlship.rollout("churn/2", policy=policy, on_phase=phases.append, **common)
    assert second.ok and second.previous_version == "1" and phases, second.to_json()
    assert registry.get_alias("churn", "champion").version == "2"
    assert client.failures == [] and set(client.versions) == {"1", "2"}
