"""Demo step: the prediction Lambda (API Gateway and Function URL events) and a local SageMaker
endpoint (boto3 ``invoke_endpoint`` -> local control plane -> ``mlship serve``), with blue/green weights."""

from __future__ import annotations

import base64
import json
import math
import os
from collections import Counter
from typing import Any

from rich.table import Table

from demo.context import DemoContext


class _Context:
    """The Lambda context object (what the runtime passes to a handler)."""

    aws_request_id = "demo-0001"
    function_name = "mlship-predict"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlship-predict"


def _records(frame: Any, names: list[str], n: int) -> list[dict[str, Any]]:
    out = []
    for row in frame[names].head(n).to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
                    for k, v in row.items()})
    return out


def _v1(body: str, ctype: str) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/predict", "headers": {"Content-Type": ctype},
            "requestContext": {"requestId": "apigw-demo-1", "stage": "prod"}, "body": body, "isBase64Encoded": False}


def _function_url(body: bytes, ctype: str) -> dict[str, Any]:
    return {"version": "2.0", "rawPath": "/", "headers": {"content-type": ctype},
            "requestContext": {"requestId": "furl-demo-1", "domainName": "demo.lambda-url.us-east-1.on.aws",
                               "http": {"method": "POST", "path": "/"}},
            "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def run(ctx: DemoContext) -> None:
    from mlship.aws import clients as aws
    from mlship.runtime.predictor import Predictor

    ctx.step("Real-time: the prediction Lambda (API Gateway + Function URL events)")
    tarball = ctx.data["bundle_tar"]
    s3 = aws.client("s3")
    s3.upload_file(str(tarball), ctx.bucket, "realtime/churn/1/model.tar.gz")
    model_uri = f"s3://{ctx.bucket}/realtime/churn/1/model.tar.gz"
    predictor = Predictor.load(ctx.data["bundle_dir"])
    names = predictor.schema.names
    rows = _records(ctx.data["holdout_df"], names, 4)

    settings = {"MODEL_URI": model_uri, "RECORDS_BUCKET": ctx.bucket, "POWERTOOLS_TRACE_DISABLED": "1",
                "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "1"}
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        _run(ctx, predictor, names, rows, model_uri)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(ctx: DemoContext, predictor: Any, names: list[str], rows: list[dict[str, Any]], model_uri: str) -> None:
    from mlship.aws import clients as aws
    from mlship.local.plane.server import ControlPlane

    con = ctx.console
    s3 = aws.client("s3")
    from functions.predict import handler as lambda_handler

    lambda_handler.reset()
    resp = lambda_handler.handler(_v1(json.dumps({"instances": rows}), "application/json"), _Context())
    answer = json.loads(resp["body"])
    table = Table(title=f"API Gateway (REST v1) -> Lambda: HTTP {resp['statusCode']}, model "
                        f"{answer['model']['name']}:{answer['model']['version']}, request {answer['request_id']}")
    for col in ("tenure_months", "contract", "prediction", "P(churn)"):
        table.add_column(col)
    for rec, label, probs in zip(rows, answer["predictions"], answer["probabilities"], strict=True):
        table.add_row(str(rec["tenure_months"]), rec["contract"], str(label), f"{probs[1]:.3f}")
    con.print(table)

    csv_body = (",".join(names) + "\n" + "\n".join(",".join("" if r[n] is None else str(r[n]) for n in names)
                                                    for r in rows)).encode()
    resp = lambda_handler.handler(_function_url(csv_body, "text/csv"), _Context())
    con.print(f"Function URL (base64 CSV with header) -> HTTP {resp['statusCode']}: "
              f"predictions {json.loads(resp['body'])['predictions']}")
    bad = dict(rows[0], contract="weekly", age="old")  # weekly is unseen but allowed (handle_unknown="ignore")
    resp = lambda_handler.handler(_v1(json.dumps(bad), "application/json"), _Context())
    con.print(f"bad input -> HTTP {resp['statusCode']}:")
    for err in json.loads(resp["body"])["errors"]:
        con.print(f"  field [bold]{err['field']}[/bold] ({err['kind']}): {err['message']}")
    resp = lambda_handler.handler(_v1("<x/>", "application/xml"), _Context())
    con.print(f"XML body -> HTTP {resp['statusCode']}: {json.loads(resp['body'])['error']}")
    listed = s3.list_objects_v2(Bucket=ctx.bucket, Prefix="inference-records/").get("Contents", [])
    con.print(f"capture: the {{\"capture\": \"mlship/1\", ...}} lines above are the function's capture log "
              f"lines, written with no network call ({len(listed)} S3 objects written by the handler); in AWS "
              "the log subscription sends them through Firehose to "
              "s3://BUCKET/inference-records/model=/version=/date=/hour=", highlight=False, markup=False)

    ctx.step("Real-time: a local SageMaker endpoint (boto3 invoke_endpoint -> control plane -> mlship serve)")
    sm = aws.client("sagemaker")
    role = "arn:aws:iam::123456789012:role/mlship-sagemaker"
    variants = []
    for variant, weight in (("blue", 0.8), ("green", 0.2)):
        sm.create_model(ModelName=f"churn-{variant}", ExecutionRoleArn=role,
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship:1",
                                          "ModelDataUrl": model_uri})
        variants.append({"VariantName": variant, "ModelName": f"churn-{variant}", "InitialInstanceCount": 1,
                         "InstanceType": "ml.m5.large", "InitialVariantWeight": weight})
    sm.create_endpoint_config(EndpointConfigName="churn-demo-config", ProductionVariants=variants)
    sm.create_endpoint(EndpointName="churn-demo", EndpointConfigName="churn-demo-config")
    with ControlPlane(ctx.endpoint_url, log_dir=ctx.workdir / "plane") as gateway:
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = gateway.url
        aws.clear_cache()
        try:
            runtime = aws.client("sagemaker-runtime")
            con.print(f"local control plane at {gateway.url}; starting `mlship serve` for each variant ...")
            body = json.dumps({"instances": rows}).encode()
            resp = runtime.invoke_endpoint(EndpointName="churn-demo", ContentType="application/json", Body=body)
            answer = json.loads(resp["Body"].read())
            same = answer["predictions"] == predictor.predict(rows).labels.tolist()
            con.print(f"invoke_endpoint -> variant {resp['InvokedProductionVariant']}: predictions "
                      f"{answer['predictions']} ({'same as' if same else 'DIFFERENT from'} the predictor)")
            seen = Counter(runtime.invoke_endpoint(EndpointName="churn-demo", ContentType="application/json",
                                                   Body=json.dumps(rows[0]))["InvokedProductionVariant"]
                           for _ in range(50))
            con.print(f"50 calls at weights blue 0.8 / green 0.2: {dict(seen)}")
            aws.client("sagemaker").update_endpoint_weights_and_capacities(  # through the plane, as `local env` sets
                EndpointName="churn-demo", DesiredWeightsAndCapacities=[
                    {"VariantName": "blue", "DesiredWeight": 0.0}, {"VariantName": "green", "DesiredWeight": 1.0}])
            seen = Counter(runtime.invoke_endpoint(EndpointName="churn-demo", ContentType="application/json",
                                                   Body=json.dumps(rows[0]))["InvokedProductionVariant"]
                           for _ in range(20))
            con.print(f"after shifting all traffic to green: {dict(seen)}")
            os.environ.update(PREDICT_BACKEND="sagemaker", SAGEMAKER_ENDPOINT_NAME="churn-demo")
            lambda_handler.reset()
            resp = lambda_handler.handler(_v1(json.dumps({"instances": rows}), "application/json"), _Context())
            answer = json.loads(resp["body"])
            con.print(f"Lambda with PREDICT_BACKEND=sagemaker -> HTTP {resp['statusCode']} via variant "
                      f"{answer.get('variant')}: predictions {answer['predictions']}")
        finally:
            for key in ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_SAGEMAKER", "PREDICT_BACKEND",
                        "SAGEMAKER_ENDPOINT_NAME"):
                os.environ.pop(key, None)
            lambda_handler.reset()
            aws.clear_cache()
