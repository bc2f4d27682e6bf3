"""The shadow report's measures on hand-made records, the data-capture variant of a key, and the
gate's shadow thresholds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlship.evaluation.gate import ShadowLimits, Thresholds, shadow_checks
from mlship.monitoring.shadow import ShadowReportError, pair
from mlship.monitoring.shadow_report import ShadowSpec, build_report
from mlship.runtime.records import data_capture_variant, object_records


def _pair(i: int, champion: int, shadow: int, p: float, q: float, *, contract: str = "monthly",
          error: str | None = None) -> list[dict[str, Any]]:
    base = {"request_id": f"r{i // 2}", "row": i % 2, "time": "2026-12-01T10:00:00.000Z", "source": "lambda",
            "variant": "7", "alias": "live", "inputs": {"contract": contract, "age": 30 + i}}
    primary = {**base, "model": {"name": "churn", "version": "1"},
               "outputs": {"prediction": champion, "probabilities": [1 - p, p]}}
    other = {**base, "model": {"name": "churn", "version": "2"}, "role": "shadow", "shadow_error": error,
             "shadow_latency_ms": 2.0, "primary_latency_ms": 1.0,
             "outputs": None if error else {"prediction": shadow, "probabilities": [1 - q, q]}}
    return [primary, other]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1), st.floats(0, 1), st.floats(0, 1)), min_size=1,
                max_size=60))
def test_agreement_and_deltas_equal_a_hand_computation(rows):
    from statsmodels.stats.proportion import proportion_confint

    records = [r for i, (a, b, p, q) in enumerate(rows) for r in _pair(i, a, b, p, q)]
    report = build_report(records, ShadowSpec(), labels=None)
    agree = sum(a == b for a, b, _, _ in rows)
    lower, upper = proportion_confint(agree, len(rows), alpha=0.05, method="wilson")
    assert report["agreement"]["agree"] == agree and report["agreement"]["rows"] == len(rows)
    assert report["agreement"]["lower"] == pytest.approx(lower) and report["agreement"]["upper"] == pytest.approx(upper)
    assert report["delta"]["max"] == pytest.approx(max(abs(p - q) for _, _, p, q in rows))
    assert sum(g["rows"] for g in report["by_class"].values()) == len(rows)


def test_errors_latency_and_slices():
    records = _pair(0, 1, 1, 0.9, 0.8, contract="yearly") + _pair(1, 0, 1, 0.2, 0.7) + \
        _pair(2, 0, 0, 0.1, 0.1, error="timeout") + _pair(3, 1, 0, 0.6, 0.4)
    report = build_report(records, ShadowSpec(), labels=None)
    assert report["errors"] == {"rows": 4, "errors": 1, "rate": 0.25, "by_kind": {"timeout": 1}, "primary_rate": 0.0}
    assert report["agreement"]["rows"] == 3  # the timed-out row has no shadow answer
    assert report["by_slice"]["contract"] == {"monthly": {"rows": 2, "disagreement": 1.0},
                                              "yearly": {"rows": 1, "disagreement": 0.0}}
    assert report["latency"]["shadow_ms"]["p50"] == 2.0 and report["latency"]["primary_ms"]["p50"] == 1.0


def test_labelled_rows_get_mcnemar_on_the_same_rows():
    from statsmodels.stats.contingency_tables import mcnemar

    records, labels = [], {}
    outcomes = [(1, 1, 1)] * 30 + [(1, 0, 1)] * 9 + [(0, 1, 1)] * 2 + [(0, 0, 1)] * 5
    for i, (a, b, y) in enumerate(outcomes):
        records += _pair(i, a, b, 0.5, 0.5)
        labels[(f"r{i // 2}", i % 2)] = y
    report = build_report(records, ShadowSpec(), labels=labels)
    lab = report["labelled"]
    assert lab["table"] == [[30, 9], [2, 5]]
    assert lab["p_value"] == pytest.approx(mcnemar([[30, 9], [2, 5]], exact=True).pvalue)
    assert lab["improvement"] == pytest.approx((32 - 39) / 46)


def _capture_line(event_id: str, label: int) -> str:
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT", "encoding": "JSON",
                          "data": json.dumps({"contract": "monthly"})},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT", "encoding": "JSON",
                           "data": json.dumps({"predictions": [label], "probabilities": [[0.4, 0.6]],
                                               "model": {"name": "churn", "version": "1"}})}},
        "eventMetadata": {"eventId": event_id, "inferenceTime": "2026-12-01T10:00:00Z"}, "eventVersion": "0"})


def test_endpoint_variants_come_from_the_data_capture_keys_and_pair_by_inference_id():
    assert data_capture_variant("datacapture/ep/blue/2026/12/01/10/x.jsonl") == "blue"
    assert data_capture_variant("inference-records/model=churn/version=1/date=2026-12-01/hour=10/x.gz") is None
    blue = list(object_records("dc/ep/blue/2026/12/01/10/a.jsonl", "\n".join(
        _capture_line(f"e{i}", i % 2) for i in range(10)).encode()))
    shadow = list(object_records("dc/ep/shadow-1/2026/12/01/10/b.jsonl", "\n".join(
        _capture_line(f"e{i}", 1) for i in range(10)).encode()))
    assert {r["variant"] for r in blue} == {"blue"} and {r["variant"] for r in shadow} == {"shadow-1"}
    report = build_report(blue + shadow, ShadowSpec(shadow_variant="shadow-1"), labels=None)
    assert report["agreement"]["agree"] == 5 and report["rows"]["joined"] == 10
    with pytest.raises(ShadowReportError, match="variant 'green'"):
        build_report(blue + shadow, ShadowSpec(shadow_variant="green"), labels=None)
    assert len(pair(blue, shadow_variant="shadow-1")) == 0


def _report(rows: int, lower: float, p99: float, error_rate: float, improvement: float | None) -> dict[str, Any]:
    labelled = None if improvement is None else {"metric": "accuracy", "improvement": improvement, "primary": 0.8}
    return {"id": "x", "created": "now", "agreement": {"rows": rows, "lower": lower},
            "delta": {"p99": p99}, "errors": {"rate": error_rate}, "labelled": labelled}


def test_the_gate_judges_the_attached_shadow_report():
    limits = ShadowLimits(min_agreement_lower=0.99, max_delta_p99=0.05, max_error_rate=0.01, max_metric_drop=0.0,
                          min_rows=100)
    good = shadow_checks(_report(500, 0.995, 0.01, 0.0, 0.01), limits)
    assert all(c.passed for c in good) and len(good) == 5
    bad = {c.name: c.passed for c in shadow_checks(_report(50, 0.97, 0.2, 0.05, -0.02), limits)}
    assert not any(bad.values())
    assert not shadow_checks(None, limits)[0].passed
    assert Thresholds.model_validate({"shadow": {"min_agreement_lower": 0.99}}).shadow.min_agreement_lower == 0.99
