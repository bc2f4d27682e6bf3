"""How the stacks and ``mlship rollout`` share the serving resources, on the shared synthesis.

* dev and prod serve the model the last rollout deployed: SageMaker's ``ModelDataUrl`` and the
  predict function's ``MODEL_URI`` are SSM-typed CloudFormation parameters (re-resolved on every
  deploy), never an alias and never a parameter the stack owns;
* staging pins the model in the config (the escape hatch) and reads no parameter;
* only the CDK deploy role may read those parameters (CloudFormation resolves them with it);
* every output carries the name :class:`mlship.config.ReleaseNames` computes, and the resources
  really have those names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlship.cdk.nag import flatten

SSM_TYPE = "AWS::SSM::Parameter::Value<String>"
DEPLOYED = ("dev", "prod")  # environments serving the deployed-model parameters


def _ssm_parameters(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> SSM parameter name of every SSM-typed parameter except the CDK bootstrap's."""
    return {k: p["Default"] for k, p in template.get("Parameters", {}).items()
            if p["Type"] == SSM_TYPE and not p["Default"].startswith("/cdk-bootstrap/")}


def _ref_to(template: dict[str, Any], parameter_name: str) -> dict[str, str]:
    ids = [k for k, name in _ssm_parameters(template).items() if name == parameter_name]
    assert len(ids) == 1, (parameter_name, _ssm_parameters(template))
    return {"Ref": ids[0]}


def _outputs(template: dict[str, Any]) -> dict[str, Any]:
    return {k: o["Value"] for k, o in template.get("Outputs", {}).items()}


def _predict_function(synth, env: str, names) -> dict[str, Any]:
    functions = [v["Properties"] for v in synth.resources(f"Mlship-{env}-Api", "AWS::Lambda::Function").values()
                 if v["Properties"].get("FunctionName") == names.function_name]
    assert len(functions) == 1
    return functions[0]


@pytest.mark.parametrize("env", DEPLOYED)
def test_the_endpoint_serves_the_deployed_bundle_from_ssm_typed_parameters(synth, configs, env):
    names = configs[env].names
    template = synth.templates[f"Mlship-{env}-Endpoint"]
    assert sorted(_ssm_parameters(template).values()) == sorted(
        [names.deployed_bundle_parameter, names.deployed_version_parameter])
    models = synth.resources(f"Mlship-{env}-Endpoint", "AWS::SageMaker::Model")
    assert len(models) == 1  # prod's shadow variant serves the same deployed model
    container = next(iter(models.values()))["Properties"]["PrimaryContainer"]
    assert container["ModelDataUrl"] == _ref_to(template, names.deployed_bundle_parameter)
    assert container["Environment"]["MLSHIP_MODEL_VERSION"] == _ref_to(template, names.deployed_version_parameter)
    assert container["Environment"]["MLSHIP_MODEL_NAME"] == configs[env].model.name
    assert "MODEL_URI" not in container["Environment"]  # the container reads the extracted ModelDataUrl


@pytest.mark.parametrize("env", DEPLOYED)
def test_the_predict_function_serves_the_deployed_bundle_from_ssm_typed_parameters(synth, configs, env):
    names = configs[env].names
    template = synth.templates[f"Mlship-{env}-Api"]
    variables = _predict_function(synth, env, names)["Environment"]["Variables"]
    assert variables["MODEL_URI"] == _ref_to(template, names.deployed_bundle_parameter)
    assert variables["MLSHIP_MODEL_VERSION"] == _ref_to(template, names.deployed_version_parameter)
    assert variables["MLSHIP_MODEL_NAME"] == configs[env].model.name


def _ssm_grants(synth) -> list[tuple[str, str, dict[str, Any]]]:
    """(stack, logical id, statement) of every IAM statement that allows an ssm: action."""
    found = []
    for stack, logical, res in synth.all_resources("AWS::IAM::Policy") + synth.all_resources("AWS::IAM::Role"):
        props = res["Properties"]
        docs = [props["PolicyDocument"]] if "PolicyDocument" in props else \
            [p["PolicyDocument"] for p in props.get("Policies", [])]
        for statement in (s for d in docs for s in d["Statement"]):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.lower().startswith("ssm:") for a in actions):
                found.append((stack, logical, statement))
    return found


def test_no_stack_creates_the_deployed_model_parameters(synth):
    """The rollout owns them: a stack-owned parameter would be reset by the next cdk deploy."""
    assert synth.all_resources("AWS::SSM::Parameter") == []


def test_only_the_deploy_role_may_read_the_deployed_model_parameters(synth, configs):
    """CloudFormation evaluates SSM-typed parameters with the caller's credentials (the CDK deploy
    role); no runtime role reads them. One policy per environment that reads them, on exactly
    the two parameters, read-only; none for the pinned staging environment."""
    grants = [g for g in _ssm_grants(synth) if not g[0].endswith("-Retrain")]
    assert sorted(stack for stack, _, _ in grants) == [f"Mlship-{env}-Foundation" for env in DEPLOYED]
    for stack, logical, statement in grants:
        names = configs[stack.split("-")[1]].names
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == ["ssm:GetParameter", "ssm:GetParameters"]
        assert sorted(flatten(r) for r in statement["Resource"]) == sorted(
            f"arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter{name}"
            for name in (names.deployed_bundle_parameter, names.deployed_version_parameter))
        policy = synth.templates[stack]["Resources"][logical]["Properties"]
        assert policy["PolicyName"] == f"{names.stem}-deployed-model-read"
        assert policy["Roles"] == [{"Fn::Sub": "cdk-hnb659fds-deploy-role-${AWS::AccountId}-${AWS::Region}"}]


def test_the_retrain_release_step_only_writes_the_deployed_model_parameters(synth, configs):
    """The release step runs `mlship rollout`, which writes both parameters on success, never reads them
    (the one read of the stack is the signing key's parameter, test_retrain_stack)."""
    writes = [g for g in _ssm_grants(synth) if g[0].endswith("-Retrain") and g[2]["Action"] != "ssm:GetParameter"]
    assert [stack for stack, _, _ in writes] == ["Mlship-prod-Retrain"]
    names = configs["prod"].names
    (_, _, statement), = writes
    assert statement["Action"] == "ssm:PutParameter"
    assert sorted(flatten(r) for r in statement["Resource"]) == sorted(
        f"arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter{name}"
        for name in (names.deployed_bundle_parameter, names.deployed_version_parameter))


def test_serving_resources_never_load_a_registry_alias(synth):
    for stack, _, res in synth.all_resources("AWS::SageMaker::Model"):
        assert "mlship://" not in json.dumps(res), stack
    for stack, _, res in synth.all_resources("AWS::Lambda::Function"):
        if res["Properties"].get("FunctionName", "").endswith("-predict"):
            assert "@" not in json.dumps(res["Properties"]["Environment"]), stack


def test_batch_and_monitor_resolve_the_champion_when_they_run(synth, configs):
    prod = configs["prod"].names
    monitor = next(v["Properties"] for v in synth.resources("Mlship-prod-Monitoring", "AWS::Lambda::Function")
                   .values() if v["Properties"].get("FunctionName") == prod.monitor_function_name)
    assert monitor["Environment"]["Variables"]["MODEL_URI"] == prod.champion_uri == "mlship://churn@champion"
    schedule = next(iter(synth.resources("Mlship-prod-Batch", "AWS::Scheduler::Schedule").values()))
    assert f'"--model","{prod.champion_uri}"' in flatten(schedule["Properties"]["Target"]["Input"])
    staging = next(v["Properties"] for v in synth.resources("Mlship-staging-Monitoring", "AWS::Lambda::Function")
                   .values() if v["Properties"].get("FunctionName", "").endswith("-monitor"))
    assert staging["Environment"]["Variables"]["MODEL_URI"] == configs["staging"].model.model_data_url


def test_a_pinned_config_reads_no_parameter_and_pins_each_variant(synth, configs):
    cfg = configs["staging"]
    for part in ("Endpoint", "Api"):
        template = synth.templates[f"Mlship-staging-{part}"]
        assert _ssm_parameters(template) == {}
        assert _outputs(template)["ModelSource"] == "config-pin"
    models = [m["Properties"]["PrimaryContainer"]
              for m in synth.resources("Mlship-staging-Endpoint", "AWS::SageMaker::Model").values()]
    by_version = {m["Environment"]["MLSHIP_MODEL_VERSION"]: flatten(m["ModelDataUrl"]) for m in models}
    assert by_version == {"3": cfg.model.model_data_url,  # model_data_url wins, version from model.uri
                          "2": "s3://mlship-staging-data-<AWS::AccountId>-<AWS::Region>/models/churn/2/bundle.tar.gz"}
    variables = _predict_function(synth, "staging", cfg.names)["Environment"]["Variables"]
    assert (variables["MODEL_URI"], variables["MLSHIP_MODEL_VERSION"]) == (cfg.model.model_data_url, "3")


@pytest.mark.parametrize("env", ["dev", "prod", "staging"])
def test_outputs_give_the_names_the_core_config_computes(synth, configs, env):
    names = configs[env].names
    endpoint, api = (synth.templates[f"Mlship-{env}-{part}"] for part in ("Endpoint", "Api"))
    source = "config-pin" if env == "staging" else "deployed-parameters"
    # ExportsOutput*: CDK's cross-stack export of the execution role (the Retrain stack passes it)
    assert {k: v for k, v in _outputs(endpoint).items() if not k.startswith("ExportsOutput")} == {
        "EndpointName": names.endpoint_name, "DeployedBundleParameter": names.deployed_bundle_parameter,
        "DeployedVersionParameter": names.deployed_version_parameter, "ModelSource": source,
        "RollbackAlarms": json.dumps(list(names.endpoint_alarms.values()))}
    # prod's API Gateway URLs (tokens): PredictUrl and the RestApi's own ApiEndpoint output
    api_outputs = {k: v for k, v in _outputs(api).items() if not k.startswith(("PredictUrl", "ApiEndpoint"))}
    assert api_outputs == {
        "FunctionName": names.function_name, "FunctionAlias": names.function_alias,
        "CodeDeployApplication": names.codedeploy_application,
        "CodeDeployDeploymentGroup": names.codedeploy_deployment_group,
        "DeployedBundleParameter": names.deployed_bundle_parameter,
        "DeployedVersionParameter": names.deployed_version_parameter, "ModelSource": source,
        "RollbackAlarms": json.dumps(list(names.lambda_alarms.values()))}
    bucket = _outputs(synth.templates[f"Mlship-{env}-Foundation"])["BucketName"]
    bucket_resource = synth.templates[f"Mlship-{env}-Foundation"]["Resources"][bucket["Ref"]]
    assert flatten(bucket_resource["Properties"]["BucketName"]) == names.bucket("<AWS::AccountId>", "<AWS::Region>")


@pytest.mark.parametrize("env", ["dev", "prod", "staging"])
def test_the_resources_carry_the_output_names(synth, configs, env):
    names = configs[env].names

    def props(part: str, rtype: str) -> list[dict[str, Any]]:
        return [r["Properties"] for r in synth.resources(f"Mlship-{env}-{part}", rtype).values()]

    assert [p["EndpointName"] for p in props("Endpoint", "AWS::SageMaker::Endpoint")] == [names.endpoint_name]
    assert [p["Name"] for p in props("Api", "AWS::Lambda::Alias")] == [names.function_alias]
    assert [p["ApplicationName"] for p in props("Api", "AWS::CodeDeploy::Application")] == [
        names.codedeploy_application]
    assert [p["DeploymentGroupName"] for p in props("Api", "AWS::CodeDeploy::DeploymentGroup")] == [
        names.codedeploy_deployment_group]
    endpoint_alarms = {p["AlarmName"] for p in props("Endpoint", "AWS::CloudWatch::Alarm")}
    assert endpoint_alarms == set(names.endpoint_alarms.values())
    api_alarms = {p["AlarmName"]: p for p in props("Api", "AWS::CloudWatch::Alarm")}
    rollback = set(names.lambda_alarms.values())
    assert rollback <= set(api_alarms)
    assert all("-capture-" in name for name in set(api_alarms) - rollback)  # capture delivery alarms
    by_id = {key: r["Properties"]["AlarmName"]
             for key, r in synth.resources(f"Mlship-{env}-Api", "AWS::CloudWatch::Alarm").items()}
    group = props("Api", "AWS::CodeDeploy::DeploymentGroup")[0]
    watched = {by_id[a["Name"]["Ref"]] if isinstance(a["Name"], dict) else a["Name"]
               for a in group["AlarmConfiguration"]["Alarms"]}
    assert watched == rollback  # CodeDeploy rolls back on these, not on capture delivery
    errors = api_alarms[names.lambda_alarms["errors"]]
    assert {"Name": "Resource", "Value": f"{names.function_name}:{names.function_alias}"} in errors["Dimensions"]
    assert _predict_function(synth, env, names)["Environment"]["Variables"].get(
        "SAGEMAKER_ENDPOINT_NAME") == names.endpoint_name
