"""Names shared by the stacks (deterministic, so stacks reference each other without exports)."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs

from infra.config import LOG_RETENTION_DAYS, MlshipConfig

RECORDS_PREFIX = "inference-records/"
LABELS_PREFIX = "labels/"
REPORTS_PREFIX = "monitoring/"
BUNDLES_PREFIX = "bundles/"
CAPTURE_PREFIX = "data-capture/"
BATCH_LOGS_PREFIX = "batch/logs/"
METRICS_NAMESPACE = "mlship"


@dataclass(frozen=True)
class Names:
    """Physical names of the resources one environment creates."""

    cfg: MlshipConfig

    @property
    def bucket(self) -> str:
        """The data bucket: bundles/registry, inference records, batch I/O, reports."""
        return f"{self.cfg.name}-data-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}"

    @property
    def log_bucket(self) -> str:
        return f"{self.cfg.name}-access-logs-{cdk.Aws.ACCOUNT_ID}-{cdk.Aws.REGION}"

    def bucket_arn(self, key_pattern: str | None = None) -> str:
        arn = f"arn:{cdk.Aws.PARTITION}:s3:::{self.bucket}"
        return arn if key_pattern is None else f"{arn}/{key_pattern}"

    @property
    def endpoint(self) -> str:
        return f"{self.cfg.name}-{self.cfg.model.name}"[:63]

    @property
    def topic(self) -> str:
        return f"{self.cfg.name}-alarms"

    def alarm(self, what: str) -> str:
        return f"{self.cfg.name}-{what}"

    def alarm_arn(self, what: str) -> str:
        return f"arn:{cdk.Aws.PARTITION}:cloudwatch:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:alarm:{self.alarm(what)}"

    def log_group(self, function: str) -> str:
        return f"/aws/lambda/{self.cfg.name}-{function}"

    @property
    def thing_group(self) -> str:
        return f"{self.cfg.name}-devices"

    @property
    def job_template(self) -> str:
        return f"{self.cfg.name}-model-rollout"


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
