"""SageMaker endpoint for ``mlship serve`` with blue/green deployments and automatic rollback.

The model is the bundle the last ``mlship rollout`` deployed (SSM parameters resolved on every
deploy, see :func:`mlship.cdk.names.served_model`) unless the config pins one.
Model -> EndpointConfig (weighted production variants, optional shadow or serverless variant,
data capture) -> Endpoint whose ``DeploymentConfig`` shifts traffic CANARY / LINEAR /
ALL_AT_ONCE on every config change and rolls back when a rollback alarm fires: invocation 5XX
errors, model latency p99, model quality (``mlship/ModelQuality``, published by the monitor)
and ``mlship/PerformanceDegraded``.
"""

from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sm
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlship.cdk.assets import serving_image
from mlship.cdk.names import (
    CAPTURE_PREFIX,
    METRICS_NAMESPACE,
    Names,
    grant_serving_data,
    metrics_statement,
    release_outputs,
    served_model,
)
from mlship.cdk.props import ModelEndpointProps
from mlship.config import MlshipConfig, VariantConfig
from mlship.release.policy import CapacitySize


class ModelEndpoint(Construct):
    """The real-time SageMaker path."""

    def __init__(self, scope: Construct, cid: str, *, props: ModelEndpointProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        cfg, key_arn = props.settings, props.key_arn
        names = Names(cfg)
        ep = cfg.endpoint
        topic = sns.Topic.from_topic_arn(self, "AlarmTopic", f"arn:{cdk.Aws.PARTITION}:sns:{cdk.Aws.REGION}:"
                                         f"{cdk.Aws.ACCOUNT_ID}:{names.topic}")
        self.image, self.image_asset = serving_image(self, ep.image_uri)
        alarm_names = list(names.release.endpoint_alarms.values())
        self.role = self._execution_role(cfg, names, key_arn, alarm_names)
        self.served = served_model(self, names)
        self._models: dict[str | None, sm.CfnModel] = {}
        self.endpoint_config = self._endpoint_config(cfg, names, key_arn)
        self.alarms = self._alarms(cfg, names, ep.variants[0].name, topic)
        self.endpoint = self._endpoint(cfg, names, alarm_names)
        if ep.serverless is None and ep.autoscaling.enabled:
            for v in ep.variants:
                self._autoscale(cfg, names, v)

        cdk.CfnOutput(self, "EndpointName", value=names.endpoint)
        release_outputs(self, names, self.served, alarm_names)

    def _execution_role(self, cfg: MlshipConfig, names: Names, key_arn: str, alarm_names: list[str]) -> iam.Role:
        role = iam.Role(self, "ExecutionRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                        description="mlship serve container: read bundles, write data capture, pull image")
        grant_serving_data(role, cfg, names, key_arn, CAPTURE_PREFIX)
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                                                        "ecr:BatchCheckLayerAvailability"],
                                               resources=[_repository_arn(self.image, self.image_asset)]))
        log_arn = (f"arn:{cdk.Aws.PARTITION}:logs:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:log-group:"
                   f"/aws/sagemaker/Endpoints/{names.endpoint}")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                                               resources=[log_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[f"{log_arn}:*"]))
        role.add_to_policy(metrics_statement())
        role.add_to_policy(iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"],
                                               resources=[names.alarm_arn(a) for a in alarm_names]))
        return role

    def _model(self, cfg: MlshipConfig, names: Names, variant_uri: str | None) -> sm.CfnModel:
        """One model per distinct bundle: the deployed one (``variant_uri`` None) or a variant's pin."""
        if variant_uri not in self._models:
            served = self.served if variant_uri is None else served_model(self, names, variant_uri)
            env = {"MLSHIP_REGISTRY_BUCKET": names.bucket, "MLSHIP_MODEL_NAME": served.name or cfg.model.name,
                   "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE}
            if served.version is not None:
                env["MLSHIP_MODEL_VERSION"] = served.version
            if cfg.model.public_key_pem:
                env["MLSHIP_PUBLIC_KEY"] = cfg.model.public_key_pem
            # SageMaker extracts the ModelDataUrl tarball to /opt/ml/model, which `mlship serve` reads
            # when MODEL_URI is unset: the container shape `mlship rollout endpoint` creates too.
            container = sm.CfnModel.ContainerDefinitionProperty(
                image=self.image, environment=env, model_data_url=served.bundle_uri)
            self._models[variant_uri] = sm.CfnModel(self, f"Model{len(self._models)}",
                                                    execution_role_arn=self.role.role_arn,
                                                    primary_container=container)
        return self._models[variant_uri]

    def _endpoint_config(self, cfg: MlshipConfig, names: Names, key_arn: str) -> sm.CfnEndpointConfig:
        ep = cfg.endpoint
        serverless = ep.serverless
        if serverless is not None:
            variants = [sm.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=ep.variants[0].name,
                model_name=self._model(cfg, names, ep.variants[0].model_uri).attr_model_name,
                initial_variant_weight=1.0,
                serverless_config=sm.CfnEndpointConfig.ServerlessConfigProperty(
                    max_concurrency=serverless.max_concurrency, memory_size_in_mb=serverless.memory_size_mb,
                    provisioned_concurrency=serverless.provisioned_concurrency))]
        else:
            variants = [self._variant(v, self._model(cfg, names, v.model_uri)) for v in ep.variants]
        shadow = [self._variant(ep.shadow, self._model(cfg, names, ep.shadow.model_uri))] if ep.shadow else None
        capture = None
        if ep.data_capture.enabled:
            capture = sm.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True, initial_sampling_percentage=ep.data_capture.sampling_percentage,
                destination_s3_uri=f"s3://{names.bucket}/{CAPTURE_PREFIX}{cfg.model.name}",
                kms_key_id=key_arn,
                capture_options=[sm.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                                 sm.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output")],
                capture_content_type_header=sm.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    json_content_types=["application/json"], csv_content_types=["text/csv"]))
        return sm.CfnEndpointConfig(
            self, "EndpointConfig", production_variants=variants, shadow_production_variants=shadow,
            data_capture_config=capture, kms_key_id=None if serverless else key_arn)

    def _endpoint(self, cfg: MlshipConfig, names: Names, alarm_names: list[str]) -> sm.CfnEndpoint:
        ro = cfg.endpoint.rollout
        routing = sm.CfnEndpoint.TrafficRoutingConfigProperty(
            type=ro.strategy, wait_interval_in_seconds=ro.wait_interval_seconds,
            canary_size=_capacity(ro.canary) if ro.strategy == "CANARY" else None,
            linear_step_size=_capacity(ro.linear_step) if ro.strategy == "LINEAR" else None)
        endpoint = sm.CfnEndpoint(
            self, "Endpoint", endpoint_name=names.endpoint,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            deployment_config=sm.CfnEndpoint.DeploymentConfigProperty(
                blue_green_update_policy=sm.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                    traffic_routing_configuration=routing,
                    termination_wait_in_seconds=ro.termination_wait_seconds,
                    maximum_execution_timeout_in_seconds=ro.maximum_execution_timeout_seconds),
                auto_rollback_configuration=sm.CfnEndpoint.AutoRollbackConfigProperty(
                    alarms=[sm.CfnEndpoint.AlarmProperty(alarm_name=a) for a in alarm_names])))
        for alarm in self.alarms.values():
            endpoint.node.add_dependency(alarm)
        # the endpoint pulls the image and model with the role's policy: create it first
        endpoint.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        return endpoint

    def _variant(self, v: VariantConfig, model: sm.CfnModel) -> sm.CfnEndpointConfig.ProductionVariantProperty:
        return sm.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=v.name, model_name=model.attr_model_name, initial_variant_weight=v.weight,
            initial_instance_count=v.instance_count, instance_type=v.instance_type)

    def _alarms(self, cfg: MlshipConfig, names: Names, variant: str, topic: sns.ITopic) -> dict[str, cw.IAlarm]:
        a = cfg.endpoint.alarms
        alarm_name = names.release.endpoint_alarms
        period = cdk.Duration.seconds(a.period_seconds)
        dims = {"EndpointName": names.endpoint, "VariantName": variant}
        alarms: dict[str, cw.IAlarm] = {
            "endpoint-5xx": cw.Alarm(
                self, "Errors5xx", alarm_name=alarm_name["errors_5xx"],
                alarm_description="Invocation 5XX errors on the endpoint: rolls back a blue/green deployment",
                metric=cw.Metric(namespace="AWS/SageMaker", metric_name="Invocation5XXErrors",
                                 dimensions_map=dims, statistic="Sum", period=period),
                threshold=a.error_5xx_threshold, evaluation_periods=a.evaluation_periods,
                datapoints_to_alarm=min(2, a.evaluation_periods),
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            "endpoint-latency": cw.Alarm(
                self, "Latency", alarm_name=alarm_name["latency_p99"],
                alarm_description=f"ModelLatency p99 above {a.model_latency_p99_ms} ms",
                metric=cw.Metric(namespace="AWS/SageMaker", metric_name="ModelLatency",  # microseconds
                                 dimensions_map=dims, statistic="p99", period=period),
                threshold=a.model_latency_p99_ms * 1000, evaluation_periods=a.evaluation_periods,
                datapoints_to_alarm=min(2, a.evaluation_periods),
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            # Fed by the monitor Lambda (labelled window): quality below the floor rolls back.
            "model-quality": cw.Alarm(
                self, "ModelQuality", alarm_name=alarm_name["model_quality"],
                alarm_description=f"{a.model_quality_metric} of {cfg.model.name} below {a.model_quality_min}",
                metric=_insights(f"MIN({a.model_quality_metric})", cfg.model.name, "ModelQuality"),
                threshold=a.model_quality_min, evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            "performance-degraded": cw.Alarm(
                self, "PerformanceDegraded", alarm_name=alarm_name["performance_degraded"],
                alarm_description="The monitor flagged degraded model performance",
                metric=_insights("MAX(PerformanceDegraded)", cfg.model.name, "PerformanceDegraded"),
                threshold=1, evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
        }
        for alarm in alarms.values():
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms

    def _autoscale(self, cfg: MlshipConfig, names: Names, v: VariantConfig) -> None:
        sc = cfg.endpoint.autoscaling
        target = appscaling.ScalableTarget(
            self, f"Scaling{v.name}", service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{names.endpoint}/variant/{v.name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=max(sc.min_instances, 1), max_capacity=max(sc.max_instances, v.instance_count))
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "Invocations", target_value=sc.invocations_per_instance,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=cdk.Duration.seconds(sc.scale_in_cooldown_seconds),
            scale_out_cooldown=cdk.Duration.seconds(sc.scale_out_cooldown_seconds))


def _insights(select: str, model: str, label: str) -> cw.MathExpression:
    """A Metrics Insights query over every version of ``model`` (the monitor adds a Version dimension)."""
    return cw.MathExpression(
        expression=f"SELECT {select} FROM SCHEMA({METRICS_NAMESPACE}, Model, Version) WHERE Model = '{model}'",
        using_metrics={}, label=label, period=cdk.Duration.hours(1))


def _capacity(size: CapacitySize | None) -> sm.CfnEndpoint.CapacitySizeProperty | None:
    if size is None:
        return None
    return sm.CfnEndpoint.CapacitySizeProperty(type=size.type, value=size.value)


def _repository_arn(image: str, asset) -> str:
    """The ECR repository ARN an image URI lives in (asset images: the bootstrap repository)."""
    if asset is not None:
        return asset.repository.repository_arn
    match = re.match(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)", image)
    if not match:
        raise ValueError(f"cannot tell the ECR repository of image {image!r}")
    account, region, repo = match.groups()
    return f"arn:{cdk.Aws.PARTITION}:ecr:{region}:{account}:repository/{repo}"
