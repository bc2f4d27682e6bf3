"""The scheduled batch job: refused without its workers' environment, and a StartJobRun request
that botocore's EMR Serverless model accepts (moto has no EMR Serverless job runs: Stubber)."""

from __future__ import annotations

import aws_cdk as cdk
import boto3
import pytest
from botocore.stub import Stubber

import mlship.cdk as mlship_cdk
from mlship.cdk.batch import start_job_run_request
from mlship.config import ConfigError, build_config

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def test_a_scheduled_job_without_its_python_environment_is_refused_at_synthesis():
    settings = build_config("prod", {"assets": {"lambda_code": "source"}})
    assert settings.batch.scheduled and settings.batch.dependencies_archive is None
    stack = cdk.Stack(cdk.App(), "Batch")
    with pytest.raises(ConfigError) as raised:
        mlship_cdk.BatchScoring(stack, "Batch", props=mlship_cdk.BatchScoringProps(
            registry=mlship_cdk.ImportedRegistry(settings, KEY_ARN)))
    assert raised.value.problems[0].startswith("batch.dependencies_archive: a scheduled batch job needs")
    unscheduled = mlship_cdk.BatchScoring(stack, "OnDemand", props=mlship_cdk.BatchScoringProps(
        registry=mlship_cdk.ImportedRegistry(settings, KEY_ARN), batch={"scheduled": False}))
    assert unscheduled.schedule is None


@pytest.mark.parametrize("deps", [None, "s3://artifacts/batch/mlship-batch-deps.tar.gz"])
def test_the_start_job_run_request_matches_the_emr_serverless_service_model(deps: str | None):
    cfg = build_config("prod", {"batch": {"schedule_timezone": "Europe/Berlin", "date_offset_days": 0}})
    request = start_job_run_request(
        cfg, application_id="00fabcdefghij012", role_arn="arn:aws:iam::123456789012:role/mlship-batch",
        model_uri="mlship://churn@champion", bucket="mlship-prod-data-123456789012-us-east-1",
        script_url="s3://cdk-assets/score.py", code_url="s3://cdk-assets/code.zip", deps_url=deps)
    client = boto3.client("emr-serverless", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        arn = "arn:aws:emr-serverless:us-east-1:123456789012:/applications/00fabcdefghij012/jobruns/00f1abcdefgh"
        stub.add_response("start_job_run", {"applicationId": "00fabcdefghij012", "jobRunId": "00f1abcdefgh",
                                            "arn": arn}, expected_params=_camel(request))
        # botocore validates the parameters against the service model before the stub answers
        client.start_job_run(**_camel(request))
    arguments = request["JobDriver"]["SparkSubmit"]["EntryPointArguments"]
    assert arguments[arguments.index("--timezone") + 1] == "Europe/Berlin"
    assert arguments[arguments.index("--date-offset-days") + 1] == "0"


def _camel(request: dict) -> dict:
    """Scheduler's universal target takes the API's JSON names (PascalCase); boto3 takes camelCase."""
    def convert(value: object) -> object:
        if isinstance(value, dict):
            return {k[0].lower() + k[1:]: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(request)  # type: ignore[return-value]
