"""Edge: the device thing group, the model-rollout job template and least-privilege device access.

Devices (members of ``<name>-devices``) connect with their certificate, may only use their
own client id and job topics, and fetch packages from ``edge-packages/`` through the IoT
credentials provider (role alias) or the job's pre-signed URLs.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from constructs import Construct

from mlship.cdk.names import Names
from mlship.cdk.props import EdgeFleetProps


class EdgeFleet(Construct):
    """The edge-device path."""

    def __init__(self, scope: Construct, cid: str, *, props: EdgeFleetProps) -> None:
        super().__init__(scope, cid)
        self.props = props
        cfg, key_arn = props.settings, props.key_arn
        names = Names(cfg)
        e = cfg.edge
        packages = names.bucket_arn(f"{e.packages_prefix}*")
        self.thing_group = iot.CfnThingGroup(
            self, "Devices", thing_group_name=names.thing_group,
            thing_group_properties=iot.CfnThingGroup.ThingGroupPropertiesProperty(
                thing_group_description=f"mlship {cfg.env} edge devices running the mlship agent"))

        # Devices read packages with temporary credentials from the IoT credentials provider.
        self.device_role = iam.Role(self, "DeviceRole",
                                    assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
                                    description="edge devices: read model packages",
                                    max_session_duration=cdk.Duration.hours(1))
        self.device_role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[packages]))
        self.device_role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key_arn]))
        alias_name = f"{cfg.name}-device"
        self.role_alias = iot.CfnRoleAlias(self, "DeviceRoleAlias", role_alias=alias_name,
                                           role_arn=self.device_role.role_arn, credential_duration_seconds=3600)

        # Job pre-signed URLs are signed with this role (IoT service).
        # Named as edge.publish.presign_role_arn() expects: mlship-<env>-edge-presign.
        self.presign_role = iam.Role(self, "PresignRole", assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
                                     role_name=f"{cfg.name}-edge-presign",
                                     description="IoT Jobs: pre-sign edge package URLs")
        self.presign_role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[packages]))
        self.presign_role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt"], resources=[key_arn]))

        self.device_policy = iot.CfnPolicy(self, "DevicePolicy", policy_name=f"{cfg.name}-device",
                                           policy_document=device_policy(alias_name))

        self.job_template = iot.CfnJobTemplate(
            self, "ModelRollout", job_template_id=names.job_template,
            description=f"roll a new mlship model package out to {names.thing_group}",
            document=json.dumps({"operation": "mlship.model-rollout",
                                 "packagesPrefix": e.packages_prefix,
                                 "note": "mlship edge publish creates jobs from this template with the "
                                         "package URL, version and sha256 (see docs/edge.md)"}),
            presigned_url_config={"RoleArn": self.presign_role.role_arn, "ExpiresInSec": 3600},
            job_executions_rollout_config={"MaximumPerMinute": e.rollout_max_per_minute},
            abort_config={"CriteriaList": [{"Action": "CANCEL", "FailureType": "FAILED",
                                            "MinNumberOfExecutedThings": e.abort_min_executed,
                                            "ThresholdPercentage": e.abort_failure_percent}]},
            timeout_config={"InProgressTimeoutInMinutes": e.in_progress_timeout_minutes})
        cdk.CfnOutput(self, "ThingGroup", value=names.thing_group)
        cdk.CfnOutput(self, "JobTemplateId", value=names.job_template)
        cdk.CfnOutput(self, "PackagesUri", value=f"s3://{names.bucket}/{e.packages_prefix}")


def device_policy(role_alias: str) -> dict[str, object]:
    """The IoT policy of a device: its own client id, its job and telemetry topics, its role alias."""
    arn = f"arn:{cdk.Aws.PARTITION}:iot:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}"
    thing = "${iot:Connection.Thing.ThingName}"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{arn}:client/{thing}",
         "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"],
         "Resource": [f"{arn}:topic/$aws/things/{thing}/jobs/*", f"{arn}:topic/mlship/{thing}/telemetry"]},
        {"Effect": "Allow", "Action": "iot:Subscribe",
         "Resource": f"{arn}:topicfilter/$aws/things/{thing}/jobs/*"},
        {"Effect": "Allow", "Action": ["iot:DescribeJobExecution", "iot:GetPendingJobExecutions",
                                       "iot:StartNextPendingJobExecution", "iot:UpdateJobExecution"],
         "Resource": f"{arn}:thing/{thing}"},
        {"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate",
         "Resource": f"{arn}:rolealias/{role_alias}"},
    ]}
