"""Blue/green endpoint updates rehearsed on the local control plane, driven by the real driver.

Everything is real except AWS: moto records the resources, the plane runs each fleet as local
``mlship serve`` processes, evaluates the rollback alarms from the metrics it publishes and shifts
traffic in the policy's steps (waits scaled by 0.01). A background client invokes the endpoint
throughout and counts every failed request.
"""

from __future__ import annotations

from typing import Any

from mlship.release.endpoint import EndpointRollout
from mlship.release.policy import CapacitySize
from mlship.release.policy import EndpointRollout as RolloutPolicy
from release.plane import BackgroundClient, create_config, plane_clients, served_version, upload, wait_status


def _live(clients: dict[str, Any], name: str, bundles: dict[str, Any]) -> None:
    uri = upload(clients["s3"], bundles["1"])
    create_config(clients["sagemaker"], f"{name}-v1", uri, "1")
    clients["sagemaker"].create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-v1")
    wait_status(clients["sagemaker"], name, "InService")


def test_canary_update_succeeds_with_no_failed_request(plane: Any, moto_server: str,
                                                       versioned_bundles: dict[str, Any], record: dict) -> None:
    clients = plane_clients(plane, moto_server)
    _live(clients, "canary-ok", versioned_bundles)
    assert served_version(clients["runtime"], "canary-ok", record) == "1"
    config = create_config(clients["sagemaker"], "canary-ok-v2", upload(clients["s3"], versioned_bundles["2"]), "2")
    policy = RolloutPolicy(strategy="CANARY", canary=CapacitySize(value=10), wait_interval_seconds=300,
                           termination_wait_seconds=120)
    driver = EndpointRollout(clients["sagemaker"], clients["cloudwatch"], poll_seconds=0.1)
    with BackgroundClient(clients["runtime"], "canary-ok", record) as background:
        driver.start("canary-ok", config, policy, [])
        outcome = driver.follow("canary-ok", config, [], timeout_seconds=60)
    assert outcome.outcome == "succeeded", outcome
    assert background.failures == []
    assert set(background.versions) == {"1", "2"}
    assert served_version(clients["runtime"], "canary-ok", record) == "2"
    statuses = [p.endpoint_status for p in outcome.phases]
    assert statuses[0] == "Updating" and statuses[-1] == "InService"
