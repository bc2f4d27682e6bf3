"""Retrain: the monitor's events (and an optional schedule) start a Step Functions retraining run.

The state machine's task states are built from the local runner's step list
(``(CLAIM_STEP, *STEPS)`` in :mod:`mlship.retrain.pipeline`, one source for both): each step runs
``python3 -m mlship retrain step STEP --model MODEL --run-id EXECUTION --env ENV`` in the
retraining image (:mod:`mlship.cdk.retrain_image`), as a SageMaker training job for
``TRAINING_STEPS`` and a processing job for the others (``.sync``: the state waits for the job).
Before the claim the execution input (the EventBridge event) is written to S3, where the claim
step reads it (``--event s3://...``). A step's outcome is the first word of its exit message:
``skipped`` after the claim (duplicate / cooldown) ends the run as succeeded, ``gated`` after the
gate fails it with ``Gated``; a job that fails fails the run with the job's failure as the cause.
Transient SageMaker errors are retried with exponential backoff; a step's own failure never is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from mlship.cdk import nag
from mlship.cdk.names import Names, kms_statement, pinned_read_statement, retention
from mlship.cdk.props import RetrainingPipelineProps
from mlship.cdk.retrain_image import CDK_JSON_PATH, CDK_JSON_VARIABLE, RetrainImage, retrain_image
from mlship.config import MlshipConfig
from mlship.release.alarms import default_alarm_names
from mlship.retrain.pipeline import CLAIM_STEP, STEPS, TRAINING_STEPS

RUN_STEPS = (CLAIM_STEP, *STEPS)
RETRAIN_PREFIX = "retrain/"  # mlship.retrain's layout in the registry bucket (the stacks use no registry prefix)
MONITOR_SOURCE = "mlship.monitoring"
TRIGGER_TYPES = ("DriftDetected", "PerformanceDegraded")
SCHEDULE_TYPE = "Scheduled"
# A step's exit message that ends the run early: after the claim a skip succeeds, after the gate a refusal fails.
STOPPING_OUTCOMES = {CLAIM_STEP: "skipped", "gate": "gated"}
LONG_STEPS = {"release": 4}  # the release follows a rollout to its verdict: a longer stopping condition
HASH_CHARS = 32  # States.Hash(..., 'MD5') in hex: a fixed-length, job-name-safe id of the execution
JOB_NAME_LIMIT = 63
_INTRINSIC_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
PROVISIONING_SECONDS = 3600  # a task waits for the instance too: the job's limit plus this
VOLUME_GB = 30
# Errors of the SageMaker .sync integrations that a second call can cure (the names Step Functions
# gives SageMaker's API exceptions, as in AWS's Step Functions samples). A job that ran and failed
# surfaces as States.TaskFailed, which is caught, never retried.
TRANSIENT_ERRORS = ["ThrottlingException", "SageMaker.AmazonSageMakerException"]
CAPACITY_ERRORS = ["SageMaker.ResourceLimitExceededException"]
S3_TRANSIENT_ERRORS = ["S3.S3Exception", "S3.SdkClientException"]
SYNC_RULES = ("StepFunctionsGetEventsForSageMakerProcessingJobsRule",
              "StepFunctionsGetEventsForSageMakerTrainingJobsRule")

for _step in (*STOPPING_OUTCOMES, *LONG_STEPS, *TRAINING_STEPS):
    if _step not in RUN_STEPS:  # the pipeline renamed a step: fail at import, not in AWS
        raise RuntimeError(f"retrain stack: step {_step!r} is not one of {RUN_STEPS}")


def job_prefix(cfg: MlshipConfig) -> str:
    """The start of every job name (``PREFIX-STEP-HASH`` fits SageMaker's 63 characters)."""
    room = JOB_NAME_LIMIT - HASH_CHARS - max(len(s) for s in RUN_STEPS) - 2
    return f"{cfg.name}-retrain"[:room].rstrip("-")


def state_machine_name(cfg: MlshipConfig) -> str:
    return f"{cfg.name}-retrain-{cfg.model.name}"[:80].rstrip("-")


def event_key(cfg: MlshipConfig, execution: str = "{}") -> str:
    """Where the state machine stores its execution's event (the claim step reads it)."""
    return f"{RETRAIN_PREFIX}{cfg.model.name}/executions/{execution}/event.json"


def event_bus_name(cfg: MlshipConfig) -> str:
    """The bus the monitor sends its events to (its EVENT_BUS_NAME, ``default`` unless overridden)."""
    return cfg.monitoring.environment.get("EVENT_BUS_NAME", "default")


def lookup_region(cfg: MlshipConfig) -> str:
    """The region the base image is looked up in (a build input: any region's copy builds the same image)."""
    return cfg.region or os.environ.get("CDK_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def _literal(text: str) -> str:
    """``text`` as a quoted argument of an intrinsic function (the config's names need no escapes)."""
    if not _INTRINSIC_SAFE.match(text):
        raise ValueError(f"{text!r} cannot be an intrinsic-function argument as is")
    return f"'{text}'"


def _arn(service: str, resource: str) -> str:
    """An ARN of this stack's account and region (both CDK tokens)."""
    return f"arn:{cdk.Aws.PARTITION}:{service}:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:{resource}"


class RetrainingPipeline(Construct):
    """The retraining state machine, its jobs' role and image, and the rules that start it."""

    def __init__(self, scope: Construct, cid: str, *, props: RetrainingPipelineProps) -> None:
        super().__init__(scope, cid)
        cfg, self.props = props.settings, props
        self.names = names = Names(cfg)
        self.prefix = job_prefix(cfg)
        self.image: RetrainImage = retrain_image(self, cfg, lookup_region(cfg))
        self.job_role = RetrainJobRole(self, "JobRole", props=props, names=names, image=self.image,
                                       job_prefix=self.prefix)
        self.role = self._state_machine_role()
        self.state_machine = self._state_machine()
        self.rules = self._rules()
        _acknowledge_wildcards(self.job_role.role, JOB_ROLE_WILDCARDS)
        _acknowledge_wildcards(self.role, STATE_MACHINE_WILDCARDS)
        if not (cfg.retrain.thresholds or cfg.retrain.gate):  # the gate step refuses to run without them
            cdk.Annotations.of(self).add_warning_v2(
                "mlship:retrain-thresholds", "neither retrain.thresholds nor retrain.gate is set: the gate step "
                "will refuse to run; set the thresholds inline (retrain.gate) or as a file inside the project")
        cdk.CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "RetrainImageUri", value=self.image.image_uri)
        cdk.CfnOutput(self, "BaseImage", value=self.image.base_image)

    def _state_machine_role(self) -> iam.Role:
        role = iam.Role(self, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description="retraining state machine: run the steps' SageMaker jobs, store the trigger")
        kinds = {"processing-job": "ProcessingJob", "training-job": "TrainingJob"}
        for kind, api in kinds.items():
            role.add_to_policy(iam.PolicyStatement(
                actions=[f"sagemaker:Create{api}", f"sagemaker:Describe{api}", f"sagemaker:Stop{api}",
                         "sagemaker:ListTags"],
                resources=[_arn("sagemaker", f"{kind}/{self.prefix}-*")]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self.job_role.role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))
        # The .sync integrations learn that a job ended from a rule Step Functions manages itself.
        role.add_to_policy(iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[_arn("events", f"rule/{rule}") for rule in SYNC_RULES]))
        role.add_to_policy(kms_statement(self.props.key_arn))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:CreateGrant"], resources=[self.props.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
        return role

    def _state_machine(self) -> sfn.StateMachine:
        cfg = self.props.settings
        name = state_machine_name(cfg)
        log_key = kms.Key(self, "LogKey", enable_key_rotation=True,
                          description=f"mlship {cfg.env}: the retraining state machine's execution logs")
        log_group_name = f"/aws/vendedlogs/states/{name}"
        log_key.add_to_resource_policy(iam.PolicyStatement(
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            principals=[iam.ServicePrincipal(f"logs.{cdk.Aws.REGION}.amazonaws.com")], resources=["*"],
            conditions={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": _arn(
                "logs", f"log-group:{log_group_name}")}}))
        log_group = logs.LogGroup(self, "Logs", log_group_name=log_group_name, encryption_key=log_key,
                                  retention=retention(cfg.monitoring.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, "StateMachine", state_machine_name=name, state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(self._definition()), role=self.role,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True, comment=f"mlship retraining of {cfg.model.name}: {' -> '.join(RUN_STEPS)}")
        machine.node.add_dependency(self.role)
        return machine

    def _definition(self) -> sfn.IChainable:
        """StoreEvent → claim → (skipped: end) → collect → … → gate → (gated: fail) → release → done."""
        cfg = self.props.settings
        store = tasks.CallAwsService(
            self, "StoreEvent", service="s3", action="putObject",
            parameters={"Bucket": self.names.bucket, "ContentType": "application/json",
                        "Key": sfn.JsonPath.format(event_key(cfg), sfn.JsonPath.execution_name),
                        "Body": sfn.JsonPath.entire_payload},
            iam_resources=[self.names.bucket_arn(event_key(cfg, "*"))], result_path=sfn.JsonPath.DISCARD,
            comment="the execution's event, read by the claim step (--event)")
        store.add_retry(errors=S3_TRANSIENT_ERRORS, interval=cdk.Duration.seconds(2), max_attempts=4,
                        backoff_rate=2.0)
        store.add_catch(sfn.Fail(self, "StoreEvent failed", error="StepFailed", cause_path="$.error.Cause"),
                        errors=["States.ALL"], result_path="$.error")
        ends: dict[str, Callable[[], sfn.State]] = {
            "skipped": lambda: sfn.Succeed(self, "Skipped", comment="a duplicate trigger, or inside the cooldown"),
            "gated": lambda: sfn.Fail(self, "Gated", error="Gated", cause_path="$.ExitMessage"),
        }
        connect: Callable[[sfn.IChainable], object] = store.next
        for step in RUN_STEPS:
            state = self._step_state(step)
            connect(state)
            connect = state.next
            outcome = STOPPING_OUTCOMES.get(step)
            if outcome is not None:
                choice = sfn.Choice(self, f"{step} outcome", comment=f"an exit message '{outcome} ...' ends the run")
                choice.when(sfn.Condition.and_(sfn.Condition.is_present("$.ExitMessage"),
                                               sfn.Condition.string_matches("$.ExitMessage", f"{outcome}*")),
                            ends[outcome]())
                connect(choice)
                connect = choice.otherwise
        connect(sfn.Succeed(self, "Succeeded", comment="every step ran"))
        return store

    def _step_state(self, step: str) -> sfn.CustomState:
        state = sfn.CustomState(self, step, state_json=self._job_state_json(step))
        state.add_retry(errors=TRANSIENT_ERRORS, interval=cdk.Duration.seconds(30), max_attempts=4,
                        backoff_rate=2.0, jitter_strategy=sfn.JitterType.FULL)
        state.add_retry(errors=CAPACITY_ERRORS, interval=cdk.Duration.minutes(5), max_attempts=3, backoff_rate=2.0)
        state.add_catch(sfn.Fail(self, f"{step} failed", error="StepFailed", cause_path="$.error.Cause",
                                 comment=f"the {step} step's job failed (its FailureReason is in the cause)"),
                        errors=["States.ALL"], result_path="$.error")
        return state

    def _container(self, step: str) -> dict[str, object]:
        """The step's command: a fixed entry point, the run's arguments built from the execution."""
        cfg = self.props.settings
        execution = "$$.Execution.Name"
        arguments = ["'--model'", _literal(cfg.model.name), "'--run-id'", execution, "'--env'", _literal(cfg.env)]
        if step == CLAIM_STEP:
            uri = f"s3://{self.names.bucket}/{event_key(cfg)}"
            arguments += ["'--event'", f"States.Format('{uri}', {execution})"]
        return {"ContainerEntrypoint": ["python3", "-m", "mlship", "retrain", "step", step],
                "ContainerArguments.$": f"States.Array({', '.join(arguments)})"}

    def _job_state_json(self, step: str) -> dict[str, object]:
        r, key = self.props.settings.retrain, self.props.key_arn
        seconds = r.max_step_seconds * LONG_STEPS.get(step, 1)
        training = step in TRAINING_STEPS
        params: dict[str, object] = {
            f"{'Training' if training else 'Processing'}JobName.$":
                f"States.Format('{self.prefix}-{step}-{{}}', States.Hash($$.Execution.Name, 'MD5'))",
            "RoleArn": self.job_role.role.role_arn,
            "StoppingCondition": {"MaxRuntimeInSeconds": seconds},
            "Environment": self.job_role.environment,
        }
        if training:
            params["AlgorithmSpecification"] = {"TrainingImage": self.image.image_uri, "TrainingInputMode": "File",
                                                **self._container(step)}
            params["ResourceConfig"] = {"InstanceCount": 1, "InstanceType": r.training_instance_type,
                                        "VolumeSizeInGB": VOLUME_GB, "VolumeKmsKeyId": key}
            params["OutputDataConfig"] = {"S3OutputPath": f"s3://{self.names.bucket}/{self.job_role.output_prefix}",
                                          "KmsKeyId": key}
        else:
            params["AppSpecification"] = {"ImageUri": self.image.image_uri, **self._container(step)}
            params["ProcessingResources"] = {"ClusterConfig": {
                "InstanceCount": 1, "InstanceType": r.step_instance_type, "VolumeSizeInGB": VOLUME_GB,
                "VolumeKmsKeyId": key}}
        kind = "createTrainingJob" if training else "createProcessingJob"
        return {"Type": "Task", "Resource": f"arn:{cdk.Aws.PARTITION}:states:::sagemaker:{kind}.sync",
                "Parameters": params, "TimeoutSeconds": seconds + PROVISIONING_SECONDS,
                "Comment": f"mlship retrain step {step} ({'training' if training else 'processing'} job)"}

    def _rules(self) -> list[events.Rule]:
        cfg = self.props.settings
        model = cfg.model.name
        bus = events.EventBus.from_event_bus_name(self, "Bus", event_bus_name(cfg))
        rules = [events.Rule(
            self, "MonitorEvents", event_bus=bus, rule_name=f"{cfg.name}-retrain-on-monitor",
            description=f"the monitor's drift / degradation events about {model} start a retraining run",
            event_pattern=events.EventPattern(source=[MONITOR_SOURCE], detail_type=list(TRIGGER_TYPES),
                                              detail={"model": {"name": [model]}}),
            targets=[targets.SfnStateMachine(self.state_machine, retry_attempts=3)])]
        if cfg.retrain.schedule:
            tick = {"version": "0", "id": events.EventField.event_id, "source": "mlship.schedule",
                    "detail-type": SCHEDULE_TYPE, "time": events.EventField.time, "detail": {"model": {"name": model}}}
            rules.append(events.Rule(
                self, "Schedule", rule_name=f"{cfg.name}-retrain-schedule",
                description=f"retrain {model} on a schedule ({cfg.retrain.schedule})",
                schedule=events.Schedule.expression(cfg.retrain.schedule),
                targets=[targets.SfnStateMachine(self.state_machine, retry_attempts=3,
                                                 input=events.RuleTargetInput.from_object(tick))]))
        return rules


def _acknowledge_wildcards(role: iam.Role, reasons: list[tuple[str, str]]) -> None:
    """Acknowledge the role's wildcard findings that mlship.cdk.nag's rules leave open, each with the
    reason whose regex (on the flattened finding) matches; an unexplained one still fails synthesis."""
    policy = role.node.try_find_child("DefaultPolicy")
    if policy is None:
        return
    cfn = policy.node.default_child
    document = cdk.Stack.of(role).resolve(cfn.policy_document)
    for finding, known in nag.wildcard_findings(document):
        if known:
            continue
        for pattern, template in reasons:
            match = re.search(pattern, finding)
            if match:
                nag.acknowledge(cfn, f"AwsSolutions-IAM5[{finding}]", template.format(**match.groupdict()))
                break


class RetrainJobRole(Construct):
    """The role every step's SageMaker job runs with, and the environment the steps read."""

    def __init__(self, scope: Construct, cid: str, *, props: RetrainingPipelineProps, names: Names,
                 image: RetrainImage, job_prefix: str) -> None:
        super().__init__(scope, cid)
        cfg, self.props, self.names, self.job_prefix = props.settings, props, names, job_prefix
        model = cfg.model.name
        self.output_prefix = f"{RETRAIN_PREFIX}{model}/training-output/"
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description=f"mlship retraining jobs of {model}: data, registry, image, logs, release")
        self.environment = {
            "MLSHIP_REGISTRY_BUCKET": names.bucket, CDK_JSON_VARIABLE: CDK_JSON_PATH,
            "AWS_DEFAULT_REGION": cdk.Aws.REGION, "MLSHIP_EVENT_BUS": event_bus_name(cfg),
        }
        self._data(image)  # the steps open the registry without its SageMaker mirror (sagemaker=False)
        self._release()

    def _allow(self, actions: list[str], resources: list[str], conditions: dict | None = None) -> None:
        self.role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions))

    def _data(self, image: RetrainImage) -> None:
        """The bucket (read all, write the model's registry and retrain prefixes), fresh data elsewhere,
        the key, the image, the jobs' logs and metrics, and the run's end event."""
        cfg, names, model = self.props.settings, self.names, self.props.settings.model.name
        self._allow(["s3:GetObject"], [names.bucket_arn("*")])
        self._allow(["s3:ListBucket"], [names.bucket_arn()])
        writes = [f"{RETRAIN_PREFIX}{model}/", f"models/{model}/", f"aliases/{model}/", f"audit/{model}/"]
        self._allow(["s3:PutObject"], [names.bucket_arn(f"{p}*") for p in writes])
        self.role.add_to_policy(kms_statement(self.props.key_arn))
        self._allow(["kms:CreateGrant"], [self.props.key_arn], {"Bool": {"kms:GrantIsForAWSResource": "true"}})
        pinned = pinned_read_statement(cfg)
        if pinned is not None:  # a pinned tarball may live outside the mlship bucket
            self.role.add_to_policy(pinned)
        data = cfg.retrain.data_uri or ""
        if data.startswith("s3://"):  # fresh data may live in another bucket
            bucket, _, prefix = data.removeprefix("s3://").partition("/")
            self._allow(["s3:GetObject"], [f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{prefix}*"])
            self._allow(["s3:ListBucket"], [f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}"])
        self._allow(["ecr:GetAuthorizationToken"], ["*"])
        self._allow(["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    [image.asset.repository.repository_arn])
        groups = [f"log-group:/aws/sagemaker/{kind}" for kind in ("ProcessingJobs", "TrainingJobs")]
        self._allow(["logs:CreateLogGroup", "logs:DescribeLogStreams"], [_arn("logs", g) for g in groups])
        self._allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                    [_arn("logs", f"{g}:log-stream:{self.job_prefix}-*") for g in groups])
        self._allow(["cloudwatch:PutMetricData"], ["*"], {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}})
        self._allow(["events:PutEvents"], [_arn("events", f"event-bus/{event_bus_name(cfg)}")])
        key = cfg.retrain.signing_key_parameter
        if key:  # the export step signs with it (a SecureString; its aws/ssm key is usable through SSM)
            self._allow(["ssm:GetParameter"], [_arn("ssm", f"parameter/{key.lstrip('/')}")])

    def _release(self) -> None:
        """What the release step's ``mlship rollout endpoint|lambda`` calls, for the configured target."""
        cfg, release = self.props.settings, self.names.release
        if cfg.retrain.release == "none":
            return
        target = cfg.retrain.release_target or ("endpoint" if cfg.endpoint.enabled else "lambda")
        params = [_arn("ssm", f"parameter{p}")
                  for p in (release.deployed_bundle_parameter, release.deployed_version_parameter)]
        self._allow(["ssm:PutParameter"], params)
        if target == "endpoint":
            self._release_endpoint()
        else:
            self._release_lambda()

    def _release_endpoint(self) -> None:
        cfg, names = self.props.settings, self.names
        ep = names.endpoint.lower()  # SageMaker ARNs carry lower-cased names
        self._allow(["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
                    [_arn("sagemaker", f"endpoint/{ep}")])
        self._allow(["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint"],
                    [_arn("sagemaker", f"model/{ep}-*"), _arn("sagemaker", f"endpoint-config/{ep}-*")])
        self._allow(["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                    [_arn("sagemaker", "endpoint-config/*"), _arn("sagemaker", "model/*")])
        if self.props.endpoint_role_arn:
            self._allow(["iam:PassRole"], [self.props.endpoint_role_arn],
                        {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}})
        defaults = [a for v in cfg.endpoint.variants for a in default_alarm_names(names.endpoint, v.name)]
        alarms = [names.alarm_arn(a) for a in [*names.release.endpoint_alarms.values(), *defaults]]
        self._allow(["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"], alarms)
        self._allow(["cloudwatch:PutMetricAlarm"], [names.alarm_arn(a) for a in defaults])

    def _release_lambda(self) -> None:
        release = self.names.release
        fn = _arn("lambda", f"function:{release.function_name}")
        self._allow(["lambda:GetFunction", "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration",
                     "lambda:PublishVersion", "lambda:GetAlias"], [fn, f"{fn}:*"])
        app, group = release.codedeploy_application, release.codedeploy_deployment_group
        self._allow(["codedeploy:CreateDeployment", "codedeploy:GetDeployment", "codedeploy:GetDeploymentGroup",
                     "codedeploy:ListDeployments"], [_arn("codedeploy", f"deploymentgroup:{app}/{group}")])
        self._allow(["codedeploy:RegisterApplicationRevision", "codedeploy:GetApplicationRevision"],
                    [_arn("codedeploy", f"application:{app}")])
        self._allow(["codedeploy:GetDeploymentConfig"], [_arn("codedeploy", "deploymentconfig:*")])
        self._allow(["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"],
                    [self.names.alarm_arn(a) for a in release.lambda_alarms.values()])


# (regex on the flattened IAM5 finding, reason) for the wildcards this stack cannot avoid.
_RESOURCE = r"^Resource::arn:<AWS::Partition>:"
_DATA_BUCKET = r"s3:::[a-z0-9.-]+<AWS::AccountId>-<AWS::Region>/"
JOB_ROLE_WILDCARDS = [
    (r"^Resource::\*$", "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (limited to the /aws/sagemaker/ "
                        "namespaces by condition) support no resource-level permissions; image pulls are scoped "
                        "to the retraining image's repository"),
    (_RESOURCE + _DATA_BUCKET + r"(?P<prefix>.+/)\*$",
     "object writes under {prefix} of the mlship bucket only: the retraining run's workspace, records and the "
     "model's registry versions, aliases and audit (keys are per version and run)"),
    (_RESOURCE + r"s3:::(?P<bucket>[^/]+)/(?P<prefix>[^*]*)\*$",
     "read-only access to the configured fresh labelled data under s3://{bucket}/{prefix}"),
    (_RESOURCE + r"logs:.*log-stream:(?P<prefix>[a-z0-9-]+)-\*$",
     "the log streams of this pipeline's own jobs ({prefix}-STEP-HASH) in SageMaker's job log groups"),
    (_RESOURCE + r"sagemaker:.*:(?:model|endpoint-config)/(?P<ep>[a-z0-9-]+)-\*$",
     "the models and endpoint configurations mlship rollout creates for endpoint {ep} (named {ep}-vVERSION-STAMP)"),
    (_RESOURCE + r"sagemaker:.*:(?:model|endpoint-config)/\*$",
     "read-only Describe of the live endpoint's configuration and model, whose names CloudFormation or an earlier "
     "rollout generated"),
    (_RESOURCE + r"lambda:.*:function:(?P<fn>[^:]+):\*$",
     "the versions and alias of the predict function {fn} that the release rollout publishes and shifts"),
    (_RESOURCE + r"codedeploy:.*:deploymentconfig:\*$",
     "read-only lookup of the deployment configuration the predict deployment group names"),
]
STATE_MACHINE_WILDCARDS = [
    (r"^Resource::\*$", "X-Ray (PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) and "
                        "CloudWatch Logs log delivery (CreateLogDelivery and friends) support no resource-level "
                        "permissions: they serve the state machine's tracing and its own log group"),
    (_RESOURCE + r"sagemaker:.*:(?P<kind>processing-job|training-job)/(?P<prefix>[a-z0-9-]+)-\*$",
     "the {kind}s this state machine starts, named {prefix}-STEP-HASH from the execution name at run time"),
    (_RESOURCE + _DATA_BUCKET + r"(?P<prefix>.+/)\*/event\.json$",
     "writes only each execution's trigger event under {prefix} of the mlship bucket (keyed by execution name)"),
]
