"""The mlship.cdk constructs as a user's own app composes them: typed props, any environment name,
validation errors with the expected shape, cdk-nag on, several constructs in one stack."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlship.cdk as mlship_cdk
from mlship.config import ApiConfig, ConfigError, build_config, with_sections

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
CONTEXT = {"env": "qa", "mlship": {"common": {"model": {"name": "fraud"}},
                                   "environments": {"qa": {"profile": "staging", "batch": {"enabled": False}}}}}


def _app() -> cdk.App:
    return cdk.App(context={**CONTEXT, "mlship:assets.lambda_code": "source"})


def _errors(assembly: Any, stack: str) -> list[str]:
    messages = assembly.get_stack_artifact(stack).messages
    return [str(m.entry.data) for m in messages if m.level == "error"]


def test_constructs_compose_in_one_stack_of_a_declared_environment():
    app = _app()
    settings_ = mlship_cdk.settings_from_context(app)
    assert (settings_.env, settings_.profile, settings_.model.name) == ("qa", "staging", "fraud")
    stack = cdk.Stack(app, "Fraud-qa", env=mlship_cdk.stack_environment(settings_))
    registry = mlship_cdk.ModelRegistry(stack, "Registry", props=mlship_cdk.ModelRegistryProps(
        settings=settings_, storage={"records_retention_days": 90}))
    mlship_cdk.PredictFunction(stack, "Predict", props=mlship_cdk.PredictFunctionProps(
        registry=registry, api={"memory_mb": 2048}))
    mlship_cdk.ModelMonitor(stack, "Monitor", props=mlship_cdk.ModelMonitorProps(registry=registry))
    mlship_cdk.EdgeFleet(stack, "Edge", props=mlship_cdk.EdgeFleetProps(registry=registry))
    mlship_cdk.apply_tags(stack, settings_)
    mlship_cdk.enable_review(app)
    assembly = app.synth()
    assert _errors(assembly, "Fraud-qa") == []  # cdk-nag's AwsSolutions pack: nothing unacknowledged
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {
        "FunctionName": "mlship-qa-predict", "MemorySize": 2048,
        "Environment": {"Variables": Match.object_like({"MLSHIP_MODEL_NAME": "fraud"})}})
    template.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "mlship-qa-monitor"})
    template.has_resource_properties("AWS::S3::Bucket", {"LifecycleConfiguration": {"Rules": Match.array_with([
        Match.object_like({"Id": "records", "ExpirationInDays": 90})])}})
    template.has_resource_properties("AWS::IoT::ThingGroup", {"ThingGroupName": Match.string_like_regexp("qa")})
    # the staging profile's defaults apply to the declared environment: a canary Lambda rollout
    assert registry.settings.api.rollout.strategy == "CANARY"


def test_a_section_prop_overrides_only_that_section():
    base = build_config("dev", {"model": {"name": "churn"}})
    registry = mlship_cdk.ImportedRegistry(base, KEY_ARN)
    props = mlship_cdk.PredictFunctionProps(registry=registry, api={"memory_mb": 3008})
    assert props.settings.api == base.api.model_copy(update={"memory_mb": 3008})
    assert props.settings.endpoint == base.endpoint and registry.settings is base
    replaced = mlship_cdk.PredictFunctionProps(registry=registry, api=ApiConfig(kind="api_gateway"))
    assert replaced.settings.api.kind == "api_gateway" and replaced.settings.api.memory_mb == 1024


@pytest.mark.parametrize(("api", "problem"), [
    ({"rollout": 60}, "api.rollout: expected an object like {"),
    ({"memry_mb": 1024}, "api.memry_mb: unknown key"),
    (5, "api: expected an object like {"),
    ({"memory_mb": 64}, "api.memory_mb: Input should be greater than or equal to 128"),
    ({"backend": "sagemaker"}, "api.backend=sagemaker needs endpoint.enabled=true"),
])
def test_wrong_props_name_the_field_and_show_the_expected_shape(api: Any, problem: str):
    base = build_config("dev", {"endpoint": {"enabled": False}})
    with pytest.raises(ConfigError) as raised:
        mlship_cdk.PredictFunctionProps(registry=mlship_cdk.ImportedRegistry(base, KEY_ARN), api=api)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_a_registry_prop_must_be_a_registry():
    with pytest.raises(TypeError, match="registry must be a ModelRegistry or an ImportedRegistry"):
        mlship_cdk.ModelMonitorProps(registry="mlship-dev-data")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a settings section"):
        with_sections(build_config("dev", {}), {"apis": {}})


def test_an_imported_registry_serves_from_a_key_created_elsewhere():
    app = _app()
    stack = cdk.Stack(app, "Serving")
    registry = mlship_cdk.ImportedRegistry(build_config("dev", {"assets": {"lambda_code": "source"}}), KEY_ARN)
    mlship_cdk.PredictFunction(stack, "Predict", props=mlship_cdk.PredictFunctionProps(registry=registry))
    policies = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert any(s["Resource"] == KEY_ARN and "kms:Decrypt" in s["Action"] for s in statements)


SECTION_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                              | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*ApiConfig.model_fields, "unknown"]), SECTION_VALUES, max_size=4))
def test_any_api_mapping_is_accepted_or_refused_with_a_config_error(api: dict[str, Any]):
    registry = mlship_cdk.ImportedRegistry(build_config("dev", {}), KEY_ARN)
    try:
        props = mlship_cdk.PredictFunctionProps(registry=registry, api=api)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(props.settings.api, ApiConfig)


def test_a_new_rollout_strategy_in_a_prop_replaces_the_profiles_rollout():
    staging = mlship_cdk.ImportedRegistry(build_config("staging", {}), KEY_ARN)
    assert staging.settings.endpoint.rollout.strategy == "CANARY"
    linear = mlship_cdk.ModelEndpointProps(registry=staging, endpoint={
        "rollout": {"strategy": "LINEAR", "linear_step": {"value": 50}}})
    assert linear.settings.endpoint.rollout.strategy == "LINEAR"
    prod = mlship_cdk.ImportedRegistry(build_config("prod", {}), KEY_ARN)
    canary = mlship_cdk.PredictFunctionProps(registry=prod, api={"rollout": {"strategy": "CANARY", "percentage": 5}})
    assert canary.settings.api.rollout == build_config("dev", {"api": {"rollout": {
        "strategy": "CANARY", "percentage": 5}}}).api.rollout  # no interval left over from prod's LINEAR
    kept = mlship_cdk.PredictFunctionProps(registry=prod, api={"rollout": {"percentage": 20}})  # no strategy: merged
    assert (kept.settings.api.rollout.strategy, kept.settings.api.rollout.percentage) == ("LINEAR", 20)


@pytest.mark.parametrize(("settings_", "key_arn"), [({"env": "dev"}, KEY_ARN), (None, KEY_ARN), ("dev", "")])
def test_an_imported_registry_checks_what_it_is_given(settings_: Any, key_arn: str):
    real = build_config("dev", {})
    with pytest.raises(TypeError):
        mlship_cdk.ImportedRegistry(real if settings_ == "dev" else settings_, key_arn)


def test_the_monitor_may_submit_large_windows_to_one_spark_application():
    app = _app()
    stack = cdk.Stack(app, "Monitoring-qa")
    registry = mlship_cdk.ImportedRegistry(build_config("qa", {"assets": {"lambda_code": "source"}}), KEY_ARN)
    role = "arn:aws:iam::123456789012:role/mlship-monitor-job"
    spark = {"application_id": "00fabc123", "job_role_arn": role, "above_bytes": 5 << 30,
             "entry_point": "s3://mlship-qa-art/batch/code-1/monitor_window.py",
             "submit_parameters": "--conf spark.submit.pyFiles=s3://mlship-qa-art/batch/code-1/code.zip"}
    mlship_cdk.ModelMonitor(stack, "Monitor", props=mlship_cdk.ModelMonitorProps(
        registry=registry, monitoring={"spark": spark}))
    mlship_cdk.enable_review(app)
    assert _errors(app.synth(), "Monitoring-qa") == []  # cdk-nag: no wildcard, nothing unacknowledged
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Lambda::Function", {"Environment": {"Variables": Match.object_like({
        "SPARK_APPLICATION_ID": "00fabc123", "SPARK_JOB_ROLE_ARN": role, "SPARK_ENTRY_POINT": spark["entry_point"],
        "SPARK_SUBMIT_PARAMETERS": spark["submit_parameters"], "SPARK_ABOVE_BYTES": str(5 << 30)})}})
    statements = [s for p in template.find_resources("AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    start = [s for s in statements if s["Action"] == "emr-serverless:StartJobRun"]
    assert len(start) == 1 and "/applications/00fabc123" in json.dumps(start[0]["Resource"])
    passing = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passing == [{"Action": "iam:PassRole", "Effect": "Allow", "Resource": role,
                        "Condition": {"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}}]


def test_without_spark_settings_the_monitor_cannot_start_job_runs():
    app = _app()
    stack = cdk.Stack(app, "Monitoring-plain")
    registry = mlship_cdk.ImportedRegistry(build_config("qa", {"assets": {"lambda_code": "source"}}), KEY_ARN)
    mlship_cdk.ModelMonitor(stack, "Monitor", props=mlship_cdk.ModelMonitorProps(registry=registry))
    text = json.dumps(Template.from_stack(stack).to_json())
    assert "emr-serverless" not in text and "iam:PassRole" not in text and "SPARK_" not in text
    with pytest.raises(ConfigError) as raised:
        mlship_cdk.ModelMonitorProps(registry=registry, monitoring={"spark": {"application_id": "x",
                                                                              "job_role_arn": "role"}})
    assert any(p.startswith("monitoring.spark.job_role_arn") for p in raised.value.problems), raised.value.problems
