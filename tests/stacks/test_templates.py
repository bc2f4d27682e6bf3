"""Properties of the synthesized templates that matter (aws_cdk.assertions on the shared synthesis)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from mlship.cdk.nag import flatten


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_stack_of_both_environments_is_synthesized(synth):
    for env in ("dev", "prod"):
        for part in ("Foundation", "Endpoint", "Api", "Monitoring", "Batch", "Edge"):
            assert f"Mlship-{env}-{part}" in synth.templates


def test_prod_endpoint_deploys_blue_green_linear_with_rollback_alarms(synth):
    t = synth.template("Mlship-prod-Endpoint")
    t.has_resource_properties("AWS::SageMaker::Endpoint", {
        "EndpointName": "mlship-prod-churn",
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "LINEAR", "WaitIntervalInSeconds": 600,
                                                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}},
                "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 7200},
            "AutoRollbackConfiguration": {"Alarms": [
                {"AlarmName": "mlship-prod-endpoint-5xx"}, {"AlarmName": "mlship-prod-endpoint-latency"},
                {"AlarmName": "mlship-prod-model-quality"}, {"AlarmName": "mlship-prod-performance-degraded"}]}},
    })


def test_dev_endpoint_is_serverless_all_at_once(synth):
    t = synth.template("Mlship-dev-Endpoint")
    t.has_resource_properties("AWS::SageMaker::Endpoint", {"DeploymentConfig": {"BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "CanarySize": Match.absent(),
                                        "LinearStepSize": Match.absent()}}}})
    t.has_resource_properties("AWS::SageMaker::EndpointConfig", {
        "ProductionVariants": [{"VariantName": "blue", "ServerlessConfig": {"MemorySizeInMB": 2048,
                                                                            "MaxConcurrency": 5}}],
        "DataCaptureConfig": Match.absent()})
    t.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)


def test_a_pinned_model_data_url_is_served_and_readable(synth):
    staging = synth.template("Mlship-staging-Endpoint")
    staging.has_resource_properties("AWS::SageMaker::Model", {"PrimaryContainer": {
        "ModelDataUrl": "s3://models-example/churn/3/bundle.tar.gz",
        "Environment": Match.object_equals({"MLSHIP_REGISTRY_BUCKET": Match.any_value(), "MLSHIP_MODEL_NAME": "churn",
                                            "MLSHIP_MODEL_VERSION": "3", "POWERTOOLS_METRICS_NAMESPACE": "mlship"})}})
    for stack in ("Mlship-staging-Endpoint", "Mlship-staging-Api", "Mlship-staging-Monitoring"):
        statements = [s for r in synth.resources(stack, "AWS::IAM::Policy").values()
                      for s in r["Properties"]["PolicyDocument"]["Statement"]]
        readable = [flatten(r) for s in statements if "s3:GetObject" in _as_list(s["Action"])
                    for r in _as_list(s["Resource"])]
        assert "arn:<AWS::Partition>:s3:::models-example/churn/3/bundle.tar.gz" in readable, stack


def test_every_rollback_alarm_exists_and_watches_the_endpoint_or_model(synth):
    for env in ("dev", "prod"):
        tpl = synth.templates[f"Mlship-{env}-Endpoint"]
        alarms = {r["Properties"]["AlarmName"]: r["Properties"]
                  for r in tpl["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"}
        endpoint = next(r for r in tpl["Resources"].values() if r["Type"] == "AWS::SageMaker::Endpoint")
        rollback = endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]
        names = [a["AlarmName"] for a in rollback["Alarms"]]
        assert set(names) == set(alarms), "rollback alarms and alarm resources differ"
        five = alarms[f"mlship-{env}-endpoint-5xx"]
        assert (five["Namespace"], five["MetricName"]) == ("AWS/SageMaker", "Invocation5XXErrors")
        assert {"Name": "EndpointName", "Value": f"mlship-{env}-churn"} in five["Dimensions"]
        latency = alarms[f"mlship-{env}-endpoint-latency"]
        assert latency["MetricName"] == "ModelLatency" and latency["ExtendedStatistic"] == "p99"
        assert latency["Threshold"] == 500 * 1000  # ms config, microsecond metric
        quality = alarms[f"mlship-{env}-model-quality"]
        query = quality["Metrics"][0]["Expression"]
        assert query == "SELECT MIN(ModelQuality) FROM SCHEMA(mlship, Model, Version) WHERE Model = 'churn'"
        assert quality["ComparisonOperator"] == "LessThanThreshold" and quality["Threshold"] == 0.7
        # The endpoint is created after its alarms (SageMaker validates them at CreateEndpoint).
        alarm_ids = {k for k, r in tpl["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
        assert alarm_ids <= set(endpoint["DependsOn"])
        for props in alarms.values():
            assert flatten(props["AlarmActions"][0]).endswith(f"sns:<AWS::Region>:<AWS::AccountId>:mlship-{env}-alarms")


def test_sagemaker_role_may_describe_exactly_the_rollback_alarms(synth):
    tpl = synth.templates["Mlship-prod-Endpoint"]
    statements = [s for r in tpl["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
                  for s in r["Properties"]["PolicyDocument"]["Statement"]]
    describe = next(s for s in statements if s["Action"] == "cloudwatch:DescribeAlarms")
    assert sorted(flatten(r).rsplit(":", 1)[1] for r in describe["Resource"]) == sorted(
        ["mlship-prod-endpoint-5xx", "mlship-prod-endpoint-latency", "mlship-prod-model-quality",
         "mlship-prod-performance-degraded"])


def test_prod_endpoint_config_weights_shadow_capture_and_kms(synth):
    t = synth.template("Mlship-prod-Endpoint")
    t.has_resource_properties("AWS::SageMaker::EndpointConfig", {
        "ProductionVariants": [{"VariantName": "blue", "InitialVariantWeight": 1, "InitialInstanceCount": 2,
                                "InstanceType": "ml.m5.large"}],
        "ShadowProductionVariants": [{"VariantName": "shadow", "InstanceType": "ml.c5.large"}],
        "KmsKeyId": Match.any_value(),
        "DataCaptureConfig": {"EnableCapture": True, "InitialSamplingPercentage": 100,
                              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                              "KmsKeyId": Match.any_value(), "DestinationS3Uri": Match.any_value()}})
    config = next(iter(synth.resources("Mlship-prod-Endpoint", "AWS::SageMaker::EndpointConfig").values()))
    assert flatten(config["Properties"]["DataCaptureConfig"]["DestinationS3Uri"]) == \
        "s3://mlship-prod-data-<AWS::AccountId>-<AWS::Region>/data-capture/churn"
    t.has_resource_properties("AWS::SageMaker::Model", {"PrimaryContainer": {
        "ModelDataUrl": {"Ref": Match.string_like_regexp(r"^SsmParameterValuemlshipprodchurndeployedbundleuri")},
        "Environment": Match.object_like({"MLSHIP_REGISTRY_BUCKET": Match.any_value(), "MLSHIP_MODEL_NAME": "churn",
                                          "MODEL_URI": Match.absent()})}})


def test_prod_autoscaling_tracks_invocations_per_instance(synth):
    t = synth.template("Mlship-prod-Endpoint")
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "ResourceId": "endpoint/mlship-prod-churn/variant/blue", "MinCapacity": 2, "MaxCapacity": 8,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"})
    t.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "TargetTrackingScalingPolicyConfiguration": {
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "TargetValue": 200}})


def test_prod_image_comes_from_the_dockerfile_asset_or_the_override(synth):
    tpl = json.dumps(synth.templates["Mlship-prod-Endpoint"])
    if synth.docker_asset:
        assert "cdk-hnb659fds-container-assets" in tpl
        staged = next(synth.outdir.glob("asset.*/Dockerfile")).parent
        for heavy in (".venv", "node_modules", "cdk.out", "build", ".git"):
            assert not (staged / heavy).exists(), f"{heavy} was staged into the Docker context"
    else:
        assert "mlship-serve:test" in tpl


def test_lambda_alias_shifted_by_codedeploy_with_alarms(synth):
    prod = synth.template("Mlship-prod-Api")
    prod.has_resource_properties("AWS::CodeDeploy::DeploymentConfig", {"TrafficRoutingConfig": {
        "Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearInterval": 3, "LinearPercentage": 10}}})
    for env in ("dev", "prod"):
        t = synth.template(f"Mlship-{env}-Api")
        t.has_resource_properties("AWS::Lambda::Alias", {"Name": "live"})
        t.has_resource_properties("AWS::CodeDeploy::DeploymentGroup", {
            "AlarmConfiguration": {"Enabled": True,
                                   "Alarms": [{"Name": Match.any_value()}, {"Name": Match.any_value()}]},
            "AutoRollbackConfiguration": {"Enabled": True, "Events": Match.array_with(
                ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"])}})
        t.has_resource("AWS::Lambda::Alias", {"UpdatePolicy": {"CodeDeployLambdaAliasUpdate": Match.any_value()}})
        t.has_resource_properties("AWS::CloudWatch::Alarm", {
            "AlarmName": f"mlship-{env}-predict-errors", "MetricName": "Errors",
            "Dimensions": Match.array_with([{"Name": "Resource", "Value": f"mlship-{env}-predict:live"}])})
    synth.template("Mlship-dev-Api").has_resource_properties(
        "AWS::CodeDeploy::DeploymentGroup", {"DeploymentConfigName": "CodeDeployDefault.LambdaAllAtOnce"})


def test_predict_function_environment_follows_the_interface(synth):
    fn = next(v for _, _, v in synth.all_resources("AWS::Lambda::Function")
              if v["Properties"].get("FunctionName") == "mlship-prod-predict")["Properties"]
    env = fn["Environment"]["Variables"]
    assert fn["Runtime"] == "python3.12" and fn["Handler"] == "handler.handler"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert {"MODEL_URI", "MLSHIP_REGISTRY_BUCKET", "RECORDS_BUCKET", "RECORDS_PREFIX", "PREDICT_BACKEND",
            "SAGEMAKER_ENDPOINT_NAME", "MAX_BODY_BYTES", "POWERTOOLS_SERVICE_NAME",
            "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)
    assert env["RECORDS_PREFIX"] == "inference-records" and env["POWERTOOLS_METRICS_NAMESPACE"] == "mlship"
    assert env["SAGEMAKER_ENDPOINT_NAME"] == "mlship-prod-churn"


def test_prediction_api_requires_iam_and_is_throttled(synth):
    dev = synth.template("Mlship-dev-Api")
    dev.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM", "Qualifier": "live"})
    prod = synth.template("Mlship-prod-Api")
    prod.resource_count_is("AWS::Lambda::Url", 0)
    prod.has_resource_properties("AWS::ApiGateway::Method", {"HttpMethod": "POST", "AuthorizationType": "AWS_IAM",
                                                             "RequestValidatorId": Match.any_value()})
    prod.has_resource_properties("AWS::ApiGateway::Stage", {
        "MethodSettings": [{"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200, "HttpMethod": "*",
                            "ResourcePath": "/*", "LoggingLevel": "ERROR", "DataTraceEnabled": False}],
        "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}), "TracingEnabled": True})


def test_monitor_runs_on_a_schedule_with_alarms_and_event_routing(synth):
    t = synth.template("Mlship-prod-Monitoring")
    t.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 hour)", "State": "ENABLED",
                                                    "Targets": [Match.object_like({"Arn": Match.any_value()})]})
    t.has_resource_properties("AWS::Events::Rule", {"EventPattern": {
        "source": ["mlship.monitoring"], "detail-type": ["DriftDetected", "PerformanceDegraded", "AttributionDrift"]}})
    t.has_resource_properties("AWS::Lambda::Function", {"FunctionName": "mlship-prod-monitor", "Environment": {
        "Variables": Match.object_like({"SENSITIVE_ATTRIBUTE": "gender", "WINDOW_HOURS": "1",
                                        "REPORTS_PREFIX": "monitoring", "LABELS_PREFIX": "labels",
                                        "EVENT_BUS_NAME": "default", "PRIMARY_METRIC": "roc_auc"})}})
    t.has_resource_properties("AWS::Lambda::Permission", {"Principal": "events.amazonaws.com"})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "mlship-prod-drift"})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "mlship-prod-monitor-errors"})


def test_batch_application_job_role_and_schedule(synth):
    t = synth.template("Mlship-prod-Batch")
    t.has_resource_properties("AWS::EMRServerless::Application", {
        "Type": "SPARK", "ReleaseLabel": "emr-7.5.0",
        "AutoStopConfiguration": {"Enabled": True, "IdleTimeoutMinutes": 15},
        "MaximumCapacity": {"Cpu": "16 vCPU", "Memory": "64 GB"}})
    sched = next(iter(synth.resources("Mlship-prod-Batch", "AWS::Scheduler::Schedule").values()))["Properties"]
    assert sched["ScheduleExpression"] == "cron(0 3 * * ? *)" and sched["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert flatten(sched["Target"]["Arn"]) == "arn:<AWS::Partition>:scheduler:::aws-sdk:emrserverless:startJobRun"
    job = flatten(sched["Target"]["Input"])
    for piece in ('"EntryPointArguments":["--model","mlship://churn@champion","--input","s3://mlship-prod-data-',
                  '"--output","s3://mlship-prod-data-<AWS::AccountId>-<AWS::Region>/batch/output/",'
                  '"--logical-time","<aws.scheduler.scheduled-time>","--timezone","UTC","--date-offset-days","1",'
                  '"--format","parquet","--s3-mode","direct"',
                  'spark.submit.pyFiles=s3://', '"ClientToken":"<aws.scheduler.execution-id>"',
                  'spark.archives=s3://artifacts-example/batch/mlship-batch-deps.tar.gz#deps',
                  '"LogUri":"s3://mlship-prod-data-'):
        assert piece in job, piece
    assert "--run-id" not in job  # the logical date is the run id: a retried tick replaces its own output
    assert not synth.resources("Mlship-dev-Batch", "AWS::Scheduler::Schedule")  # dev scores on demand
    assert synth.resources("Mlship-dev-Batch", "AWS::EMRServerless::Application")
    assert any(p.name.endswith(".zip") for p in synth.outdir.glob("asset.*")), "batch code zip not staged"


def test_edge_thing_group_job_template_and_device_policy(synth):
    t = synth.template("Mlship-prod-Edge")
    t.has_resource_properties("AWS::IoT::ThingGroup", {"ThingGroupName": "mlship-prod-devices"})
    t.has_resource_properties("AWS::IoT::JobTemplate", {
        "JobTemplateId": "mlship-prod-model-rollout",
        "AbortConfig": {"CriteriaList": [{"Action": "CANCEL", "FailureType": "FAILED",
                                          "MinNumberOfExecutedThings": 5, "ThresholdPercentage": 10}]},
        "JobExecutionsRolloutConfig": {"MaximumPerMinute": 10},
        "PresignedUrlConfig": {"ExpiresInSec": 3600, "RoleArn": Match.any_value()}})
    t.has_resource_properties("AWS::IAM::Role", {"RoleName": "mlship-prod-edge-presign"})
    policy = next(iter(synth.resources("Mlship-prod-Edge", "AWS::IoT::Policy").values()))["Properties"]
    for stmt in policy["PolicyDocument"]["Statement"]:
        for resource in _as_list(stmt["Resource"]):
            text = flatten(resource)
            assert text != "*" and "${iot:Connection.Thing.ThingName}" in json.dumps(resource) or "rolealias/" in text
    device_role = next(v for _, v in synth.resources("Mlship-prod-Edge", "AWS::IAM::Policy").items()
                       if "DeviceRole" in json.dumps(v["Properties"]["Roles"]))
    resources = [flatten(r) for s in device_role["Properties"]["PolicyDocument"]["Statement"]
                 for r in _as_list(s["Resource"])]
    assert any(r.endswith("/edge-packages/*") for r in resources)


# Actions with no resource-level permissions (Service Authorization Reference). The logs and X-Ray
# sampling ones are what CDK grants a state machine for its log delivery and tracing (Retrain stack).
NO_RESOURCE_LEVEL = {
    "cloudwatch:PutMetricData", "xray:PutTraceSegments", "xray:PutTelemetryRecords", "ecr:GetAuthorizationToken",
    "xray:GetSamplingRules", "xray:GetSamplingTargets", "logs:CreateLogDelivery", "logs:GetLogDelivery",
    "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}


def test_no_wildcard_actions_on_wildcard_resources(synth):
    for stack, logical, res in synth.all_resources("AWS::IAM::Policy") + synth.all_resources("AWS::IAM::Role"):
        docs = [res["Properties"]["PolicyDocument"]] if "PolicyDocument" in res["Properties"] else \
            [p["PolicyDocument"] for p in res["Properties"].get("Policies", [])]
        for doc in docs:
            for stmt in doc["Statement"]:
                if stmt["Effect"] != "Allow":
                    continue
                actions = _as_list(stmt["Action"])
                assert not any(a == "*" or a.endswith(":*") for a in actions), (stack, logical, stmt)
                if "*" in _as_list(stmt.get("Resource", [])):
                    assert set(actions) <= NO_RESOURCE_LEVEL, (stack, logical, stmt)


def test_storage_is_encrypted_versioned_private_logged_and_expiring(synth):
    for env in ("dev", "prod"):
        buckets = synth.resources(f"Mlship-{env}-Foundation", "AWS::S3::Bucket")
        assert len(buckets) == 2
        for bucket in buckets.values():
            p = bucket["Properties"]
            assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            assert p["VersioningConfiguration"] == {"Status": "Enabled"}
            assert p["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                           "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
            assert p["LifecycleConfiguration"]["Rules"]
        data = next(b["Properties"] for b in buckets.values() if "LoggingConfiguration" in b["Properties"])
        sse = data["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms" and sse["BucketKeyEnabled"]
        rules = {r["Id"]: r for r in data["LifecycleConfiguration"]["Rules"]}
        assert rules["records"]["Prefix"] == "inference-records/"
        assert rules["records"]["ExpirationInDays"] == (14 if env == "dev" else 365)
        policies = synth.resources(f"Mlship-{env}-Foundation", "AWS::S3::BucketPolicy")
        ssl = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
               if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and s["Effect"] == "Deny"]
        assert len(ssl) == 2  # both buckets refuse plain HTTP
        t = synth.template(f"Mlship-{env}-Foundation")
        t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
        t.has_resource_properties("AWS::SNS::Topic", {"TopicName": f"mlship-{env}-alarms",
                                                      "KmsMasterKeyId": Match.any_value()})
    dev_bucket = next(iter(synth.resources("Mlship-dev-Foundation", "AWS::S3::Bucket").values()))
    prod_bucket = next(iter(synth.resources("Mlship-prod-Foundation", "AWS::S3::Bucket").values()))
    assert dev_bucket["DeletionPolicy"] == "Delete" and prod_bucket["DeletionPolicy"] == "Retain"
