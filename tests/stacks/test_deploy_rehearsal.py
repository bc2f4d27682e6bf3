"""Deploy rehearsal: the real CDK CLI synthesizes offline, bootstraps and deploys every dev stack
to a moto server on localhost, then boto3 checks what was created.

Before the deploy the test writes the two deployed-model SSM parameters, as a successful
``mlship rollout`` does: the stacks read them through SSM-typed CloudFormation parameters, and
moto's CloudFormation resolves those parameter types from its SSM store (the checks below read
the resolved values back from SageMaker and Lambda). moto cannot rehearse the *update* that a
second ``cdk deploy`` after a rollout would be (updates of a deployed stack fail or leave it
wrong on moto 5.2.5); that path is covered on the templates (test_release_wiring.py).

moto (5.2.5) only runs CloudFormation ``CreateStack`` far enough for this: the rehearsal deploys
with ``--method=direct`` (moto's change sets register no exports), and moto silently skips
resource types it lacks (alarms, bucket policies, CodeDeploy, Lambda aliases/URLs, EMR
Serverless, Scheduler, IoT thing groups; see docs/infra.md). It checks the resources moto does
create. The serving image is an ECR URI override: there is no Docker engine here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

from mlship.local.environment import free_port, start_moto_server

REPO = Path(__file__).resolve().parents[2]
CDK = REPO / "node_modules" / ".bin" / "cdk"
ACCOUNT, REGION = "123456789012", "us-east-1"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlship-serve:rehearsal"
OVERRIDES = {"mlship:assets.lambda_code": "source", "mlship:endpoint.image_uri": IMAGE}
CONTEXT = ["-c", "env=dev", *(arg for key, value in OVERRIDES.items() for arg in ("-c", f"{key}={value}"))]
DEPLOYED_VERSION = "3"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CDK.is_file(), reason="CDK CLI not installed (npm ci)")]


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update({"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_VERSION_CHECK": "1",
                "CDK_DISABLE_CLI_TELEMETRY": "true", "AWS_EC2_METADATA_DISABLED": "true",
                "FORCE_COLOR": "0", "CI": "true"})
    return env


def _run(args: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: int = 420) -> str:
    try:
        proc = subprocess.run([str(CDK), *args, "--no-notices"], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"`cdk {' '.join(args[:2])}` timed out after {timeout}s\n{partial[-3000:]}")
    output = proc.stdout + proc.stderr
    log.write_text(output)
    if proc.returncode != 0:
        pytest.fail(f"`cdk {' '.join(args)}` exited {proc.returncode}:\n{output[-4000:]}")
    return output


@pytest.fixture
def moto_url(tmp_path):
    """A fresh moto server on localhost (CloudFormation state must not leak between runs)."""
    log = tmp_path / "moto.log"
    server = start_moto_server(free_port(), log)
    yield server["url"], log
    with contextlib.suppress(OSError):  # already gone
        os.killpg(server["pid"], signal.SIGTERM)


def test_cdk_synth_offline_then_bootstrap_and_deploy_to_moto(tmp_path, moto_url):
    import boto3

    from mlship.config import load_config

    names = load_config("dev", OVERRIDES).names  # what the core config says the resources are called
    url, moto_log = moto_url
    # 1. Synthesize with no AWS credentials, no endpoint and no Docker: stacks are environment-agnostic.
    assembly = tmp_path / "cdk.out"
    _run(["synth", "--quiet", "--output", str(assembly), *CONTEXT], cwd=REPO, env=_base_env(),
         log=tmp_path / "synth.log")
    stacks = sorted(p.name.removesuffix(".template.json") for p in assembly.glob("*.template.json"))
    assert stacks == [f"Mlship-dev-{s}" for s in ("Api", "Batch", "Edge", "Endpoint", "Foundation", "Monitoring")]

    # 2. Bootstrap and deploy that assembly against moto (from a directory without cdk.json).
    aws_env = {**_base_env(), "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    work = tmp_path / "work"
    work.mkdir()

    def client(service: str):
        return boto3.client(service, endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    data_bucket = names.bucket(ACCOUNT, REGION)
    bundle = f"s3://{data_bucket}/models/churn/{DEPLOYED_VERSION}/bundle.tar.gz"
    ssm = client("ssm")
    try:
        _run(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], cwd=work, env=aws_env, log=tmp_path / "bootstrap.log")
        # What a successful rollout records. A first deploy needs them too: CloudFormation refuses a stack
        # whose SSM-typed parameter names a missing parameter (docs/infra.md: the first deploy).
        ssm.put_parameter(Name=names.deployed_bundle_parameter, Value=bundle, Type="String")
        ssm.put_parameter(Name=names.deployed_version_parameter, Value=DEPLOYED_VERSION, Type="String")
        out = _run(["deploy", "--app", str(assembly), "--all", "--require-approval", "never", "--method=direct",
                    "--progress", "events"], cwd=work, env=aws_env, log=tmp_path / "deploy.log")
    except pytest.fail.Exception:
        print("moto log tail:\n" + moto_log.read_text()[-3000:])
        raise
    for stack in stacks:
        assert f"✅  {stack}" in out

    # 3. What exists now, read back through boto3.
    cfn = client("cloudformation")
    described = {s["StackName"]: s for s in cfn.describe_stacks()["Stacks"] if s["StackName"].startswith("Mlship-dev-")}
    assert {k: s["StackStatus"] for k, s in described.items()} == {s: "CREATE_COMPLETE" for s in stacks}
    outputs = {k: {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])} for k, s in described.items()}
    assert outputs["Mlship-dev-Endpoint"]["EndpointName"] == names.endpoint_name
    assert outputs["Mlship-dev-Api"]["FunctionName"] == names.function_name
    assert outputs["Mlship-dev-Api"]["FunctionAlias"] == names.function_alias
    assert outputs["Mlship-dev-Api"]["CodeDeployDeploymentGroup"] == names.codedeploy_deployment_group
    for stack in ("Mlship-dev-Endpoint", "Mlship-dev-Api"):
        assert outputs[stack]["DeployedBundleParameter"] == names.deployed_bundle_parameter
        assert outputs[stack]["ModelSource"] == "deployed-parameters"
    # The Foundation stack let the deploy role read the two parameters (and nothing else).
    read = client("iam").get_role_policy(RoleName=f"cdk-hnb659fds-deploy-role-{ACCOUNT}-{REGION}",
                                         PolicyName=f"{names.stem}-deployed-model-read")["PolicyDocument"]
    assert sorted(r.rsplit(":parameter", 1)[1] for r in read["Statement"][0]["Resource"]) == sorted(
        [names.deployed_bundle_parameter, names.deployed_version_parameter])
    # The stacks created no parameter of their own: only the bootstrap's and the two the "rollout" wrote.
    parameters = {p["Name"] for p in ssm.describe_parameters(MaxResults=50)["Parameters"]}
    assert {p for p in parameters if not p.startswith("/cdk-bootstrap/")} == {
        names.deployed_bundle_parameter, names.deployed_version_parameter}

    s3 = client("s3")
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {data_bucket, f"mlship-dev-access-logs-{ACCOUNT}-{REGION}"} <= buckets
    # moto's CloudFormation applies a bucket's encryption and tags, not its versioning/lifecycle
    # (those are asserted on the template in test_templates.py).
    sse = s3.get_bucket_encryption(Bucket=data_bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"

    lam = client("lambda")
    predict = lam.get_function(FunctionName=names.function_name)["Configuration"]
    assert predict["Runtime"] == "python3.12" and predict["Handler"] == "handler.handler"
    variables = predict["Environment"]["Variables"]
    assert variables["RECORDS_BUCKET"] == data_bucket
    # moto's CloudFormation resolved the SSM-typed parameters to what the "rollout" recorded
    assert (variables["MODEL_URI"], variables["MLSHIP_MODEL_VERSION"]) == (bundle, DEPLOYED_VERSION)
    monitor = lam.get_function(FunctionName=names.monitor_function_name)["Configuration"]
    assert monitor["Environment"]["Variables"]["MODEL_URI"] == names.champion_uri

    sm = client("sagemaker")
    models = sm.list_models()["Models"]
    assert len(models) == 1
    model = sm.describe_model(ModelName=models[0]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == bundle
    assert model["PrimaryContainer"]["Environment"]["MLSHIP_MODEL_VERSION"] == DEPLOYED_VERSION
    assert "MODEL_URI" not in model["PrimaryContainer"]["Environment"]
    configs = sm.list_endpoint_configs()["EndpointConfigs"]
    assert len(configs) == 1
    config = sm.describe_endpoint_config(EndpointConfigName=configs[0]["EndpointConfigName"])
    assert config["ProductionVariants"][0]["ModelName"] == model["ModelName"]
    assert config["ProductionVariants"][0]["ServerlessConfig"]["MemorySizeInMB"] == 2048
    endpoints = sm.list_endpoints()["Endpoints"]  # moto ignores EndpointName (generated name)
    assert len(endpoints) == 1
    endpoint = sm.describe_endpoint(EndpointName=endpoints[0]["EndpointName"])
    assert endpoint["EndpointConfigName"] == config["EndpointConfigName"]
    assert endpoint["EndpointStatus"] == "InService"

    events = client("events")
    rule = events.describe_rule(Name="mlship-dev-monitor-schedule")
    assert rule["ScheduleExpression"] == "rate(1 hour)" and rule["State"] == "ENABLED"
    targets = events.list_targets_by_rule(Rule="mlship-dev-monitor-schedule")["Targets"]
    assert [t["Arn"] for t in targets] == [monitor["FunctionArn"]]

    iot = client("iot")
    template = iot.describe_job_template(jobTemplateId="mlship-dev-model-rollout")
    assert template["presignedUrlConfig"]["expiresInSec"] == 3600
    assert template["jobExecutionsRolloutConfig"]["maximumPerMinute"] == 10
    assert "mlship-dev-device" in {p["policyName"] for p in iot.list_policies()["policies"]}
