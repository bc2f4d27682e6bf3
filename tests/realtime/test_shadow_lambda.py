"""The prediction Lambda's shadow model (``SHADOW_MODEL_URI``): scored after the champion on a copy
of each captured request, within its budget, written to the same capture line with its version,
never changing or failing the answer."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from mlship.runtime.records import parse_line
from realtime.helpers import LambdaContext, rest_v1_event


def _answer(handler: Any, body: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[str]]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    resp = handler.handler(rest_v1_event(json.dumps(body)), LambdaContext())
    monkeypatch.setattr(sys, "stdout", sys.__stdout__)
    assert resp["statusCode"] == 200, resp
    return json.loads(resp["body"]), out.getvalue().splitlines()


def _capture(lines: list[str]) -> str:
    (line,) = [x for x in lines if x.startswith('{"capture"')]
    return line


def test_the_shadow_scores_the_same_rows_and_never_changes_the_answer(handler, monkeypatch, challenger_bundle,
                                                                      holdout_records):
    rows = holdout_records[:40]
    plain, _ = _answer(handler, {"instances": rows}, monkeypatch)
    monkeypatch.setenv("SHADOW_MODEL_URI", str(challenger_bundle))
    monkeypatch.setenv("SHADOW_BUDGET_MS", "5000")
    handler.reset()
    shadowed, lines = _answer(handler, {"instances": rows}, monkeypatch)
    assert shadowed == {**plain, "request_id": shadowed["request_id"]}  # the client's answer is the champion's

    records = parse_line(_capture(lines), shadow=True)
    primary = [r for r in records if r.get("role") != "shadow"]
    shadow = [r for r in records if r.get("role") == "shadow"]
    assert [r["row"] for r in shadow] == [r["row"] for r in primary] == list(range(40))
    assert all(r["model"] == {"name": "churn", "version": "2"} and r["shadow_error"] is None for r in shadow)
    assert all(r["model"] == {"name": "churn", "version": "1"} for r in primary)
    assert [r["inputs"] for r in shadow] == rows
    from mlship.runtime.predictor import Predictor

    expected = Predictor.load(challenger_bundle).predict(rows)
    assert [r["outputs"]["prediction"] for r in shadow] == expected.labels.tolist()
    assert parse_line(_capture(lines)) == primary  # without shadow=True, readers see the champion only
    emf = [json.loads(x) for x in lines if '"_aws"' in x]
    assert emf[0]["ShadowLatency"] > 0 and "ShadowErrors" not in emf[0]


def test_a_shadow_over_its_budget_times_out_then_is_skipped_while_busy(handler, monkeypatch, challenger_bundle,
                                                                        holdout_records):
    """The shadow's model is held inside ``predict`` until released: a model slower than any budget,
    deterministically (a real slow model would make the test slow, or flaky under load)."""
    import threading

    monkeypatch.setenv("SHADOW_MODEL_URI", str(challenger_bundle))
    monkeypatch.setenv("SHADOW_BUDGET_MS", "20")
    handler.reset()
    shadow_predictor = handler.service().shadow._lifecycle.load()
    release, real_predict = threading.Event(), shadow_predictor.predict

    def held(data: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return real_predict(data, **kwargs)

    monkeypatch.setattr(shadow_predictor, "predict", held)
    try:
        answer, lines = _answer(handler, holdout_records[0], monkeypatch)
        assert len(answer["predictions"]) == 1
        first = json.loads(_capture(lines))["shadow"]
        assert first["error"] == "timeout" and first["response"] is None and first["latency_ms"] >= 20
        _, lines = _answer(handler, holdout_records[1], monkeypatch)  # the first one is still being scored
        second = json.loads(_capture(lines))["shadow"]
        assert second["error"] == "skipped" and second["latency_ms"] == 0.0
        emf = [json.loads(x) for x in lines if '"_aws"' in x]
        assert emf[0]["ShadowErrors"] == 1.0
    finally:
        release.set()


def test_a_shadow_that_refuses_or_cannot_load_is_an_error_kind_not_a_failure(handler, monkeypatch, tmp_path,
                                                                             holdout_records):
    monkeypatch.setenv("SHADOW_MODEL_URI", str(tmp_path / "missing-bundle"))
    monkeypatch.setenv("SHADOW_BUDGET_MS", "2000")
    handler.reset()
    answer, lines = _answer(handler, holdout_records[0], monkeypatch)
    assert len(answer["predictions"]) == 1
    part = json.loads(_capture(lines))["shadow"]
    assert part["error"] == "model_unavailable" and part["model"] == {"name": None, "version": None}


@pytest.mark.parametrize(("env", "named"), [
    ({"SHADOW_MODEL_URI": "mlship://churn@challenger"}, "not an alias"),
    ({"SHADOW_MODEL_URI": "/tmp/x", "CAPTURE_MODE": "off"}, "CAPTURE_MODE=log"),
    ({"SHADOW_MODEL_URI": "/tmp/x", "SHADOW_BUDGET_MS": "0"}, "SHADOW_BUDGET_MS"),
])
def test_a_shadow_misconfiguration_is_a_503_naming_the_variable(handler, monkeypatch, holdout_records, env, named):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handler.reset()
    resp = handler.handler(rest_v1_event(json.dumps(holdout_records[0])), LambdaContext())
    assert resp["statusCode"] == 503
    assert named in json.loads(resp["body"])["reason"]


def test_uncaptured_requests_are_not_shadowed(handler, monkeypatch, challenger_bundle, holdout_records):
    monkeypatch.setenv("SHADOW_MODEL_URI", str(challenger_bundle))
    monkeypatch.setenv("CAPTURE_SAMPLING_PERCENTAGE", "0")
    handler.reset()
    _, lines = _answer(handler, holdout_records[0], monkeypatch)
    emf = [json.loads(x) for x in lines if '"_aws"' in x]
    assert not [x for x in lines if x.startswith('{"capture"')] and "ShadowLatency" not in emf[0]
