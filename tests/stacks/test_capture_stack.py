"""Inference capture in the synthesized Api stacks: the log subscription → Firehose → S3 chain,
least-privilege roles, KMS encryption, delivery alarms, and the function's capture variables."""

from __future__ import annotations

import json
from typing import Any

import pytest
from realtime.test_capture_network import DEPLOYED_ENV

from mlship.cdk.capture import FILTER_PATTERN, PARTITION_QUERY, PARTITIONED_PREFIX
from mlship.config import PREDICT_ENV

ENVS = ("dev", "prod", "staging")


def _one(synth: Any, stack: str, rtype: str) -> dict[str, Any]:
    found = synth.resources(stack, rtype)
    assert len(found) == 1, (stack, rtype, list(found))
    return next(iter(found.values()))["Properties"]


def _statements(synth: Any, stack: str, role_logical_prefix: str) -> list[dict[str, Any]]:
    policies = synth.resources(stack, "AWS::IAM::Policy")
    out = []
    for props in (p["Properties"] for p in policies.values()):
        if any(r["Ref"].startswith(role_logical_prefix) for r in props["Roles"]):
            out += props["PolicyDocument"]["Statement"]
    return out


@pytest.mark.parametrize("env", ENVS)
def test_the_function_writes_capture_lines_that_the_subscription_sends_to_firehose(synth, env):
    stack = f"Mlship-{env}-Api"
    function = next(p["Properties"] for p in synth.resources(stack, "AWS::Lambda::Function").values()
                    if p["Properties"].get("Handler") == "handler.handler")
    variables = function["Environment"]["Variables"]
    assert variables["CAPTURE_MODE"] == "log" and variables["CAPTURE_SAMPLING_PERCENTAGE"] == "100"
    # the no-network test runs the handler with these variables: it must know every one the stack sets
    assert set(variables) - {"MODEL_URI", "RECORDS_BUCKET", "RECORDS_PREFIX", "SAGEMAKER_ENDPOINT_NAME",
                             "MLSHIP_PUBLIC_KEY"} <= set(DEPLOYED_ENV), variables
    subscription = _one(synth, stack, "AWS::Logs::SubscriptionFilter")
    assert subscription["FilterPattern"] == FILTER_PATTERN
    assert json.dumps(subscription["DestinationArn"]).endswith(':deliverystream/mlship-' + env + '-predict-capture"]]}')
    log_groups = synth.resources(stack, "AWS::Logs::LogGroup")
    assert subscription["LogGroupName"]["Ref"] in log_groups  # the function's own group


def test_firehose_extracts_partitions_gzips_and_encrypts(synth):
    stream = _one(synth, "Mlship-prod-Api", "AWS::KinesisFirehose::DeliveryStream")
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "CUSTOMER_MANAGED_CMK"
    dest = stream["ExtendedS3DestinationConfiguration"]
    assert dest["Prefix"] == PARTITIONED_PREFIX
    assert dest["Prefix"].startswith("inference-records/model=!{partitionKeyFromQuery:model}/version=")
    assert dest["CompressionFormat"] == "GZIP" and dest["DynamicPartitioningConfiguration"]["Enabled"] is True
    assert dest["BufferingHints"]["SizeInMBs"] >= 64  # dynamic partitioning's minimum
    assert "Fn::ImportValue" in json.dumps(dest["EncryptionConfiguration"])  # the foundation's key
    assert dest["ErrorOutputPrefix"].startswith("capture-errors/")
    processors = {p["Type"]: {q["ParameterName"]: q["ParameterValue"] for q in p["Parameters"]}
                  for p in dest["ProcessingConfiguration"]["Processors"]}
    assert processors["Decompression"] == {"CompressionFormat": "GZIP"}
    assert processors["CloudWatchLogProcessing"] == {"DataMessageExtraction": "true"}
    assert processors["MetadataExtraction"]["MetadataExtractionQuery"] == PARTITION_QUERY
    assert processors["AppendDelimiterToRecord"] == {"Delimiter": "\\n"}


def test_capture_roles_are_least_privilege(synth):
    stack = "Mlship-prod-Api"
    delivery = _statements(synth, stack, "CaptureDeliveryRole")
    actions = {a for s in delivery for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:PutObject", "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket",
                       "s3:ListBucketMultipartUploads", "kms:GenerateDataKey", "kms:Decrypt",
                       "logs:CreateLogStream", "logs:PutLogEvents"}
    put = next(s for s in delivery if "s3:PutObject" in s["Action"])
    assert all(json.dumps(r).count("inference-records/*") + json.dumps(r).count("capture-errors/*") == 1
               for r in put["Resource"])
    kms = next(s for s in delivery if "kms:Decrypt" in s["Action"])
    assert "kms:ViaService" in kms["Condition"]["StringEquals"]
    subscription = _statements(synth, stack, "CaptureSubscriptionRole")
    assert [sorted(s["Action"]) for s in subscription] == [["firehose:PutRecord", "firehose:PutRecordBatch"]]
    assert "deliverystream/mlship-prod-predict-capture" in json.dumps(subscription[0]["Resource"])
    # no GetAtt on the stream: moto's CloudFormation (the deploy rehearsal) skips Firehose and fails such a GetAtt
    assert '"Fn::GetAtt": ["CaptureStream' not in json.dumps(synth.templates[stack])
    roles = synth.resources(stack, "AWS::IAM::Role")
    trusts = {k: v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0] for k, v in roles.items()
              if k.startswith("Capture")}
    assert {t["Principal"]["Service"] for t in trusts.values()} == {"firehose.amazonaws.com", "logs.amazonaws.com"}
    assert all("Condition" in t for t in trusts.values())  # confused-deputy conditions


def test_delivery_failures_alarm_to_the_topic(synth):
    alarms = [a["Properties"] for a in synth.resources("Mlship-prod-Api", "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == "AWS/Firehose"]
    assert {a["MetricName"] for a in alarms} == {"DeliveryToS3.Success", "DeliveryToS3.DataFreshness",
                                                 "ThrottledRecords"}
    assert all(a["AlarmActions"] for a in alarms)


def test_capture_variables_cannot_be_overridden_by_extra_environment():
    assert {"CAPTURE_MODE", "CAPTURE_SAMPLING_PERCENTAGE"} <= set(PREDICT_ENV)


@pytest.mark.parametrize(("capture", "error"), [({"sampling_percentage": 101}, "less than or equal"),
                                                ({"sampling_percentage": 0}, "enabled=false"),
                                                ({"mode": "kafka"}, "'log' or 's3'"),
                                                ({"buffer_mb": 8}, "greater than or equal")])
def test_capture_config_is_validated(capture, error):
    from mlship.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=error):
        load_config("dev", {"mlship:api.capture": json.dumps(capture)})


def test_capture_config_sets_the_function_variables():
    from mlship.config import CaptureConfig

    assert CaptureConfig(sampling_percentage=12.5).environment() == {"CAPTURE_MODE": "log",
                                                                     "CAPTURE_SAMPLING_PERCENTAGE": "12.5"}
    assert CaptureConfig(enabled=False).environment()["CAPTURE_MODE"] == "off"
    assert CaptureConfig(mode="s3").environment()["CAPTURE_MODE"] == "s3"


@pytest.mark.parametrize("env", ENVS)
def test_in_log_mode_the_function_cannot_write_to_the_bucket(synth, env):
    """Firehose writes the records: the predict role keeps only reads of the data bucket."""
    statements = _statements(synth, f"Mlship-{env}-Api", "Role")
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "s3:GetObject" in actions
    assert "s3:PutObject" not in actions, statements


@pytest.mark.parametrize("env", ENVS)
def test_records_firehose_could_not_partition_expire_like_the_records(synth, env):
    from mlship.cdk.names import CAPTURE_ERRORS_PREFIX, RECORDS_PREFIX

    bucket = next(p["Properties"] for p in synth.resources(f"Mlship-{env}-Foundation", "AWS::S3::Bucket").values()
                  if any(r.get("Prefix") == RECORDS_PREFIX
                         for r in p["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])))
    rules = {r.get("Prefix"): r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules[CAPTURE_ERRORS_PREFIX]["ExpirationInDays"] == rules[RECORDS_PREFIX]["ExpirationInDays"]
