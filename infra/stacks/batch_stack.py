"""Batch: an EMR Serverless Spark application and a Scheduler schedule that starts job runs.

The job runs ``batch/score.py --model URI --input URI --output URI --run-id ID --format F``
(shipped as an asset) with the Python dependencies archive built by ``mlship batch submit``
(``batch.dependencies_archive``, shipped as an asset when it exists at synth time).
"""

from __future__ import annotations

import json
import sys

import aws_cdk as cdk
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from infra.assets import ROOT
from infra.config import MlshipConfig
from infra.stacks.common import BATCH_LOGS_PREFIX, Names, kms_statement


class BatchStack(cdk.Stack):
    """The scheduled Spark batch-scoring path."""

    def __init__(self, scope: Construct, cid: str, *, cfg: MlshipConfig, key_arn: str, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        names = Names(cfg)
        b = cfg.batch
        self.application = emr.CfnApplication(
            self, "Spark", name=f"{cfg.name}-batch", release_label=b.release_label, type="SPARK",
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(
                cpu=f"{b.max_vcpu} vCPU", memory=f"{b.max_memory_gb} GB"),
            auto_start_configuration=emr.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=b.idle_timeout_minutes))
        # Ref (the application id) rather than GetAtt Arn keeps the template deployable on moto.
        app_arn = (f"arn:{cdk.Aws.PARTITION}:emr-serverless:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                   f"/applications/{self.application.ref}")

        script = s3_assets.Asset(self, "Script", path=str(ROOT / "batch" / "score.py"))
        archive_path = ROOT / b.dependencies_archive
        archive = s3_assets.Asset(self, "Dependencies", path=str(archive_path)) if archive_path.is_file() else None
        if archive is None:
            print(f"note: {b.dependencies_archive} not found; the batch job runs without a dependencies "
                  "archive (build it with `mlship batch submit`, then synthesize again)", file=sys.stderr)

        self.job_role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
                                 description="EMR Serverless job: read bundles and input, write output and logs")
        self.job_role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[names.bucket_arn("*")]))
        self.job_role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[names.bucket_arn()]))
        self.job_role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:DeleteObject"],
            resources=[names.bucket_arn(f"{b.output_prefix}*"), names.bucket_arn(f"{BATCH_LOGS_PREFIX}*")]))
        self.job_role.add_to_policy(kms_statement(key_arn))
        for asset in filter(None, (script, archive)):
            self.job_role.add_to_policy(iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]))

        submit = ["--conf spark.executor.cores=1", "--conf spark.sql.execution.arrow.pyspark.enabled=true"]
        if archive is not None:
            submit += [f"--conf spark.archives={archive.s3_object_url}#environment",
                       "--conf spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
                       "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"]
        job = {
            "ApplicationId": self.application.ref,
            "ExecutionRoleArn": self.job_role.role_arn,
            "ClientToken": "<aws.scheduler.execution-id>",
            "Name": f"{cfg.name}-scheduled-scoring",
            "JobDriver": {"SparkSubmit": {
                "EntryPoint": script.s3_object_url,
                "EntryPointArguments": [
                    "--model", cfg.model.uri,
                    "--input", f"s3://{names.bucket}/{b.input_prefix}",
                    "--output", f"s3://{names.bucket}/{b.output_prefix}<aws.scheduler.execution-id>/",
                    "--run-id", "<aws.scheduler.execution-id>",
                    "--format", b.format],
                "SparkSubmitParameters": " ".join(submit)}},
            "ConfigurationOverrides": {"MonitoringConfiguration": {"S3MonitoringConfiguration": {
                "LogUri": f"s3://{names.bucket}/{BATCH_LOGS_PREFIX}"}}},
        }
        self.scheduler_role = iam.Role(self, "SchedulerRole",
                                       assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
                                       description="EventBridge Scheduler: start the batch job run")
        self.scheduler_role.add_to_policy(iam.PolicyStatement(actions=["emr-serverless:StartJobRun"],
                                                              resources=[app_arn]))
        self.scheduler_role.add_to_policy(iam.PolicyStatement(actions=["iam:PassRole"],
                                                              resources=[self.job_role.role_arn]))
        self.schedule = scheduler.CfnSchedule(
            self, "Schedule", name=f"{cfg.name}-batch-scoring", state="ENABLED",
            description="start the mlship batch-scoring job run",
            schedule_expression=b.schedule, schedule_expression_timezone=b.schedule_timezone,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=f"arn:{cdk.Aws.PARTITION}:scheduler:::aws-sdk:emrserverless:startJobRun",
                role_arn=self.scheduler_role.role_arn, input=self.to_json_string(job),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2,
                                                                       maximum_event_age_in_seconds=3600)))
        cdk.CfnOutput(self, "ApplicationId", value=self.application.ref)
        cdk.CfnOutput(self, "JobSpec", value=json.dumps({"entry_point": "batch/score.py",
                                                         "archive": b.dependencies_archive}))
