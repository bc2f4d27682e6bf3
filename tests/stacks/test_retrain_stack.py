"""The Retrain stack on the shared synthesis (prod has retrain enabled, with a schedule): the state
machine has the local runner's steps (one source), the rules start it, the image builds on the
SDK-resolved SageMaker scikit-learn image, and the roles stay least privilege."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlship.cdk import retrain_image
from mlship.cdk.nag import flatten
from mlship.cdk.retrain import HASH_CHARS, JOB_NAME_LIMIT, RUN_STEPS, job_prefix, lookup_region
from mlship.config import ConfigError, load_config
from mlship.retrain.pipeline import CLAIM_STEP, STEPS, TRAINING_STEPS

STACK = "Mlship-prod-Retrain"


def _resources(synth, rtype: str) -> list[dict[str, Any]]:
    return list(synth.resources(STACK, rtype).values())


@pytest.fixture(scope="module")
def definition(synth) -> dict[str, Any]:
    (machine,) = _resources(synth, "AWS::StepFunctions::StateMachine")
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    return json.loads(_join(machine["Properties"]["DefinitionString"]))


def _join(value: Any) -> str:
    """A CloudFormation string with its Fn::Join resolved and every other token as ``<token>``."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return delimiter.join(_join(p) for p in parts)
    if isinstance(value.get("Fn::Sub"), str):
        return value["Fn::Sub"]
    return "<token>"


def _walk(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The states on the success path, in order (a Choice continues with its Default)."""
    states, name, out = definition["States"], definition["StartAt"], []
    while name:
        state = states[name]
        out.append((name, state))
        name = state.get("Default") if state["Type"] == "Choice" else state.get("Next")
    return out


def _jobs(definition: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(n, s) for n, s in _walk(definition) if ":::sagemaker:" in s.get("Resource", "")]


def test_only_prod_has_the_retrain_stack(synth):
    assert [s for s in synth.templates if s.endswith("-Retrain")] == [STACK]


def test_task_states_are_the_runner_steps_in_order(definition):
    jobs = _jobs(definition)
    assert [name for name, _ in jobs] == [CLAIM_STEP, *STEPS] == list(RUN_STEPS)
    for name, state in jobs:
        params = state["Parameters"]
        training = name in TRAINING_STEPS
        assert state["Resource"].endswith("createTrainingJob.sync" if training else "createProcessingJob.sync")
        container = params["AlgorithmSpecification"] if training else params["AppSpecification"]
        assert container["ContainerEntrypoint"][-3:] == ["retrain", "step", name]
        args = container["ContainerArguments.$"]
        assert args.startswith("States.Array('--model', 'churn', '--run-id', $$.Execution.Name, '--env', 'prod'")
        assert ("'--event'" in args) == (name == CLAIM_STEP)
        image = container.get("TrainingImage") or container.get("ImageUri")
        assert "container-assets" in image  # the one retraining image, for both job kinds


def test_the_event_is_stored_before_the_claim_reads_it(definition):
    (first, store), (second, _) = _walk(definition)[:2]
    assert store["Resource"].endswith(":::aws-sdk:s3:putObject") and second == CLAIM_STEP
    assert store["Parameters"]["Body.$"] == "$" and store["ResultPath"] is None
    key = store["Parameters"]["Key.$"]
    assert key == "States.Format('retrain/churn/executions/{}/event.json', $$.Execution.Name)"
    claim_args = definition["States"][CLAIM_STEP]["Parameters"]["AppSpecification"]["ContainerArguments.$"]
    assert "/retrain/churn/executions/{}/event.json', $$.Execution.Name)" in claim_args


def test_job_names_fit_sagemaker_and_stopping_conditions_follow_the_config(definition, configs):
    r = configs["prod"].retrain
    for name, state in _jobs(definition):
        params = state["Parameters"]
        expr = params.get("TrainingJobName.$") or params["ProcessingJobName.$"]
        head = expr.split("'")[1].removesuffix("{}")
        assert head == f"{job_prefix(configs['prod'])}-{name}-" and "States.Hash($$.Execution.Name, 'MD5')" in expr
        assert len(head) + HASH_CHARS <= JOB_NAME_LIMIT
        seconds = params["StoppingCondition"]["MaxRuntimeInSeconds"]
        assert seconds == r.max_step_seconds * (4 if name == "release" else 1)
        assert state["TimeoutSeconds"] > seconds
        resources = params.get("ResourceConfig") or params["ProcessingResources"]["ClusterConfig"]
        assert resources["InstanceType"] == (r.training_instance_type if name in TRAINING_STEPS
                                             else r.step_instance_type)
        assert resources["VolumeKmsKeyId"]
        env = params["Environment"]
        assert env["MLSHIP_CDK_JSON"] == "/opt/mlship/project/cdk.json"
        assert env["MLSHIP_REGISTRY_BUCKET"].startswith("mlship-prod-data-") and "AWS_DEFAULT_REGION" in env


def test_skip_after_claim_and_gated_after_gate(definition):
    states = definition["States"]
    for step, prefix, end in ((CLAIM_STEP, "skipped*", "Succeed"), ("gate", "gated*", "Fail")):
        choice = states[states[step]["Next"]]
        assert choice["Type"] == "Choice"
        (rule,) = choice["Choices"]
        assert {"Variable": "$.ExitMessage", "StringMatches": prefix} in rule["And"]
        assert states[rule["Next"]]["Type"] == end
    assert states["Gated"] == {"Type": "Fail", "Error": "Gated", "CausePath": "$.ExitMessage"}
    assert _walk(definition)[-1][1]["Type"] == "Succeed"


def test_every_task_catches_into_a_fail_state_and_retries_only_transient_errors(definition):
    states = definition["States"]
    tasks = [(n, s) for n, s in states.items() if s["Type"] == "Task"]
    assert len(tasks) == len(RUN_STEPS) + 1  # the steps and the event write
    for name, state in tasks:
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["ResultPath"] == "$.error"
        failed = states[catch["Next"]]
        assert failed["Type"] == "Fail" and failed["CausePath"] == "$.error.Cause"
        errors = {e for retry in state["Retry"] for e in retry["ErrorEquals"]}
        assert errors and not errors & {"States.ALL", "States.TaskFailed", "States.Timeout"}, name
        assert all(retry["BackoffRate"] > 1 and retry["MaxAttempts"] <= 4 for retry in state["Retry"])
    assert {e for r in states[CLAIM_STEP]["Retry"] for e in r["ErrorEquals"]} == {
        "ThrottlingException", "SageMaker.AmazonSageMakerException", "SageMaker.ResourceLimitExceededException"}


def test_rules_start_the_machine_on_the_monitor_events_and_the_schedule(synth, configs):
    rules = {r["Properties"]["Name"]: r["Properties"] for r in _resources(synth, "AWS::Events::Rule")}
    on_events = rules["mlship-prod-retrain-on-monitor"]
    assert on_events["EventPattern"] == {"source": ["mlship.monitoring"],
                                         "detail-type": ["DriftDetected", "PerformanceDegraded"],
                                         "detail": {"model": {"name": ["churn"]}}}
    assert on_events["EventBusName"] == "default" and "Input" not in on_events["Targets"][0]
    schedule = rules["mlship-prod-retrain-schedule"]
    assert schedule["ScheduleExpression"] == configs["prod"].retrain.schedule == "rate(30 days)"
    transformer = schedule["Targets"][0]["InputTransformer"]
    assert transformer["InputPathsMap"] == {"id": "$.id", "time": "$.time"}  # each tick is its own trigger
    tick = json.loads(transformer["InputTemplate"].replace("<id>", '"id"').replace("<time>", '"t"'))
    assert tick["detail-type"] == "Scheduled" and tick["detail"] == {"model": {"name": "churn"}}
    for rule in rules.values():
        assert rule["Targets"][0]["Arn"]["Ref"].startswith("RetrainStateMachine")


def test_logs_go_to_an_encrypted_group(synth):
    (machine,) = _resources(synth, "AWS::StepFunctions::StateMachine")
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"
    (group,) = _resources(synth, "AWS::Logs::LogGroup")
    assert group["Properties"]["LogGroupName"].startswith("/aws/vendedlogs/states/")
    assert "Fn::GetAtt" in group["Properties"]["KmsKeyId"]


def test_the_image_builds_on_the_sdk_resolved_base_image(synth, configs):
    from sagemaker.core import image_uris

    cfg = configs["prod"]
    manifest = json.loads((synth.outdir / f"{STACK}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    expected = image_uris.retrieve("sklearn", region=lookup_region(cfg), version=cfg.retrain.framework_version,
                                   instance_type=cfg.retrain.training_instance_type, image_scope="training")
    assert image["source"]["dockerBuildArgs"]["BASE_IMAGE"] == expected
    assert image["source"]["dockerFile"] == "Dockerfile.retrain"
    staged = synth.outdir / image["source"]["directory"]
    assert {p.name for p in staged.iterdir()} >= {"Dockerfile.retrain", "constraints.txt", "mlship", "project"}
    baked = json.loads((staged / "project" / "cdk.json").read_text())["context"]
    assert load_config("prod", baked) == cfg  # the steps read exactly the synthesized configuration


def _statements(synth) -> list[dict[str, Any]]:
    out = []
    for policy in _resources(synth, "AWS::IAM::Policy"):
        out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_roles_grant_no_wildcard_actions_and_pass_only_named_roles(synth):
    statements = _statements(synth)
    actions = [a for s in statements for a in _as_list(s["Action"])]
    assert not [a for a in actions if "*" in a], actions
    passes = [s for s in statements if "iam:PassRole" in _as_list(s["Action"])]
    assert len(passes) == 2  # the job role (by the state machine), the endpoint role (by the release step)
    assert not [a for a in actions if a.startswith("sagemaker:") and "ModelPackage" in a]  # no registry mirror
    for s in passes:
        assert _as_list(s["Action"]) == ["iam:PassRole"] and "*" not in json.dumps(s["Resource"])
        assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    jobs = [flatten(r) for s in statements for r in _as_list(s["Resource"])
            if "sagemaker:CreateProcessingJob" in _as_list(s["Action"])
            or "sagemaker:CreateTrainingJob" in _as_list(s["Action"])]
    assert sorted(j.rsplit(":", 1)[1] for j in jobs) == ["processing-job/mlship-prod-retrain-*",
                                                         "training-job/mlship-prod-retrain-*"]
    rules = [flatten(r) for s in statements if "events:PutRule" in _as_list(s["Action"]) for r in s["Resource"]]
    assert sorted(r.rsplit("/", 1)[1] for r in rules) == ["StepFunctionsGetEventsForSageMakerProcessingJobsRule",
                                                          "StepFunctionsGetEventsForSageMakerTrainingJobsRule"]


def test_every_wildcard_of_the_stack_is_acknowledged_with_a_reason(synth):
    acks = {rule: reason for entries in synth.metadata[STACK].values() for entry in entries
            if entry["type"] == "aws:cdk:acknowledged-rules" for rule, reason in entry["data"].items()}
    found = [f for s in _statements(synth) for r in _as_list(s["Resource"]) if "*" in (f := flatten(r))]
    for finding in found:
        assert any(finding in rule for rule in acks), finding
    assert all(len(reason) >= 40 for reason in acks.values())


def test_job_names_fit_for_the_longest_prefix_and_environment():
    cfg = load_config("staging", {"mlship:prefix": "p" * 31})
    assert len(job_prefix(cfg)) + 1 + max(map(len, RUN_STEPS)) + 1 + HASH_CHARS <= JOB_NAME_LIMIT


@pytest.mark.parametrize("key, value", [("code_dir", "../elsewhere"), ("code_dir", "/abs/trainer"),
                                        ("thresholds", "no/such/thresholds.yaml")])
def test_staging_refuses_paths_outside_the_project_or_missing(tmp_path: Path, key: str, value: str):
    cfg = load_config("prod", {f"mlship:retrain.{key}": value})
    with pytest.raises(ConfigError, match=f"retrain.{key}"):
        retrain_image.stage_context(cfg, out=tmp_path / "ctx")


def test_staging_copies_code_dir_and_thresholds_where_the_config_names_them(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "mlship").mkdir(parents=True)
    (repo / "mlship" / "__init__.py").write_text("")
    (repo / "trainers" / "acme").mkdir(parents=True)
    (repo / "trainers" / "acme" / "fit.py").write_text("def fit(df): ...\n")
    (repo / "gate.yaml").write_text("min_auc: 0.7\n")
    for name in ("Dockerfile.retrain", "constraints.txt"):
        (repo / name).write_text("x\n")
    cfg = load_config("prod", {"mlship:retrain.code_dir": "trainers", "mlship:retrain.thresholds": "gate.yaml"})
    out = retrain_image.stage_context(cfg, base=repo, out=tmp_path / "ctx")
    assert (out / "project" / "trainers" / "acme" / "fit.py").is_file()
    assert (out / "project" / "gate.yaml").read_text() == "min_auc: 0.7\n"
    assert (out / "mlship" / "__init__.py").is_file()


def test_synthesis_warns_when_the_steps_would_have_no_gate_thresholds(synth, configs):
    assert configs["prod"].retrain.thresholds is None
    warnings = [entry["data"] for entries in synth.metadata[STACK].values() for entry in entries
                if entry["type"] == "aws:cdk:warning"]
    assert any("neither retrain.thresholds nor retrain.gate is set" in str(w) for w in warnings), warnings


def test_the_jobs_read_only_the_configured_signing_key_parameter(synth, configs):
    assert configs["prod"].retrain.signing_key_parameter == "/mlship/prod/signing-key"
    reads = [flatten(r) for s in _statements(synth) if "ssm:GetParameter" in _as_list(s["Action"])
             for r in _as_list(s["Resource"])]
    assert len(reads) == 1 and reads[0].endswith(":parameter/mlship/prod/signing-key"), reads
