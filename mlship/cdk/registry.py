"""ModelRegistry: the KMS key, the data bucket (+ its access-log bucket) and the alarm topic.

The data bucket holds the registry (bundles, aliases), inference records and labels, batch I/O
and reports; every other mlship construct takes the registry as its ``registry`` prop.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from mlship.cdk import nag
from mlship.cdk.names import (
    BATCH_LOGS_PREFIX,
    CAPTURE_ERRORS_PREFIX,
    CAPTURE_PREFIX,
    LABELS_PREFIX,
    RECORDS_PREFIX,
    REPORTS_PREFIX,
    Names,
    grant_deployed_model_read,
    reads_deployed_parameters,
)
from mlship.cdk.props import ModelRegistryProps
from mlship.config import MlshipConfig


class ModelRegistry(Construct):
    """Storage and alerting every other mlship construct uses (a :class:`~mlship.cdk.props.RegistryRef`)."""

    def __init__(self, scope: Construct, cid: str, *, props: ModelRegistryProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        self.settings = cfg = props.settings
        names = Names(cfg)
        st = cfg.storage
        removal = cdk.RemovalPolicy.DESTROY if st.destroy_on_delete else cdk.RemovalPolicy.RETAIN

        self.key = kms.Key(self, "Key", alias=f"alias/{cfg.name}", enable_key_rotation=True,
                           description=f"mlship {cfg.env}: data bucket, alarm topic, SageMaker volumes",
                           removal_policy=removal)
        # CloudWatch alarms and EventBridge publish to the encrypted topic.
        self.key.add_to_resource_policy(iam.PolicyStatement(
            actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=["*"],
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                        iam.ServicePrincipal("events.amazonaws.com")]))

        self.log_bucket = s3.Bucket(
            self, "AccessLogs", bucket_name=names.log_bucket, encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=True,
            removal_policy=removal,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs",
                                              expiration=cdk.Duration.days(st.access_log_retention_days),
                                              noncurrent_version_expiration=cdk.Duration.days(7))])
        nag.acknowledge(self.log_bucket, "AwsSolutions-S1",
                        "this is the server-access-log target bucket; logging it to itself would loop")

        rules = _lifecycle_rules(cfg)
        self.bucket = s3.Bucket(
            self, "Data", bucket_name=names.bucket, encryption=s3.BucketEncryption.KMS, encryption_key=self.key,
            bucket_key_enabled=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            versioned=True, server_access_logs_bucket=self.log_bucket, server_access_logs_prefix="data/",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED, lifecycle_rules=rules,
            removal_policy=removal)

        self.topic = sns.Topic(self, "Alarms", topic_name=names.topic, master_key=self.key, enforce_ssl=True,
                               display_name=f"mlship {cfg.env} alarms")
        if cfg.monitoring.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(cfg.monitoring.alarm_email))

        if reads_deployed_parameters(cfg):  # the Endpoint and Api stacks resolve them at deploy time
            grant_deployed_model_read(self, names)

        cdk.CfnOutput(self, "BucketName", value=self.bucket.bucket_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.topic.topic_arn)


    @property
    def key_arn(self) -> str:
        """The data key's ARN (a token: other stacks that use it import it)."""
        return self.key.key_arn


def _lifecycle_rules(cfg: MlshipConfig) -> list[s3.LifecycleRule]:
    """The data bucket's expirations per prefix (records, labels, capture, reports, batch) and cleanup."""
    st = cfg.storage
    ia = cdk.Duration.days(st.infrequent_access_after_days)
    days = cdk.Duration.days
    return [
        s3.LifecycleRule(id="records", prefix=RECORDS_PREFIX, expiration=days(st.records_retention_days),
                         transitions=_ia(ia, st.records_retention_days)),
        s3.LifecycleRule(id="labels", prefix=LABELS_PREFIX, expiration=days(st.records_retention_days)),
        s3.LifecycleRule(id="capture", prefix=CAPTURE_PREFIX, expiration=days(st.records_retention_days),
                         transitions=_ia(ia, st.records_retention_days)),
        s3.LifecycleRule(id="capture-errors", prefix=CAPTURE_ERRORS_PREFIX,
                         expiration=days(st.records_retention_days)),
        s3.LifecycleRule(id="reports", prefix=REPORTS_PREFIX, expiration=days(st.reports_retention_days)),
        s3.LifecycleRule(id="batch-output", prefix=cfg.batch.output_prefix,
                         expiration=days(st.batch_output_retention_days)),
        s3.LifecycleRule(id="batch-logs", prefix=BATCH_LOGS_PREFIX,
                         expiration=days(st.batch_output_retention_days)),
        s3.LifecycleRule(id="noncurrent-and-uploads",
                         noncurrent_version_expiration=days(st.noncurrent_version_days),
                         abort_incomplete_multipart_upload_after=cdk.Duration.days(7)),
    ]


def _ia(after: cdk.Duration, expire_days: int) -> list[s3.Transition] | None:
    if after.to_days() >= expire_days:
        return None
    return [s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=after)]
