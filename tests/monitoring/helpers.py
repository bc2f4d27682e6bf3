"""Shared helpers: inference records written the way the prediction Lambda writes them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from mlship.aws.records import RecordWriter
from mlship.local.datasets import CHURN_LABEL, make_churn
from mlship.runtime.predictor import Predictor
from mlship.runtime.records import make_records


def send_traffic(predictor: Predictor, bucket: str, n_rows: int, *, seed: int, shift: float = 0.0,
                 request_rows: int = 50, prefix: str = "inference-records", frame: Any = None) -> list[dict[str, Any]]:
    """Predict ``n_rows`` churn rows (``frame``, else ``make_churn``'s) in requests of ``request_rows``
    and store the records with RecordWriter (as functions/predict does); return [{request_id, row,
    label}] ground truth."""
    df = make_churn(n_rows, seed=seed, shift=shift) if frame is None else frame
    features = predictor.schema.names
    writer = RecordWriter(bucket, prefix, max_records=100_000)
    truth = []
    for start in range(0, n_rows, request_rows):
        chunk = df.iloc[start:start + request_rows]
        inputs = chunk[features].to_dict("records")
        pred = predictor.predict(inputs)
        request_id = uuid.uuid4().hex
        writer.add(make_records(request_id, predictor.model_name, predictor.model_version, inputs, pred.records(),
                                source="lambda"))
        truth += [{"request_id": request_id, "row": i, "label": int(v)}
                  for i, v in enumerate(chunk[CHURN_LABEL].tolist())]
    writer.flush()
    return truth


def put_labels(s3: Any, bucket: str, model: str, labels: list[dict[str, Any]], key: str = "part-0.jsonl") -> None:
    body = "\n".join(json.dumps(x) for x in labels).encode()
    s3.put_object(Bucket=bucket, Key=f"labels/model={model}/{key}", Body=body)


def event_queue(bucket_suffix: str) -> str:
    """An SQS queue targeted by a rule on the default bus matching source mlship.monitoring; returns its URL."""
    from mlship.aws.clients import client

    sqs, events = client("sqs"), client("events")
    url = sqs.create_queue(QueueName=f"monitor-events-{bucket_suffix}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"mlship-monitor-{bucket_suffix}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["mlship.monitoring"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def drain(queue_url: str) -> list[dict[str, Any]]:
    from mlship.aws.clients import client

    sqs = client("sqs")
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
