"""Sticky A/B assignment (``mlship.runtime.assignment``) and the prediction Lambda's use of it in
front of an endpoint (``AB_VARIANTS``): a unit keeps its variant, shares follow the weights."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlship.runtime.assignment import assign, parse_weights, unit_point
from realtime.helpers import LambdaContext, rest_v1_event


@given(st.text(min_size=1, max_size=40), st.text(max_size=10))
def test_a_unit_keeps_its_variant_and_the_salt_decides(unit, salt):
    weights = [("blue", 0.5), ("green", 0.5)]
    assert assign(unit, weights, salt) == assign(unit, weights, salt)
    assert 0.0 <= unit_point(unit, salt) < 1.0


@pytest.mark.parametrize("weights", [[("a", 0.5), ("b", 0.5)], [("a", 0.9), ("b", 0.1)],
                                     [("a", 1), ("b", 2), ("c", 1)]])
def test_shares_follow_the_weights(weights):
    from scipy.stats import chisquare

    n = 20_000
    counts = Counter(assign(f"user-{i}", weights, "exp-1") for i in range(n))
    total = sum(w for _, w in weights)
    expected = [n * w / total for _, w in weights]
    assert chisquare([counts[name] for name, _ in weights], expected).pvalue > 1e-3  # deterministic ids


def test_a_new_salt_reassigns_about_half_the_units():
    weights = [("a", 0.5), ("b", 0.5)]
    moved = sum(assign(f"u{i}", weights, "one") != assign(f"u{i}", weights, "two") for i in range(10_000))
    assert 4_700 < moved < 5_300


BAD_PARTS = st.one_of(st.just("blue"), st.just("blue=0"), st.just("blue=-1"), st.just("=0.5"),
                      st.just("blue=x"), st.just("blue=inf"), st.just("blue=nan"))


@given(BAD_PARTS)
def test_bad_weights_are_refused_naming_the_part(part):
    with pytest.raises(ValueError, match="NAME=WEIGHT|twice|two variants"):
        parse_weights(f"green=0.5,{part}")


def test_one_variant_or_a_repeated_name_is_refused():
    with pytest.raises(ValueError, match="two variants"):
        parse_weights("blue=1")
    with pytest.raises(ValueError, match="twice"):
        parse_weights("blue=1,blue=2")


def _stubbed_answers(stub: Any, expected_targets: list[str | None]) -> None:
    from botocore.stub import ANY

    for target in expected_targets:
        params = {"EndpointName": "churn-ab", "ContentType": "application/json", "Accept": "application/json",
                  "Body": ANY, "InferenceId": ANY, **({"TargetVariant": target} if target else {})}
        body = json.dumps({"predictions": [1], "model": {"name": "churn", "version": "1"}}).encode()
        import io

        from botocore.response import StreamingBody

        stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body)),
                                              "InvokedProductionVariant": target or "blue"}, params)


def test_the_lambda_sends_a_units_requests_to_its_variant(handler, monkeypatch, holdout_records):
    """botocore's Stubber: the assertion is on the request the handler sends (``TargetVariant``);
    the plane's routing by it is tested with the endpoint rollouts."""
    from botocore.stub import Stubber

    from mlship.aws.clients import client

    monkeypatch.setenv("PREDICT_BACKEND", "sagemaker")
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "churn-ab")
    monkeypatch.setenv("AB_VARIANTS", "blue=0.5,green=0.5")
    monkeypatch.setenv("AB_UNIT_FIELD", "user_id")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    handler.reset()
    weights = [("blue", 0.5), ("green", 0.5)]
    by_header = {"x-mlship-unit": "user-7"}
    record = {**holdout_records[0], "user_id": "user-42"}
    events = [rest_v1_event(json.dumps(record)), rest_v1_event(json.dumps(holdout_records[0]))]
    with_header = rest_v1_event(json.dumps(holdout_records[0]))
    with_header["headers"].update(by_header)
    events.append(with_header)
    targets = [assign("user-42", weights, "churn-ab"), None, assign("user-7", weights, "churn-ab")]
    runtime = client("sagemaker-runtime")
    with Stubber(runtime) as stub:
        _stubbed_answers(stub, targets * 2)
        for _ in range(2):  # the same units, the same variants
            for event, target in zip(events, targets, strict=True):
                resp = handler.handler(event, LambdaContext())
                assert resp["statusCode"] == 200, resp
                assert json.loads(resp["body"])["variant"] == (target or "blue")
        stub.assert_no_pending_responses()


def test_ab_variants_need_the_sagemaker_backend(handler, monkeypatch, holdout_records):
    monkeypatch.setenv("AB_VARIANTS", "blue=0.5,green=0.5")
    handler.reset()
    resp = handler.handler(rest_v1_event(json.dumps(holdout_records[0])), LambdaContext())
    assert resp["statusCode"] == 503 and "AB_VARIANTS" in json.loads(resp["body"])["reason"]
