"""Names shared by the constructs (deterministic, so stacks reference each other without exports).

The names themselves come from :class:`mlship.config.ReleaseNames` (the CLI computes the same
ones); this module adds what only CDK knows: account and region tokens, ARNs, and the model a
serving resource loads (:func:`served_model`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from mlship.config import LOG_RETENTION_DAYS, MlshipConfig, ReleaseNames

RECORDS_PREFIX = "inference-records/"
LABELS_PREFIX = "labels/"
REPORTS_PREFIX = "monitoring/"
BUNDLES_PREFIX = "bundles/"
CAPTURE_PREFIX = "data-capture/"
CAPTURE_ERRORS_PREFIX = "capture-errors/"  # Firehose: capture lines it could not partition
BATCH_LOGS_PREFIX = "batch/logs/"
METRICS_NAMESPACE = "mlship"


@dataclass(frozen=True)
class Names:
    """Physical names of the resources one environment creates, with CDK tokens where AWS decides."""

    cfg: MlshipConfig

    @property
    def release(self) -> ReleaseNames:
        """The token-free names (endpoint, function, alias, CodeDeploy, alarms, parameters)."""
        return self.cfg.names

    @property
    def bucket(self) -> str:
        """The data bucket: bundles/registry, inference records, batch I/O, reports."""
        return self.release.bucket(cdk.Aws.ACCOUNT_ID, cdk.Aws.REGION)

    @property
    def log_bucket(self) -> str:
        return self.release.log_bucket(cdk.Aws.ACCOUNT_ID, cdk.Aws.REGION)

    def bucket_arn(self, key_pattern: str | None = None) -> str:
        arn = f"arn:{cdk.Aws.PARTITION}:s3:::{self.bucket}"
        return arn if key_pattern is None else f"{arn}/{key_pattern}"

    @property
    def endpoint(self) -> str:
        return self.release.endpoint_name

    @property
    def topic(self) -> str:
        return self.release.topic

    def alarm(self, what: str) -> str:
        return self.release.alarm(what)

    def alarm_arn(self, name: str) -> str:
        """The ARN of the alarm called ``name`` (a full name, e.g. from ``release.endpoint_alarms``)."""
        return f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:alarm:{name}"

    def log_group(self, function_name: str) -> str:
        return self.release.log_group(function_name)

    @property
    def thing_group(self) -> str:
        return self.release.thing_group

    @property
    def job_template(self) -> str:
        return self.release.job_template


@dataclass(frozen=True)
class ServedModel:
    """What a serving resource loads: a bundle URI and its version (either may be a CDK token)."""

    bundle_uri: str
    version: str | None
    pinned: bool  # True: from the config (escape hatch); False: the deployed-model SSM parameters
    name: str | None = None  # a variant pin's registry model, when it names one


def served_model(scope: Construct, names: Names, variant_uri: str | None = None) -> ServedModel:
    """The model to serve: a bundle the config pins, else the one the last rollout deployed.

    The deployed bundle and version are read through SSM-typed CloudFormation parameters, which
    CloudFormation resolves again on every create and update, so ``cdk deploy`` redeploys what the
    last ``mlship rollout`` recorded instead of reverting it. The stacks never create those
    parameters: a stack-owned parameter would be reset by the next deploy.
    """
    pin = names.release.pinned_model(names.bucket, variant_uri)
    if pin is not None:
        return ServedModel(pin.bundle_uri, pin.version, pinned=True, name=pin.name)
    return ServedModel(
        ssm.StringParameter.value_for_string_parameter(scope, names.release.deployed_bundle_parameter),
        ssm.StringParameter.value_for_string_parameter(scope, names.release.deployed_version_parameter),
        pinned=False)


def monitored_uri(names: Names) -> str:
    """What batch jobs and the monitor load: a pinned bundle, else the champion alias.

    These resolve the alias when they run (one version per job or monitor run), and a successful
    rollout moves the champion to the version it deployed, so they follow rollouts; the SSM
    parameters would be stale here (resolved only when the stack deploys).
    """
    pin = names.release.pinned_model(names.bucket)
    return pin.bundle_uri if pin is not None else names.release.champion_uri


def pinned_objects(cfg: MlshipConfig) -> list[str]:
    """``bucket/key`` of every S3 tarball the config pins (they may live outside the data bucket)."""
    uris = [cfg.model.model_data_url, cfg.model.uri, *(v.model_uri for v in cfg.endpoint.variants)]
    if cfg.endpoint.shadow is not None:
        uris.append(cfg.endpoint.shadow.model_uri)
    return sorted({u.removeprefix("s3://") for u in uris if u and u.startswith("s3://")})


def pinned_read_statement(cfg: MlshipConfig) -> iam.PolicyStatement | None:
    """GetObject on the tarballs the config pins (None when it pins none): roles already read the data bucket."""
    objects = pinned_objects(cfg)
    if not objects:
        return None
    return iam.PolicyStatement(actions=["s3:GetObject"],
                               resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{obj}" for obj in objects])


def reads_deployed_parameters(cfg: MlshipConfig) -> bool:
    """Whether the serving stacks read the deployed-model parameters (the config pins no model)."""
    return cfg.names.pinned_model("") is None


def grant_deployed_model_read(scope: Construct, names: Names) -> iam.Policy | None:
    """Let the CDK deploy role read exactly the two deployed-model parameters.

    CloudFormation evaluates SSM-typed parameters when the change set is created, with the
    credentials of its caller: under the default bootstrap that is ``cdk-<qualifier>-deploy-role``,
    whose own policy reads only the bootstrap-version parameter. None for other synthesizers
    (whoever deploys then needs ``ssm:GetParameters`` on them).
    """
    synthesizer = cdk.Stack.of(scope).synthesizer
    if not isinstance(synthesizer, cdk.DefaultStackSynthesizer) or ":role/" not in synthesizer.deploy_role_arn:
        return None
    role_name = cdk.Fn.sub(synthesizer.deploy_role_arn.split(":role/", 1)[1])
    release = names.release
    arns = [f"arn:{cdk.Aws.PARTITION}:ssm:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:parameter{name}"
            for name in (release.deployed_bundle_parameter, release.deployed_version_parameter)]
    return iam.Policy(scope, "DeployedModelRead", policy_name=f"{release.stem}-deployed-model-read",
                      roles=[iam.Role.from_role_name(scope, "DeployRole", role_name)],
                      statements=[iam.PolicyStatement(actions=["ssm:GetParameter", "ssm:GetParameters"],
                                                      resources=arns)])


def release_outputs(scope: Construct, names: Names, model: ServedModel, alarms: list[str]) -> None:
    """Outputs a rollout needs: where it records the deployed model and which alarms guard it."""
    release = names.release
    cdk.CfnOutput(scope, "DeployedBundleParameter", value=release.deployed_bundle_parameter)
    cdk.CfnOutput(scope, "DeployedVersionParameter", value=release.deployed_version_parameter)
    cdk.CfnOutput(scope, "ModelSource", value="config-pin" if model.pinned else "deployed-parameters")
    cdk.CfnOutput(scope, "RollbackAlarms", value=json.dumps(alarms))


def grant_serving_data(role: iam.Role, cfg: MlshipConfig, names: Names, key_arn: str,
                       write_prefix: str | None) -> None:
    """What a serving role needs of the data bucket: read bundles (and a pinned tarball elsewhere),
    list the bucket, write its records under ``write_prefix`` (None: it writes nothing), use the data key."""
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[names.bucket_arn("*")]))
    if write_prefix is not None:
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"],
                                               resources=[names.bucket_arn(f"{write_prefix}*")]))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[names.bucket_arn()]))
    role.add_to_policy(kms_statement(key_arn))
    pinned = pinned_read_statement(cfg)
    if pinned is not None:  # a pinned tarball may live outside the mlship bucket
        role.add_to_policy(pinned)


def log_statements(log_group_name: str) -> list[iam.PolicyStatement]:
    """Write access to one log group's streams (the group itself is created by the stack)."""
    arn = f"arn:{cdk.Aws.PARTITION}:logs:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:log-group:{log_group_name}"
    return [iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{arn}:*"])]


def metrics_statement() -> iam.PolicyStatement:
    """PutMetricData, limited to the mlship namespace."""
    return iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"],
                               conditions={"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}})


def kms_statement(key_arn: str, write: bool = True) -> iam.PolicyStatement:
    actions = ["kms:Decrypt", "kms:DescribeKey"] + (["kms:Encrypt", "kms:GenerateDataKey"] if write else [])
    return iam.PolicyStatement(actions=actions, resources=[key_arn])


def retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention enum for ``days`` (validated by the config)."""
    return getattr(logs.RetentionDays, LOG_RETENTION_DAYS[days])
