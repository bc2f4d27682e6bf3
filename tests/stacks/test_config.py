"""The typed config and the rollout limits, without synthesizing anything."""

from __future__ import annotations

import json

import pytest

from mlship.config import ENVIRONMENTS, ConfigError, load_config
from mlship.release.policy import (
    CapacitySize,
    EndpointRollout,
    LambdaRollout,
    endpoint_rollout_problems,
    lambda_rollout_problems,
)


def _problems(env: str, context: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(env, context)
    assert str(info.value).startswith(f"invalid mlship config for environment {env!r}")
    return info.value.problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_loads_from_cdk_json_without_a_model_pin(env, repo_root):
    context = json.loads((repo_root / "cdk.json").read_text())["context"]
    cfg = load_config(env, context)
    assert cfg.env == env and cfg.name == f"mlship-{env}"
    assert cfg.model.uri is None and cfg.names.pinned_model("bucket") is None


def test_environment_defaults_differ_where_it_matters():
    dev, prod = load_config("dev", {}), load_config("prod", {})
    assert dev.endpoint.serverless is not None and not dev.endpoint.data_capture.enabled
    assert dev.storage.destroy_on_delete and not prod.storage.destroy_on_delete
    assert prod.endpoint.variants[0].instance_count == 2
    assert prod.endpoint.rollout.strategy == "LINEAR" and prod.api.kind == "api_gateway"


QA_UNKNOWN = ("env: unknown environment 'qa'; use one of dev, staging, prod or declare it under "
              "mlship.environments (with \"profile\": dev, staging or prod for its defaults)")


def test_unknown_environment_and_keys_are_rejected():
    assert _problems("qa", {}) == [QA_UNKNOWN]
    assert _problems("dev", {"mlship:endpoint.instance_typo": "ml.m5.large"}) == [
        "endpoint.instance_typo: unknown key"]
    assert _problems("dev", {"mlship": {"environments": {"dev": {"api": {"kind": "grpc"}}}}}) == [
        "api.kind: Input should be 'function_url' or 'api_gateway'"]
    assert _problems("dev", {"mlship": {"enviroments": {}}}) == [
        "mlship.enviroments: unknown key (use mlship.common or mlship.environments)"]
    assert _problems("dev", {"mlship": {"environments": {"Test_1": {}}}}) == [
        "mlship.environments.Test_1: not an environment name (lower-case letters, digits and hyphens, starting "
        "with a letter, at most 16)"]
    assert _problems("qa", {"mlship": {"environments": {"qa": {"profile": "live"}}}}) == [
        "profile: 'live' is not one of dev, staging, prod (the defaults an environment starts from)"]


def test_any_declared_environment_starts_from_its_profile():
    from mlship.config import ENV_DEFAULTS

    qa = load_config("qa", {"mlship": {"environments": {"qa": {"profile": "prod"}}}})
    prod = load_config("prod", {})
    assert (qa.env, qa.profile) == ("qa", "prod") and qa.endpoint == prod.endpoint and qa.api == prod.api
    assert qa.names.endpoint_name == "mlship-qa-churn"
    sandbox = load_config("sandbox", {"mlship": {"environments": {"sandbox": {}}}})
    assert sandbox.profile == "dev" and sandbox.storage.destroy_on_delete is ENV_DEFAULTS["dev"]["storage"][
        "destroy_on_delete"]


def test_a_section_of_the_wrong_shape_shows_an_example():
    problems = _problems("prod", {"mlship:endpoint.rollout.strategy": "LINEAR",
                                  "mlship:endpoint.rollout.linear_step": "60"})
    assert problems == ['endpoint.rollout.linear_step: expected an object like {"type": "CAPACITY_PERCENT", '
                        '"value": "<int>"}, not 60']


def test_bad_values_are_named_with_their_path():
    problems = _problems("prod", {"mlship:endpoint.image_uri": "nginx:latest",
                                  "mlship:model.uri": "http://example.com/model",
                                  "mlship:monitoring.schedule": "every hour",
                                  "mlship:api.log_retention_days": "31"})
    assert any(p.startswith("endpoint.image_uri: 'nginx:latest' is not an ECR image URI") for p in problems)
    assert any(p.startswith("model.uri: 'http://example.com/model'") for p in problems)
    assert any(p.startswith("monitoring.schedule: 'every hour'") for p in problems)
    assert any(p.startswith("api.log_retention_days: 31 days") for p in problems)


def test_cli_overrides_parse_json_values_and_config_files(tmp_path):
    cfg = load_config("staging", {"mlship:endpoint.autoscaling.max_instances": "6",
                                  "mlship:endpoint.image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1"})
    assert cfg.endpoint.autoscaling.max_instances == 6
    assert cfg.endpoint.image_uri.endswith("/x:1")
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"batch": {"enabled": False}, "edge": {"rollout_max_per_minute": 3}}))
    cfg = load_config("staging", {"config": str(path)})
    assert not cfg.batch.enabled and cfg.edge.rollout_max_per_minute == 3
    assert _problems("staging", {"config": str(tmp_path / "missing.json")})[0].startswith("config: file ")


def test_a_new_strategy_replaces_the_default_rollout():
    cfg = load_config("prod", {"mlship:endpoint.rollout": json.dumps(
        {"strategy": "CANARY", "canary": {"type": "INSTANCE_COUNT", "value": 1}})})
    assert cfg.endpoint.rollout.linear_step is None and cfg.endpoint.rollout.canary.value == 1


def test_serverless_endpoints_reject_data_capture_and_shadows():
    problems = _problems("dev", {"mlship:endpoint.data_capture.enabled": "true"})
    assert problems == ["endpoint: SageMaker serverless endpoints do not support data capture: "
                        "set data_capture.enabled=false (the predict Lambda writes inference records)"]
    assert any("shadow variants need instance-backed" in p for p in _problems(
        "dev", {"mlship:endpoint.shadow": json.dumps({"name": "shadow"})}))


@pytest.mark.parametrize(("rollout", "instances", "expected"), [
    (EndpointRollout(strategy="CANARY", canary=CapacitySize(value=60)), 2,
     "endpoint.rollout.canary=60% is 60% of 2 instance(s): SageMaker allows at most 50% of capacity"),
    (EndpointRollout(strategy="CANARY", canary=CapacitySize(type="INSTANCE_COUNT", value=2)), 3,
     "endpoint.rollout.canary=2 instance(s) is 67% of 3 instance(s): SageMaker allows at most 50% of capacity"),
    (EndpointRollout(strategy="LINEAR", linear_step=CapacitySize(value=5)), 4,
     "endpoint.rollout.linear_step=5% is 5% of 4 instance(s): SageMaker allows 10-50% of capacity per step"),
    (EndpointRollout(strategy="LINEAR", linear_step=CapacitySize(type="INSTANCE_COUNT", value=3)), 4,
     "endpoint.rollout.linear_step=3 instance(s) is 75% of 4 instance(s): SageMaker allows 10-50% of capacity "
     "per step"),
    (EndpointRollout(strategy="LINEAR"), 2, "endpoint.rollout.linear_step is required when strategy is LINEAR"),
    (EndpointRollout(strategy="CANARY", canary=CapacitySize(value=10), wait_interval_seconds=3601), 2,
     "endpoint.rollout.wait_interval_seconds=3601: SageMaker allows 0-3600 s"),
    (EndpointRollout(strategy="CANARY", canary=CapacitySize(value=10), termination_wait_seconds=-1), 2,
     "endpoint.rollout.termination_wait_seconds=-1: SageMaker allows 0-3600 s"),
    (EndpointRollout(strategy="ALL_AT_ONCE", maximum_execution_timeout_seconds=599), 1,
     "endpoint.rollout.maximum_execution_timeout_seconds=599: SageMaker allows 600-28800 s"),
    (EndpointRollout(strategy="ALL_AT_ONCE", maximum_execution_timeout_seconds=28801), 1,
     "endpoint.rollout.maximum_execution_timeout_seconds=28801: SageMaker allows 600-28800 s"),
    (EndpointRollout(strategy="LINEAR", linear_step=CapacitySize(value=10), wait_interval_seconds=600,
                     termination_wait_seconds=600, maximum_execution_timeout_seconds=3600), 10,
     "endpoint.rollout.maximum_execution_timeout_seconds=3600 must exceed the total waiting time "
     "(9 x wait_interval_seconds + termination_wait_seconds = 6000 s)"),
])
def test_endpoint_rollout_limits(rollout, instances, expected):
    assert endpoint_rollout_problems(rollout, instance_count=instances, alarm_count=4) == [expected]


@pytest.mark.parametrize("rollout", [
    EndpointRollout(strategy="CANARY", canary=CapacitySize(value=50)),
    EndpointRollout(strategy="CANARY", canary=CapacitySize(type="INSTANCE_COUNT", value=1)),
    EndpointRollout(strategy="LINEAR", linear_step=CapacitySize(value=10), wait_interval_seconds=0,
                    termination_wait_seconds=0, maximum_execution_timeout_seconds=600),
    EndpointRollout(strategy="LINEAR", linear_step=CapacitySize(type="INSTANCE_COUNT", value=1),
                    maximum_execution_timeout_seconds=28800, wait_interval_seconds=3600),
    EndpointRollout(strategy="ALL_AT_ONCE"),
])
def test_rollouts_at_the_documented_bounds_pass(rollout):
    assert endpoint_rollout_problems(rollout, instance_count=2, alarm_count=10) == []


def test_alarm_count_and_serverless_capacity_rules():
    ok = EndpointRollout(strategy="CANARY", canary=CapacitySize(value=10))
    assert endpoint_rollout_problems(ok, instance_count=1, alarm_count=11) == [
        "endpoint.alarms: 11 rollback alarms; SageMaker allows 1-10"]
    by_count = EndpointRollout(strategy="CANARY", canary=CapacitySize(type="INSTANCE_COUNT", value=1))
    assert "a serverless variant has no instances" in endpoint_rollout_problems(
        by_count, instance_count=1, alarm_count=4, serverless=True)[0]


def test_invalid_rollout_stops_loading_before_synthesis():
    problems = _problems("prod", {"mlship:endpoint.rollout.linear_step.value": "60",
                                  "mlship:api.rollout.percentage": "100"})
    assert problems == [
        "endpoint.rollout.linear_step=60% is 60% of 2 instance(s): SageMaker allows 10-50% of capacity per step",
        "api.rollout.percentage=100: a step must be 1-99% of traffic"]


def test_lambda_rollout_rules():
    assert lambda_rollout_problems(LambdaRollout(strategy="LINEAR", percentage=0, interval_minutes=0)) == [
        "api.rollout.percentage=0: a step must be 1-99% of traffic",
        "api.rollout.interval_minutes=0: must be at least 1 minute"]
    assert lambda_rollout_problems(LambdaRollout(strategy="ALL_AT_ONCE", percentage=0)) == []


def test_extra_lambda_environment_cannot_override_what_the_stack_sets():
    cfg = load_config("dev", {"mlship:monitoring.environment": json.dumps({"PRIMARY_METRIC": "roc_auc"})})
    assert cfg.monitoring.environment == {"PRIMARY_METRIC": "roc_auc"}
    assert _problems("dev", {"mlship:api.environment": json.dumps({"MODEL_URI": "s3://x/y"})}) == [
        "api.environment: MODEL_URI is set by the stack from the rest of the config"]
    assert _problems("dev", {"mlship:api.environment": json.dumps({"AWS_REGION": "eu-west-1"})}) == [
        "api.environment: 'AWS_REGION' is not an allowed environment variable name"]
