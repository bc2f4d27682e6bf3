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


def test_canary_update_succeeds_with_no_failed_request(plane: Any, moto_server: str, tmp_path: Any,
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
    # a plane started later (moto has no UpdateEndpoint) adopts the endpoint on v2, not on its creation config
    from mlship.local.plane.server import ControlPlane

    with ControlPlane(moto_server, log_dir=tmp_path / "later", time_scale=0.01) as later:
        again = plane_clients(later, moto_server)
        assert again["sagemaker"].describe_endpoint(EndpointName="canary-ok")["EndpointConfigName"] == config
        assert served_version(again["runtime"], "canary-ok", record) == "2"


def _rehearse(plane: Any, moto_server: str, bundles: dict[str, Any], record: dict, name: str,
              policy: RolloutPolicy, fault: str | None) -> tuple[Any, BackgroundClient, dict[str, Any]]:
    """v1 live, then an update to v2 (with ``fault`` on the green fleet) under the default alarms."""
    from mlship.release.alarms import AlarmThresholds, ensure_default_alarms

    clients = plane_clients(plane, moto_server)
    _live(clients, name, bundles)
    alarms = ensure_default_alarms(clients["cloudwatch"], name, "AllTraffic",
                                   AlarmThresholds(p99_latency_ms=300, evaluation_periods=3))
    config = create_config(clients["sagemaker"], f"{name}-v2", upload(clients["s3"], bundles["2"]), "2", fault)
    driver = EndpointRollout(clients["sagemaker"], clients["cloudwatch"], poll_seconds=0.1)
    with BackgroundClient(clients["runtime"], name, record) as background:
        driver.start(name, config, policy, alarms)
        outcome = driver.follow(name, config, alarms, timeout_seconds=60)
    return outcome, background, clients


def test_linear_update_succeeds_with_no_failed_request(plane: Any, moto_server: str,
                                                       versioned_bundles: dict[str, Any], record: dict) -> None:
    policy = RolloutPolicy(strategy="LINEAR", linear_step=CapacitySize(value=50), wait_interval_seconds=200,
                           termination_wait_seconds=60)
    outcome, background, clients = _rehearse(plane, moto_server, versioned_bundles, record, "linear-ok", policy,
                                             None)
    assert outcome.outcome == "succeeded", outcome
    assert background.failures == []
    shares = [p.variants.get("green:AllTraffic", {}).get("weight") for p in outcome.phases]
    assert 0.5 in shares and 1.0 in shares  # two linear steps of 50%
    assert served_version(clients["runtime"], "linear-ok", record) == "2"


CANARY = RolloutPolicy(strategy="CANARY", canary=CapacitySize(value=50), wait_interval_seconds=600,
                       termination_wait_seconds=60)


def test_injected_errors_fire_the_alarm_and_roll_back(plane: Any, moto_server: str,
                                                      versioned_bundles: dict[str, Any], record: dict) -> None:
    outcome, background, clients = _rehearse(plane, moto_server, versioned_bundles, record, "canary-errors",
                                             CANARY, "errors=0.5")
    assert outcome.outcome == "rolled_back", outcome
    assert outcome.alarm == "canary-errors-AllTraffic-5xx-rate"
    assert "canary-errors-AllTraffic-5xx-rate" in outcome.reason
    assert background.failures  # the canary's injected errors reached clients before the rollback
    assert served_version(clients["runtime"], "canary-errors", record) == "1"
    described = clients["sagemaker"].describe_endpoint(EndpointName="canary-errors")
    assert described["EndpointConfigName"] == "canary-errors-v1"


def test_injected_latency_fires_the_latency_alarm(plane: Any, moto_server: str,
                                                  versioned_bundles: dict[str, Any], record: dict) -> None:
    outcome, _, clients = _rehearse(plane, moto_server, versioned_bundles, record, "canary-slow", CANARY,
                                    "latency=400ms")
    assert outcome.outcome == "rolled_back", outcome
    assert outcome.alarm == "canary-slow-AllTraffic-p99-latency"
    assert served_version(clients["runtime"], "canary-slow", record) == "1"


def test_a_crashing_green_fleet_is_rolled_back_without_failed_requests(
        plane: Any, moto_server: str, versioned_bundles: dict[str, Any], record: dict) -> None:
    outcome, background, clients = _rehearse(plane, moto_server, versioned_bundles, record, "canary-crash",
                                             CANARY, "crash")
    assert outcome.outcome == "rolled_back", outcome
    assert outcome.alarm is None
    assert "health checks" in outcome.reason
    assert background.failures == []  # the green fleet never took traffic
    assert served_version(clients["runtime"], "canary-crash", record) == "1"
