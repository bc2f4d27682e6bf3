"""Prediction API: the predict Lambda behind a ``live`` alias shifted by CodeDeploy.

The function serves the bundle the last ``mlship rollout`` deployed (``MODEL_URI`` from the SSM
parameters, resolved on every deploy) unless the config pins one. A change of the function's
code or settings publishes a new version; CodeDeploy moves the alias to it (canary, linear or
all at once) and rolls back automatically when the alias' error or latency alarm fires.
Clients reach the alias through a Function URL (IAM auth) or an API Gateway REST API (IAM auth,
throttling, access logs).

Inference capture (``api.capture``): by default the function writes one log line per captured
request and :class:`~mlship.cdk.capture.CaptureDelivery` delivers the lines to S3 through a
subscription filter and Firehose; ``mode: s3`` is the opt-in per-request PutObject (no Firehose).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlship.cdk import nag
from mlship.cdk.assets import lambda_code
from mlship.cdk.capture import CaptureDelivery
from mlship.cdk.names import (
    METRICS_NAMESPACE,
    RECORDS_PREFIX,
    Names,
    grant_serving_data,
    log_statements,
    metrics_statement,
    release_outputs,
    retention,
    served_model,
)
from mlship.cdk.props import PredictFunctionProps
from mlship.config import MlshipConfig
from mlship.release.policy import LambdaRollout


class PredictFunction(Construct):
    """The real-time Lambda path."""

    def __init__(self, scope: Construct, cid: str, *, props: PredictFunctionProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        cfg, key_arn = props.settings, props.key_arn
        names = Names(cfg)
        release = names.release
        topic = sns.Topic.from_topic_arn(self, "AlarmTopic", f"arn:{cdk.Aws.PARTITION}:sns:{cdk.Aws.REGION}:"
                                         f"{cdk.Aws.ACCOUNT_ID}:{names.topic}")
        self.served = served_model(self, names)
        self.function = self._function(cfg, names, self._role(cfg, names, key_arn))
        self.alias = lambda_.Alias(self, "Live", alias_name=release.function_alias,
                                   version=self.function.current_version)
        self.alarms = self._alarms(cfg, names, topic)
        self._deployment_group(cfg, names)
        capture = cfg.api.capture
        self.capture = None
        if capture.enabled and capture.mode == "log" and cfg.api.backend == "onnx":
            self.capture = CaptureDelivery(self, "Capture", cfg=cfg, names=names, key_arn=key_arn,
                                           log_group=self.log_group, topic=topic)

        if cfg.api.kind == "function_url":
            # No CfnOutput of the URL: moto's CloudFormation cannot resolve AWS::Lambda::Url attributes.
            # `aws lambda get-function-url-config --function-name <fn> --qualifier live` prints it.
            self.function_url = self.alias.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        else:
            self.rest_api = self._rest_api(cfg)
            cdk.CfnOutput(self, "PredictUrl", value=self.rest_api.url_for_path("/predict"))
        cdk.CfnOutput(self, "FunctionName", value=release.function_name)
        cdk.CfnOutput(self, "FunctionAlias", value=release.function_alias)
        cdk.CfnOutput(self, "CodeDeployApplication", value=release.codedeploy_application)
        cdk.CfnOutput(self, "CodeDeployDeploymentGroup", value=release.codedeploy_deployment_group)
        release_outputs(self, names, self.served, list(release.lambda_alarms.values()))

    def _role(self, cfg: MlshipConfig, names: Names, key_arn: str) -> iam.Role:
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="predict Lambda: read bundles, write inference records, metrics")
        for stmt in log_statements(names.log_group(names.release.function_name)):
            role.add_to_policy(stmt)
        writes_records = cfg.api.capture.enabled and cfg.api.capture.mode == "s3"  # log mode: Firehose writes them
        grant_serving_data(role, cfg, names, key_arn, RECORDS_PREFIX if writes_records else None)
        role.add_to_policy(metrics_statement())
        if cfg.endpoint.enabled:
            role.add_to_policy(iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                           f"endpoint/{names.endpoint}"]))
        return role

    def _function(self, cfg: MlshipConfig, names: Names, role: iam.Role) -> lambda_.Function:
        api, served = cfg.api, self.served
        fn_name = names.release.function_name
        env = {
            "MODEL_URI": served.bundle_uri, "MLSHIP_MODEL_NAME": cfg.model.name,
            "MLSHIP_REGISTRY_BUCKET": names.bucket, "RECORDS_BUCKET": names.bucket,
            "RECORDS_PREFIX": RECORDS_PREFIX.rstrip("/"), "PREDICT_BACKEND": api.backend,
            "MAX_BODY_BYTES": str(api.max_body_bytes), "POWERTOOLS_SERVICE_NAME": "mlship-predict",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE, **api.capture.environment(),
        }
        if served.version is not None:
            env["MLSHIP_MODEL_VERSION"] = served.version
        if cfg.endpoint.enabled:
            env["SAGEMAKER_ENDPOINT_NAME"] = names.endpoint
        if cfg.model.public_key_pem:
            env["MLSHIP_PUBLIC_KEY"] = cfg.model.public_key_pem
        env.update(api.environment)
        self.log_group = log_group = logs.LogGroup(self, "Logs", log_group_name=names.log_group(fn_name),
                                  retention=retention(api.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        asset = lambda_code("predict", cfg.assets.lambda_code)
        function = lambda_.Function(
            self, "Predict", function_name=fn_name, runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64, handler=asset.handler, code=asset.code, role=role,
            memory_size=api.memory_mb, timeout=cdk.Duration.seconds(api.timeout_seconds), environment=env,
            log_group=log_group, tracing=lambda_.Tracing.ACTIVE,
            reserved_concurrent_executions=api.reserved_concurrency,
            description=f"mlship predict ({asset.source} asset)")
        nag.acknowledge(function, "AwsSolutions-L1",
                        "pinned to python3.12: the asset's wheels and .pyc are built for the 3.12 runtime "
                        "(mlship.deploy.lambda_asset --python-version 3.12)")
        return function

    def _deployment_group(self, cfg: MlshipConfig, names: Names) -> codedeploy.LambdaDeploymentGroup:
        """CodeDeploy application and group with the names the config computes (``mlship rollout lambda``)."""
        release = names.release
        application = codedeploy.LambdaApplication(self, "Application",
                                                   application_name=release.codedeploy_application)
        group = codedeploy.LambdaDeploymentGroup(
            self, "Deployment", application=application, alias=self.alias,
            deployment_config=_deployment_config(self, cfg.api.rollout), alarms=list(self.alarms),
            deployment_group_name=release.codedeploy_deployment_group,
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True,
                                                        deployment_in_alarm=True))
        nag.acknowledge(group, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                        "service-role/AWSCodeDeployRoleForLambdaLimited]",
                        "CodeDeploy's AWSCodeDeployRoleForLambdaLimited is the AWS-maintained least-privilege "
                        "policy for shifting Lambda aliases")
        return group

    def _alarms(self, cfg: MlshipConfig, names: Names, topic: sns.ITopic) -> list[cw.Alarm]:
        a = cfg.endpoint.alarms
        release = names.release
        period = cdk.Duration.seconds(a.period_seconds)
        dims = {"FunctionName": release.function_name,
                "Resource": f"{release.function_name}:{release.function_alias}"}
        errors = cw.Alarm(
            self, "Errors", alarm_name=release.lambda_alarms["errors"],
            alarm_description=f"Errors of the {release.function_alias} alias: stops and rolls back a CodeDeploy shift",
            metric=cw.Metric(namespace="AWS/Lambda", metric_name="Errors", dimensions_map=dims,
                             statistic="Sum", period=period),
            threshold=a.lambda_error_threshold, evaluation_periods=a.evaluation_periods,
            datapoints_to_alarm=min(2, a.evaluation_periods),
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
        latency = cw.Alarm(
            self, "Duration", alarm_name=release.lambda_alarms["duration_p99"],
            alarm_description=f"p99 duration of the {release.function_alias} alias above {a.lambda_p99_ms} ms",
            metric=cw.Metric(namespace="AWS/Lambda", metric_name="Duration", dimensions_map=dims,
                             statistic="p99", period=period),
            threshold=a.lambda_p99_ms, evaluation_periods=a.evaluation_periods,
            datapoints_to_alarm=min(2, a.evaluation_periods),
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING)
        for alarm in (errors, latency):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return [errors, latency]

    def _rest_api(self, cfg: MlshipConfig) -> apigw.RestApi:
        api = cfg.api
        access = logs.LogGroup(self, "AccessLogs", retention=retention(api.log_retention_days),
                               removal_policy=cdk.RemovalPolicy.DESTROY)
        rest = apigw.RestApi(
            self, "Api", rest_api_name=f"{cfg.name}-predict", cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.DESTROY,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            deploy_options=apigw.StageOptions(
                stage_name="v1", throttling_rate_limit=api.throttle_rate_per_second,
                throttling_burst_limit=api.throttle_burst, tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR, data_trace_enabled=False,
                access_log_destination=apigw.LogGroupLogDestination(access),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True, http_method=True, ip=True, protocol=True, request_time=True,
                    resource_path=True, response_length=True, status=True, user=True)))
        validator = rest.add_request_validator("Body", validate_request_body=True, validate_request_parameters=True)
        model = rest.add_model("PredictRequest", content_type="application/json", schema=apigw.JsonSchema(
            schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT))
        rest.root.add_resource("predict").add_method(
            "POST", apigw.LambdaIntegration(self.alias), authorization_type=apigw.AuthorizationType.IAM,
            request_validator=validator, request_models={"application/json": model})
        nag.acknowledge(rest, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
                        "API Gateway's account-level CloudWatch role uses the AWS-managed "
                        "AmazonAPIGatewayPushToCloudWatchLogs policy, the documented way to enable execution logs")
        nag.acknowledge(rest, "AwsSolutions-COG4",
                        "callers authenticate with IAM (SigV4), not Cognito: clients are AWS services and roles")
        nag.acknowledge(rest, "AwsSolutions-APIG3",
                        "IAM-authorized regional API with stage throttling; attach a WAF web ACL per account "
                        "policy (not created here to avoid its fixed monthly cost)")
        return rest


def _deployment_config(scope: Construct, rollout: LambdaRollout) -> codedeploy.ILambdaDeploymentConfig:
    if rollout.strategy == "ALL_AT_ONCE":
        return codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE
    interval = cdk.Duration.minutes(rollout.interval_minutes)
    if rollout.strategy == "CANARY":
        routing = codedeploy.TrafficRouting.time_based_canary(interval=interval, percentage=rollout.percentage)
    else:
        routing = codedeploy.TrafficRouting.time_based_linear(interval=interval, percentage=rollout.percentage)
    return codedeploy.LambdaDeploymentConfig(scope, "DeploymentConfig", traffic_routing=routing)
