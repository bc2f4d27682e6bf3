"""``mlship rollout watch`` in-process (typer's CliRunner) against Stubber-ed botocore clients.

Why Stubber and not moto: moto implements neither ``UpdateEndpoint`` nor deployment progress
(``PendingDeploymentSummary``, ``VariantStatus``, rollbacks) nor alarm history, so the phases of an
update are scripted with ``botocore.stub.Stubber``, which still validates every request and every
answer against the real SageMaker and CloudWatch service models. A fake clock: no real waiting.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from release.helpers import ALARMS, ENDPOINT, NEW, OK, OLD, T0, Clock, describe


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> tuple[Stubber, Stubber]:
    """Stubbers on a SageMaker and a CloudWatch client that ``mlship.aws.clients.client`` returns."""
    import mlship.cli.release as release

    kw = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    made = {"sagemaker": boto3.client("sagemaker", **kw), "cloudwatch": boto3.client("cloudwatch", **kw)}
    monkeypatch.setattr("mlship.aws.clients.client", lambda service, **_: made[service])
    clock = Clock()
    monkeypatch.setattr(release, "clock", clock)
    monkeypatch.setattr(release, "sleep", clock.sleep)
    sm, cw = Stubber(made["sagemaker"]), Stubber(made["cloudwatch"])
    sm.activate()
    cw.activate()
    yield sm, cw
    sm.deactivate()
    cw.deactivate()


def _script(stubs: tuple[Stubber, Stubber], first: dict[str, Any], steps: list[tuple[dict, dict[str, str]]],
            history: dict[str, list[str]] | None = None) -> None:
    """The watch's own DescribeEndpoint, then one DescribeEndpoint + DescribeAlarms per poll."""
    sm, cw = stubs
    sm.add_response("describe_endpoint", first, {"EndpointName": ENDPOINT})
    for answer, states in steps:
        sm.add_response("describe_endpoint", answer, {"EndpointName": ENDPOINT})
        cw.add_response("describe_alarms", {"MetricAlarms": [{"AlarmName": n, "StateValue": s}
                                                             for n, s in states.items()]}, {"AlarmNames": ALARMS})
    for name in ALARMS if history is not None else []:
        items = [{"AlarmName": name, "HistoryItemType": "StateUpdate", "Timestamp": T0,
                  "HistoryData": json.dumps({"newState": {"stateValue": s}})} for s in history.get(name, [])]
        cw.add_response("describe_alarm_history", {"AlarmHistoryItems": items},
                        {"AlarmName": name, "HistoryItemType": "StateUpdate", "StartDate": ANY})


def mlship(*args: Any) -> Any:
    from typer.testing import CliRunner

    from mlship.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _error_lines(out: Any) -> list[str]:
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert out.exception is None or isinstance(out.exception, SystemExit)  # no exception escaped
    return [line for line in out.stderr.splitlines() if line.startswith("error:")]


def test_watch_succeeded_prints_the_outcome_document(stubs):
    _script(stubs, describe("Updating", OLD, green=["Creating"]), [
        (describe("Updating", OLD, green=["Creating"]), OK),
        (describe("Updating", OLD, green=["Baking"]), OK),
        (describe("InService", NEW), OK),
    ])
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT, "--poll", 30, "--json")
    assert out.exit_code == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["outcome"], doc["endpoint"], doc["endpoint_config"], doc["alarm"]) == (
        "succeeded", ENDPOINT, NEW, None)
    assert [p["endpoint_status"] for p in doc["phases"]] == ["Updating", "Updating", "InService"]
    assert doc["phases"][1]["alarms"] == OK  # the alarms came from LastDeploymentConfig
    assert "Baking" in out.stderr and not _error_lines(out)  # one progress line per phase
    for stub in stubs:
        stub.assert_no_pending_responses()


def test_watch_rolled_back_names_the_alarm(stubs):
    fired = {ALARMS[0]: "ALARM", ALARMS[1]: "OK"}
    _script(stubs, describe("Updating", OLD, green=["Baking"]), [
        (describe("Updating", OLD, green=["Baking"]), OK),
        (describe("RollingBack", OLD, green=["Deleting"]), fired),
        (describe("InService", OLD, reason=f"Alarm {ALARMS[0]} in ALARM state; rolling back"), fired),
    ], history={ALARMS[0]: ["ALARM"]})
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT)
    assert out.exit_code == 1
    errors = _error_lines(out)
    assert len(errors) == 1 and "rolled_back" in errors[0] and f"alarm {ALARMS[0]} fired" in errors[0]


def test_watch_timeout(stubs):
    _script(stubs, describe("Updating", OLD, green=["Baking"]),
            [(describe("Updating", OLD, green=["Baking"]), OK)] * 5)
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT, "--timeout", 120, "--poll", 30,
                 "--alarm", ALARMS[0], "--alarm", ALARMS[1])
    assert out.exit_code == 1
    errors = _error_lines(out)
    assert len(errors) == 1 and "timeout" in errors[0] and "still Updating after 120 s" in errors[0]


def test_watch_an_endpoint_that_does_not_exist_is_bad_input(stubs):
    stubs[0].add_client_error("describe_endpoint", service_error_code="ValidationException",
                              service_message=f"Could not find endpoint \"{ENDPOINT}\".", http_status_code=400,
                              expected_params={"EndpointName": ENDPOINT})
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT)
    assert out.exit_code == 2
    assert _error_lines(out) == [f"error: endpoint {ENDPOINT} does not exist: Could not find endpoint \"{ENDPOINT}\"."]
    assert out.stderr.count("\n") == 1


def test_watch_a_non_positive_timeout_is_bad_input(stubs):
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT, "--timeout", 0)
    assert out.exit_code == 2 and _error_lines(out) == ["error: --timeout must be positive, not 0"]


def test_watch_an_endpoint_not_updating(stubs):
    _script(stubs, describe("InService", OLD), [])
    out = mlship("rollout", "watch", "--endpoint", ENDPOINT)
    assert out.exit_code == 0
    assert f"endpoint {ENDPOINT} is InService on {OLD}: there is no update to watch" in out.stdout
    stubs[0].assert_no_pending_responses()
