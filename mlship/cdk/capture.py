"""Inference capture delivery: the predict function's log group → Amazon Data Firehose → S3.

The handler writes one JSON line per captured request to stdout (``{"capture": "mlship/2", ...}``;
``mlship/1`` row lines for a request larger than one log event); Lambda ships stdout to the
function's log group after the fact, so answering makes no network call. A subscription filter
matching ``$.capture`` sends those lines to a Firehose stream whose
processors decompress the CloudWatch Logs payload, extract the messages, read ``model.name`` and
``model.version`` with JQ for dynamic partitioning and append a newline; Firehose buffers and
writes gzip'd JSON Lines under the records prefix, ``model=/version=/date=/hour=`` (the layout
:mod:`mlship.monitoring` reads). Records that cannot be partitioned land under ``capture-errors/``.

Delivery problems never reach a request: CloudWatch Logs retries the subscription, Firehose retries
S3 and reports in its own metrics; the alarms here watch them (delivery success, data freshness,
throttled records) and notify the alarm topic. Everything is encrypted with the foundation's key.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlship.cdk.names import CAPTURE_ERRORS_PREFIX, RECORDS_PREFIX, Names, log_statements, retention
from mlship.config import MlshipConfig
from mlship.runtime.records import CAPTURE_FORMAT, EXCHANGE_FORMAT

ERRORS_PREFIX = CAPTURE_ERRORS_PREFIX
FILTER_PATTERN = f'{{ ($.capture = "{EXCHANGE_FORMAT}") || ($.capture = "{CAPTURE_FORMAT}") }}'
PARTITION_QUERY = "{model: .model.name, version: .model.version}"
PARTITIONED_PREFIX = (f"{RECORDS_PREFIX}model=!{{partitionKeyFromQuery:model}}/"
                      "version=!{partitionKeyFromQuery:version}/date=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/")


def stream_name(function_name: str) -> str:
    """The delivery stream's name (Firehose names are at most 64 characters)."""
    return f"{function_name[:56]}-capture"


class CaptureDelivery(Construct):
    """The subscription filter, the delivery stream, their roles and the delivery alarms."""

    def __init__(self, scope: Construct, cid: str, *, cfg: MlshipConfig, names: Names, key_arn: str,
                 log_group: logs.ILogGroup, topic: sns.ITopic) -> None:
        super().__init__(scope, cid)
        self.name = stream_name(names.release.function_name)
        group_name = f"/aws/kinesisfirehose/{self.name}"  # a literal: the role's grant names it
        errors_group = logs.LogGroup(self, "DeliveryLogs", log_group_name=group_name,
                                     retention=retention(cfg.api.log_retention_days),
                                     removal_policy=cdk.RemovalPolicy.DESTROY)
        role = self._delivery_role(names, key_arn, group_name)
        self.stream = self._stream(cfg, names, key_arn, role, group_name)
        self.stream.node.add_dependency(role)
        self.stream.node.add_dependency(errors_group)
        # The ARN from the literal name, not GetAtt: moto's CloudFormation (the deploy rehearsal)
        # skips Firehose streams and fails any GetAtt on a skipped resource.
        self.stream_arn = (f"arn:{cdk.Aws.PARTITION}:firehose:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                           f"deliverystream/{self.name}")
        subscription_role = iam.Role(
            self, "SubscriptionRole", description="CloudWatch Logs: put the predict function's capture lines into "
            "its Firehose stream",
            assumed_by=iam.ServicePrincipal("logs.amazonaws.com", conditions={"StringLike": {
                "aws:SourceArn": f"arn:{cdk.Aws.PARTITION}:logs:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:*"}}))
        subscription_role.add_to_policy(iam.PolicyStatement(actions=["firehose:PutRecord", "firehose:PutRecordBatch"],
                                                            resources=[self.stream_arn]))
        self.subscription = logs.CfnSubscriptionFilter(
            self, "Subscription", log_group_name=log_group.log_group_name, filter_pattern=FILTER_PATTERN,
            destination_arn=self.stream_arn, role_arn=subscription_role.role_arn)
        self.subscription.node.add_dependency(subscription_role)
        self.subscription.node.add_dependency(self.stream)
        self.alarms = self._alarms(cfg, topic)

    def _delivery_role(self, names: Names, key_arn: str, errors_group: str) -> iam.Role:
        role = iam.Role(self, "DeliveryRole", assumed_by=iam.ServicePrincipal("firehose.amazonaws.com", conditions={
            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}),
            description="Firehose: write capture records under the records prefix of the data bucket")
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[names.bucket_arn(f"{RECORDS_PREFIX}*"), names.bucket_arn(f"{ERRORS_PREFIX}*")]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
            resources=[names.bucket_arn()]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{cdk.Aws.REGION}.amazonaws.com"}}))
        for stmt in log_statements(errors_group):
            role.add_to_policy(stmt)
        return role

    def _stream(self, cfg: MlshipConfig, names: Names, key_arn: str, role: iam.Role,
                errors_group: str) -> firehose.CfnDeliveryStream:
        capture = cfg.api.capture
        P = firehose.CfnDeliveryStream.ProcessorParameterProperty  # noqa: N806 - a short alias of a long name
        processors = [
            firehose.CfnDeliveryStream.ProcessorProperty(type="Decompression", parameters=[
                P(parameter_name="CompressionFormat", parameter_value="GZIP")]),
            firehose.CfnDeliveryStream.ProcessorProperty(type="CloudWatchLogProcessing", parameters=[
                P(parameter_name="DataMessageExtraction", parameter_value="true")]),
            firehose.CfnDeliveryStream.ProcessorProperty(type="MetadataExtraction", parameters=[
                P(parameter_name="MetadataExtractionQuery", parameter_value=PARTITION_QUERY),
                P(parameter_name="JsonParsingEngine", parameter_value="JQ-1.6")]),
            firehose.CfnDeliveryStream.ProcessorProperty(type="AppendDelimiterToRecord", parameters=[
                P(parameter_name="Delimiter", parameter_value="\\n")]),
        ]
        destination = firehose.CfnDeliveryStream.ExtendedS3DestinationConfigurationProperty(
            bucket_arn=names.bucket_arn(), role_arn=role.role_arn, prefix=PARTITIONED_PREFIX,
            error_output_prefix=f"{ERRORS_PREFIX}!{{firehose:error-output-type}}/date=!{{timestamp:yyyy-MM-dd}}/",
            compression_format="GZIP", file_extension=".jsonl.gz",
            buffering_hints=firehose.CfnDeliveryStream.BufferingHintsProperty(
                interval_in_seconds=capture.buffer_seconds, size_in_m_bs=capture.buffer_mb),
            encryption_configuration=firehose.CfnDeliveryStream.EncryptionConfigurationProperty(
                kms_encryption_config=firehose.CfnDeliveryStream.KMSEncryptionConfigProperty(
                    awskms_key_arn=key_arn)),
            dynamic_partitioning_configuration=firehose.CfnDeliveryStream.DynamicPartitioningConfigurationProperty(
                enabled=True, retry_options=firehose.CfnDeliveryStream.RetryOptionsProperty(duration_in_seconds=300)),
            processing_configuration=firehose.CfnDeliveryStream.ProcessingConfigurationProperty(
                enabled=True, processors=processors),
            cloud_watch_logging_options=firehose.CfnDeliveryStream.CloudWatchLoggingOptionsProperty(
                enabled=True, log_group_name=errors_group, log_stream_name="DestinationDelivery"))
        return firehose.CfnDeliveryStream(
            self, "Stream", delivery_stream_name=self.name, delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=firehose.CfnDeliveryStream
            .DeliveryStreamEncryptionConfigurationInputProperty(key_type="CUSTOMER_MANAGED_CMK", key_arn=key_arn),
            extended_s3_destination_configuration=destination)

    def _alarms(self, cfg: MlshipConfig, topic: sns.ITopic) -> list[cw.Alarm]:
        dims = {"DeliveryStreamName": self.name}
        period = cdk.Duration.minutes(5)

        def metric(name: str, statistic: str) -> cw.Metric:
            return cw.Metric(namespace="AWS/Firehose", metric_name=name, dimensions_map=dims, statistic=statistic,
                             period=period)

        alarms = [
            cw.Alarm(self, "DeliveryFailed", alarm_name=f"{self.name}-delivery-failed",
                     alarm_description="capture records are not reaching S3 (Firehose retries; then they go to "
                                       f"{ERRORS_PREFIX})",
                     metric=metric("DeliveryToS3.Success", "Minimum"), threshold=1, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            cw.Alarm(self, "DeliveryLate", alarm_name=f"{self.name}-delivery-late",
                     alarm_description="the oldest capture record in Firehose is older than its buffer + 10 min",
                     metric=metric("DeliveryToS3.DataFreshness", "Maximum"),
                     threshold=cfg.api.capture.buffer_seconds + 600, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
            cw.Alarm(self, "Throttled", alarm_name=f"{self.name}-throttled",
                     alarm_description="Firehose throttled capture records (CloudWatch Logs retries them)",
                     metric=metric("ThrottledRecords", "Sum"), threshold=0, evaluation_periods=1,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarms
