"""``explain=true`` on the Lambda handler (API Gateway v1 and v2 events) and ``mlship serve`` (real
HTTP to a real process): the same per-row explanation as ``Predictor.explain``, top-k included, and
clear refusals: a bad parameter is a 400 naming it, a CSV answer cannot carry explanations (406),
and a model without an exact explainer answers approximate explanations, labelled as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from realtime.helpers import LambdaContext, ServeProcess, http_v2_event, request, rest_v1_event


def _expected(predictor: Any, records: list[dict[str, Any]], top_k: int | None) -> list[dict[str, Any]]:
    return json.loads(json.dumps(predictor.explain(records).records(top_k)))


def _lambda(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = handler.handler(event, LambdaContext())
    return resp["statusCode"], json.loads(resp["body"])


def test_lambda_answers_explanations_for_v1_and_v2_events(handler, predictor, holdout_records) -> None:
    rows = holdout_records[:4]
    body = json.dumps({"instances": rows})
    v2 = http_v2_event(body)
    v2["rawQueryString"] = "explain=true&top_k=3"
    status, answer = _lambda(handler, v2)
    assert status == 200, answer
    assert answer["explanations"] == _expected(predictor, rows, 3)
    assert len(answer["predictions"]) == 4
    v1 = rest_v1_event(body)
    v1["queryStringParameters"] = {"explain": "true"}
    v1["multiValueQueryStringParameters"] = {"explain": ["true"]}
    status, answer = _lambda(handler, v1)
    assert status == 200 and answer["explanations"] == _expected(predictor, rows, None)


def test_one_record_takes_the_fast_path_and_is_still_explained(handler, predictor, holdout_records) -> None:
    event = http_v2_event(json.dumps(holdout_records[0]))
    event["rawQueryString"] = "explain=1"
    status, answer = _lambda(handler, event)
    assert status == 200 and answer["explanations"] == _expected(predictor, holdout_records[:1], None)


@pytest.mark.parametrize(("query", "accept", "status", "kind", "named"), [
    ("explain=maybe", None, 400, "bad_parameter", "explain"),
    ("explain=true&top_k=0", None, 400, "bad_parameter", "top_k"),
    ("explain=true&top_k=x", None, 400, "bad_parameter", "top_k"),
    ("top_k=3", None, 400, "bad_parameter", "top_k"),
    ("explain=true&explain=false", None, 400, "bad_parameter", "explain"),
    ("explain=true", "text/csv", 406, "not_acceptable", "explanations"),
])
def test_lambda_refuses_bad_explain_parameters(handler, holdout_records, query, accept, status, kind,
                                               named) -> None:
    event = http_v2_event(json.dumps(holdout_records[:2]))
    event["rawQueryString"] = query
    if accept:
        event["headers"]["accept"] = accept
    got, answer = _lambda(handler, event)
    assert got == status and answer["kind"] == kind and named in answer["error"], answer


def test_serve_answers_the_same_explanations_over_http(churn_bundle: Path, predictor, holdout_records,
                                                       tmp_path: Path) -> None:
    rows = holdout_records[:3]
    with ServeProcess(churn_bundle, log_path=tmp_path / "serve.log") as served:
        status, answer = request("POST", f"{served.url}/invocations?explain=true&top_k=2",
                                 json.dumps({"instances": rows}).encode(), {"Content-Type": "application/json"})
        assert status == 200, answer
        assert answer["explanations"] == _expected(predictor, rows, 2)
        status, answer = request("POST", f"{served.url}/invocations?explain=nope", json.dumps(rows).encode(),
                                 {"Content-Type": "application/json"})
        assert status == 400 and answer["kind"] == "bad_parameter"


def test_a_model_without_an_exact_explainer_answers_approximately_and_says_so(handler, holdout_records, tmp_path,
                                                                               monkeypatch, churn_split) -> None:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import CHURN_LABEL
    from mlship.local.train import churn_pipeline, make_estimator

    train, holdout = churn_split
    pipe = churn_pipeline("hgb").set_params(model=make_estimator("mlp"))
    pipe.fit(train.drop(columns=[CHURN_LABEL]), train[CHURN_LABEL])
    bundle = export_bundle(pipe, holdout, CHURN_LABEL, tmp_path / "mlp", name="mlp", version="1")
    monkeypatch.setenv("MODEL_URI", str(bundle))
    handler.reset()
    event = http_v2_event(json.dumps(holdout_records[:2]))
    event["rawQueryString"] = "explain=true"
    status, answer = _lambda(handler, event)
    assert status == 200 and len(answer["predictions"]) == 2
    assert "explanation_unavailable" not in answer and len(answer["explanations"]) == 2
    for row in answer["explanations"]:
        assert row["method"] == "sampling" and row["exact"] is False and row["model_calls"] > 0
        assert row["output_space"] == "probability"
