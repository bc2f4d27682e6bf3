"""Monitoring: the monitor Lambda on an EventBridge schedule, its alarms and event routing.

The monitor reads inference records (and late labels), publishes ``mlship`` metrics
(DriftShare, FeatureDrift, ModelQuality, PerformanceDegraded) that the endpoint's rollback
alarms read, writes reports and emits ``mlship.monitoring`` events, routed here to the alarm topic.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlship.cdk import nag
from mlship.cdk.assets import lambda_code
from mlship.cdk.names import (
    LABELS_PREFIX,
    METRICS_NAMESPACE,
    RECORDS_PREFIX,
    REPORTS_PREFIX,
    Names,
    kms_statement,
    log_statements,
    metrics_statement,
    monitored_uri,
    pinned_read_statement,
    retention,
)
from mlship.cdk.props import ModelMonitorProps
from mlship.config import MlshipConfig


class ModelMonitor(Construct):
    """Drift, quality and fairness monitoring on a schedule."""

    def __init__(self, scope: Construct, cid: str, *, props: ModelMonitorProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        cfg, key_arn = props.settings, props.key_arn
        names = Names(cfg)
        mon = cfg.monitoring
        topic = sns.Topic.from_topic_arn(self, "AlarmTopic", f"arn:{cdk.Aws.PARTITION}:sns:{cdk.Aws.REGION}:"
                                         f"{cdk.Aws.ACCOUNT_ID}:{names.topic}")
        self.function = self._function(cfg, names, self._role(cfg, names, key_arn))
        self.schedule = events.Rule(
            self, "Schedule", rule_name=f"{cfg.name}-monitor-schedule",
            description=f"run the mlship monitor ({mon.schedule})",
            schedule=events.Schedule.expression(mon.schedule),
            targets=[targets.LambdaFunction(self.function, retry_attempts=2,
                                            event=events.RuleTargetInput.from_object(
                                                {"source": "mlship.schedule", "window_hours": mon.window_hours}))])
        self.events_rule = events.Rule(
            self, "MonitorEvents", rule_name=f"{cfg.name}-monitor-events",
            description="drift / performance / attribution events from the monitor to the alarm topic",
            event_pattern=events.EventPattern(source=["mlship.monitoring"],
                                              detail_type=["DriftDetected", "PerformanceDegraded", "AttributionDrift"]),
            targets=[targets.SnsTopic(topic)])
        self.alarms = self._alarms(cfg, names, topic)
        cdk.CfnOutput(self, "FunctionName", value=names.release.monitor_function_name)

    def _role(self, cfg: MlshipConfig, names: Names, key_arn: str) -> iam.Role:
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="monitor Lambda: read records and labels, write reports, metrics, events")
        for stmt in log_statements(names.log_group(names.release.monitor_function_name)):
            role.add_to_policy(stmt)
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[names.bucket_arn("*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[names.bucket_arn()]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"],
                                               resources=[names.bucket_arn(f"{REPORTS_PREFIX}*")]))
        role.add_to_policy(kms_statement(key_arn))
        pinned = pinned_read_statement(cfg)
        if pinned is not None:  # a pinned tarball may live outside the mlship bucket
            role.add_to_policy(pinned)
        role.add_to_policy(metrics_statement())
        role.add_to_policy(iam.PolicyStatement(
            actions=["events:PutEvents"],
            resources=[f"arn:{cdk.Aws.PARTITION}:events:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:event-bus/default"]))
        spark = cfg.monitoring.spark
        if spark is not None:  # large windows: start job runs on this one application, with this one role
            role.add_to_policy(iam.PolicyStatement(
                actions=["emr-serverless:StartJobRun"],
                resources=[f"arn:{cdk.Aws.PARTITION}:emr-serverless:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                           f"/applications/{spark.application_id}"]))
            role.add_to_policy(iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[spark.job_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "emr-serverless.amazonaws.com"}}))
        return role

    def _function(self, cfg: MlshipConfig, names: Names, role: iam.Role) -> lambda_.Function:
        mon = cfg.monitoring
        log_group = logs.LogGroup(self, "Logs", log_group_name=names.log_group(names.release.monitor_function_name),
                                  retention=retention(mon.log_retention_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        env = {
            "MODEL_URI": monitored_uri(names), "MLSHIP_REGISTRY_BUCKET": names.bucket, "RECORDS_BUCKET": names.bucket,
            "RECORDS_PREFIX": RECORDS_PREFIX.rstrip("/"), "LABELS_PREFIX": LABELS_PREFIX.rstrip("/"),
            "REPORTS_BUCKET": names.bucket, "REPORTS_PREFIX": REPORTS_PREFIX.rstrip("/"),
            "EVENT_BUS_NAME": "default", "WINDOW_HOURS": str(mon.window_hours),
            "POWERTOOLS_SERVICE_NAME": "mlship-monitor", "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        }
        if mon.sensitive_attribute:
            env["SENSITIVE_ATTRIBUTE"] = mon.sensitive_attribute
        if mon.spark is not None:
            env.update({"SPARK_APPLICATION_ID": mon.spark.application_id, "SPARK_JOB_ROLE_ARN": mon.spark.job_role_arn,
                        "SPARK_ENTRY_POINT": mon.spark.entry_point})
            if mon.spark.submit_parameters:
                env["SPARK_SUBMIT_PARAMETERS"] = mon.spark.submit_parameters
            if mon.spark.above_bytes is not None:
                env["SPARK_ABOVE_BYTES"] = str(mon.spark.above_bytes)
        if cfg.model.public_key_pem:
            env["MLSHIP_PUBLIC_KEY"] = cfg.model.public_key_pem
        env.update(mon.environment)
        asset = lambda_code("monitor", cfg.assets.lambda_code)
        function = lambda_.Function(
            self, "Monitor", function_name=names.release.monitor_function_name, runtime=lambda_.Runtime.PYTHON_3_12,
            handler=asset.handler, code=asset.code, role=role, memory_size=mon.memory_mb,
            timeout=cdk.Duration.seconds(mon.timeout_seconds), environment=env, log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE, reserved_concurrent_executions=1,  # one run per window
            description=f"mlship monitor ({asset.source} asset)")
        nag.acknowledge(function, "AwsSolutions-L1",
                        "pinned to python3.12: the asset's wheels and .pyc are built for the 3.12 runtime "
                        "(mlship.deploy.lambda_asset --python-version 3.12)")
        return function

    def _alarms(self, cfg: MlshipConfig, names: Names, topic: sns.ITopic) -> list[cw.Alarm]:
        alarms = [
            cw.Alarm(self, "MonitorErrors", alarm_name=names.alarm("monitor-errors"),
                     alarm_description="the monitor Lambda failed",
                     metric=self.function.metric_errors(period=cdk.Duration.hours(1), statistic="Sum"),
                     threshold=1, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            cw.Alarm(self, "Drift", alarm_name=names.alarm("drift"),
                     alarm_description=f"share of drifted features of {cfg.model.name} at or above 0.3",
                     metric=cw.MathExpression(
                         expression=f"SELECT MAX(DriftShare) FROM SCHEMA({METRICS_NAMESPACE}, Model, Version) "
                                    f"WHERE Model = '{cfg.model.name}'",
                         using_metrics={}, label="DriftShare", period=cdk.Duration.hours(1)),
                     threshold=0.3, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms
