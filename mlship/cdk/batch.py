"""Batch: an EMR Serverless Spark application and a Scheduler schedule that starts job runs.

Each tick runs ``batch/score.py --logical-time <scheduled time>`` (an asset): one logical date's
partition ``input_prefix/date=D/`` scored as run ``D`` (:mod:`mlship.batch.schedule`), with the
mlship + batch sources zip (``--py-files``, built at synth time by ``batch.emr.build_code_zip``)
and the worker-wheels archive (``batch.dependencies_archive``: an s3:// URI or a local ``.tar.gz``,
or ``batch.build_dependencies=true``), with the same Spark settings as ``mlship batch submit``.
A scheduled job without that archive is refused at synthesis (``batch.scheduled=false`` keeps the
application and the job role without a schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_emrserverless as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from mlship.cdk.assets import batch_code, batch_dependencies, batch_script
from mlship.cdk.names import BATCH_LOGS_PREFIX, Names, kms_statement, monitored_uri, pinned_read_statement
from mlship.cdk.props import BatchScoringProps
from mlship.config import ConfigError, MlshipConfig
from mlship.resources import output_root

NO_ENVIRONMENT = ("batch.dependencies_archive: a scheduled batch job needs its workers' Python environment "
                  "(onnxruntime, numpy, pandas, pyarrow wheels): set batch.dependencies_archive (an s3:// URI or "
                  "a local .tar.gz built by mlship.batch.emr.build_deps_archive), or batch.build_dependencies=true "
                  "(built at synthesis with pip), or batch.scheduled=false")


class BatchScoring(Construct):
    """The scheduled Spark batch-scoring path."""

    def __init__(self, scope: Construct, cid: str, *, props: BatchScoringProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        cfg, key_arn = props.settings, props.key_arn
        names = Names(cfg)
        b = cfg.batch
        self.application = emr.CfnApplication(
            self, "Spark", name=f"{cfg.name}-batch", release_label=b.release_label, type="SPARK",
            maximum_capacity=emr.CfnApplication.MaximumAllowedResourcesProperty(
                cpu=f"{b.max_vcpu} vCPU", memory=f"{b.max_memory_gb} GB"),
            auto_start_configuration=emr.CfnApplication.AutoStartConfigurationProperty(enabled=True),
            auto_stop_configuration=emr.CfnApplication.AutoStopConfigurationProperty(
                enabled=True, idle_timeout_minutes=b.idle_timeout_minutes))
        script = s3_assets.Asset(self, "Script", path=str(batch_script()))
        build_dir = output_root() / "build" / "batch"
        code = s3_assets.Asset(self, "Code", path=str(batch_code(build_dir)))
        if b.scheduled and not (b.dependencies_archive or b.build_dependencies):
            raise ConfigError(cfg.env, [NO_ENVIRONMENT])
        try:
            deps = batch_dependencies(b.dependencies_archive, b.build_dependencies, build_dir)
        except FileNotFoundError as exc:
            raise ConfigError(cfg.env, [str(exc)]) from None
        deps_asset = s3_assets.Asset(self, "Dependencies", path=str(deps)) if isinstance(deps, Path) else None
        self.job_role = self._job_role(cfg, names, key_arn, [a for a in (script, code, deps_asset) if a], deps)
        deps_url = deps_asset.s3_object_url if deps_asset else deps
        job = self._job(cfg, names, script, code, deps_url if isinstance(deps_url, str) else None)
        self.schedule = self._schedule(cfg, job) if b.scheduled else None
        cdk.CfnOutput(self, "ApplicationId", value=self.application.ref)
        cdk.CfnOutput(self, "JobRoleArn", value=self.job_role.role_arn)

    def _job_role(self, cfg: MlshipConfig, names: Names, key_arn: str, assets: list[s3_assets.Asset],
                  deps: Path | str | None) -> iam.Role:
        b = cfg.batch
        role = iam.Role(self, "JobRole", assumed_by=iam.ServicePrincipal("emr-serverless.amazonaws.com"),
                        description="EMR Serverless job: read bundles and input, write output and logs")
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[names.bucket_arn("*")]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[names.bucket_arn()]))
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:PutObject", "s3:DeleteObject"],
            resources=[names.bucket_arn(f"{b.output_prefix}*"), names.bucket_arn(f"{BATCH_LOGS_PREFIX}*")]))
        role.add_to_policy(kms_statement(key_arn))
        pinned = pinned_read_statement(cfg)
        if pinned is not None:  # a pinned tarball may live outside the mlship bucket
            role.add_to_policy(pinned)
        for asset in assets:
            role.add_to_policy(iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)]))
        if isinstance(deps, str):  # an archive already in S3
            bucket, _, key = deps.removeprefix("s3://").partition("/")
            role.add_to_policy(iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"arn:{cdk.Aws.PARTITION}:s3:::{bucket}/{key}"]))
        return role

    def _job(self, cfg: MlshipConfig, names: Names, script: s3_assets.Asset, code: s3_assets.Asset,
             deps_url: str | None) -> dict:
        return start_job_run_request(cfg, application_id=self.application.ref, role_arn=self.job_role.role_arn,
                                     model_uri=monitored_uri(names), bucket=names.bucket,
                                     script_url=script.s3_object_url, code_url=code.s3_object_url, deps_url=deps_url)

    def _schedule(self, cfg: MlshipConfig, job: dict) -> scheduler.CfnSchedule:
        b = cfg.batch
        # Ref (the application id) rather than GetAtt Arn keeps the template deployable on moto.
        app_arn = (f"arn:{cdk.Aws.PARTITION}:emr-serverless:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:"
                   f"/applications/{self.application.ref}")
        self.scheduler_role = iam.Role(self, "SchedulerRole",
                                       assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
                                       description="EventBridge Scheduler: start the batch job run")
        self.scheduler_role.add_to_policy(iam.PolicyStatement(actions=["emr-serverless:StartJobRun"],
                                                              resources=[app_arn]))
        self.scheduler_role.add_to_policy(iam.PolicyStatement(actions=["iam:PassRole"],
                                                              resources=[self.job_role.role_arn]))
        return scheduler.CfnSchedule(
            self, "Schedule", name=f"{cfg.name}-batch-scoring", state="ENABLED",
            description="start the mlship batch-scoring job run",
            schedule_expression=b.schedule, schedule_expression_timezone=b.schedule_timezone,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=f"arn:{cdk.Aws.PARTITION}:scheduler:::aws-sdk:emrserverless:startJobRun",
                role_arn=self.scheduler_role.role_arn, input=cdk.Stack.of(self).to_json_string(job),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2,
                                                                       maximum_event_age_in_seconds=3600)))


def start_job_run_request(cfg: MlshipConfig, *, application_id: str, role_arn: str, model_uri: str, bucket: str,
                          script_url: str, code_url: str, deps_url: str | None) -> dict[str, Any]:
    """The schedule's StartJobRun request (the same Spark settings as ``mlship batch submit``).

    Each tick scores one logical date: ``--logical-time <aws.scheduler.scheduled-time>`` makes
    ``batch/score.py`` read ``input_prefix/date=D/`` and commit run ``D``, so a retried tick
    replaces its own output; ``ClientToken`` (the execution id) makes a retried StartJobRun one run.
    """
    from mlship.batch.emr import spark_submit_parameters

    b = cfg.batch
    return {
        "ApplicationId": application_id,
        "ExecutionRoleArn": role_arn,
        "ClientToken": "<aws.scheduler.execution-id>",
        "Name": f"{cfg.name}-scheduled-scoring",
        "JobDriver": {"SparkSubmit": {
            "EntryPoint": script_url,
            "EntryPointArguments": [
                "--model", model_uri, "--input", f"s3://{bucket}/{b.input_prefix}",
                "--output", f"s3://{bucket}/{b.output_prefix}",
                "--logical-time", "<aws.scheduler.scheduled-time>", "--timezone", b.schedule_timezone,
                "--date-offset-days", str(b.date_offset_days),
                "--format", b.format, "--s3-mode", "direct", "--no-progress"],
            "SparkSubmitParameters": spark_submit_parameters(code_url, deps_url)}},
        "ConfigurationOverrides": {"MonitoringConfiguration": {"S3MonitoringConfiguration": {
            "LogUri": f"s3://{bucket}/{BATCH_LOGS_PREFIX}"}}},
    }
