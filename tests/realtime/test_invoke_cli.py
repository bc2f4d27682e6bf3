"""``mlship invoke --function``: moto's Lambda ``invoke`` runs nothing without Docker, so that one
call is tested with botocore's Stubber (the payload it answers is what the real handler returns)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from mlship.aws import clients as aws
from mlship.cli.serving import invoke_function
from mlship.errors import MlshipError
from realtime.helpers import LambdaContext


@pytest.fixture
def stubbed_lambda(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    aws.clear_cache()
    client = aws.client("lambda")
    with Stubber(client) as stub:
        yield stub
    aws.clear_cache()


def _payload(doc: Any) -> StreamingBody:
    data = json.dumps(doc).encode()
    return StreamingBody(io.BytesIO(data), len(data))


def test_invoke_function_sends_the_direct_envelope(stubbed_lambda, handler, holdout_records):
    body = json.dumps({"instances": holdout_records[:2]}).encode()
    # what the deployed function would answer: the real handler run on the same envelope
    envelope = {"body": body.decode(), "contentType": "application/json", "isBase64Encoded": False}
    answer = handler.handler(envelope, LambdaContext())
    stubbed_lambda.add_response("invoke", {"StatusCode": 200, "Payload": _payload(answer)},
                                {"FunctionName": "mlship-predict", "Payload": ANY})
    status, got = invoke_function("mlship-predict", body, "application/json")
    assert status == 200 and len(got["predictions"]) == 2


def test_invoke_function_reports_errors(stubbed_lambda):
    stubbed_lambda.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                           "Payload": _payload({"errorMessage": "boom"})},
                                {"FunctionName": "f", "Payload": ANY})
    with pytest.raises(MlshipError, match="Unhandled"):
        invoke_function("f", b"{}", "application/json")
    stubbed_lambda.add_client_error("invoke", "ResourceNotFoundException", "Function not found: g")
    with pytest.raises(MlshipError, match="Function not found"):
        invoke_function("g", b"{}", "application/json")
