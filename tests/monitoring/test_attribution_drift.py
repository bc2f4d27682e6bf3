"""Attribution drift: the window's mean |contribution| per field against the holdout's, in the monitor run
(moto S3, CloudWatch, EventBridge -> SQS) and in its parts (the row sample, the comparison, the baseline)."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.aws.clients import client
from mlship.local.datasets import make_churn
from mlship.monitoring import MonitorConfig, run_monitor
from mlship.monitoring.attribution import (
    NO_BASELINE,
    AttributionBaseline,
    RowSample,
    attribution_drift,
    compare,
    read_baseline,
)
from mlship.runtime.predictor import Predictor
from mlship.runtime.sources import open_bundle
from monitoring.helpers import drain, event_queue, send_traffic

SAMPLE = 300  # rows explained per run here (the default is 500): each window below has 600


def _copy(src: Path, dest: Path, key: Path, explain: dict[str, Any]) -> Path:
    """A re-signed copy of ``src`` whose manifest's ``explain`` entry is ``explain`` (the manifest is
    not among the hashed files; its signature is redone)."""
    from mlship.runtime.bundle import MANIFEST, SIGNATURE, sign_bundle, write_manifest
    from mlship.runtime.signing import load_private_key

    shutil.copytree(src, dest)
    manifest = json.loads((dest / MANIFEST).read_text())
    manifest["explain"] = explain
    (dest / SIGNATURE).unlink(missing_ok=True)
    write_manifest(dest, manifest)
    sign_bundle(dest, load_private_key(key))
    return dest


@pytest.fixture(scope="module")
def baseline_summary(churn_bundle: Path, churn_split: tuple[Any, Any]) -> dict[str, Any]:
    """The holdout baseline export stores; computed the way export does (500 holdout rows through the
    bundle's explainer, :mod:`mlship.evaluation.attributions`) while exported bundles carry none."""
    from mlship.evaluation.attributions import attribution_summary, global_attributions

    stored = (json.loads((churn_bundle / "manifest.json").read_text()).get("explain") or {}).get("summary")
    if stored:
        return dict(stored)
    predictor = Predictor.load(churn_bundle)
    columns = predictor.schema.validate(churn_split[1], allow_extra=True).columns
    return attribution_summary(global_attributions(predictor, columns, max_rows=500))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, churn_bundle: Path, signing_keys: Path,
            baseline_summary: dict[str, Any]) -> dict[str, Path]:
    """The churn bundle with the attribution baseline, without one, and with a baseline but no explainer."""
    root = tmp_path_factory.mktemp("attribution")
    key = signing_keys / "mlship.key"
    entry = json.loads((churn_bundle / "manifest.json").read_text())["explain"]
    without = {k: v for k, v in entry.items() if k != "summary"}
    return {"baseline": _copy(churn_bundle, root / "baseline", key, {**entry, "summary": baseline_summary}),
            "none": _copy(churn_bundle, root / "none", key, without),
            "unexplainable": _copy(churn_bundle, root / "unexplainable", key,
                                   {"method": "none", "reason": "not a tree ensemble", "summary": baseline_summary})}


@pytest.fixture
def env(aws: None, churn_bundle: Path) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"mlship-attr-{suffix}"
    client("s3").create_bucket(Bucket=bucket)
    return {"bucket": bucket, "queue": event_queue(suffix), "predictor": Predictor.load(churn_bundle)}


def _run(env: dict[str, Any], bundle: Path, frame: Any) -> Any:
    send_traffic(env["predictor"], env["bucket"], len(frame), seed=0, frame=frame)
    config = MonitorConfig(model_uri=str(bundle), records_bucket=env["bucket"], reports_bucket=env["bucket"],
                           metrics_mode="api", attribution_sample_rows=SAMPLE)
    return run_monitor(config, now=datetime.now(UTC) + timedelta(seconds=1))


def _metric(name: str, **dims: str) -> list[float]:
    now = datetime.now(UTC)
    resp = client("cloudwatch").get_metric_statistics(
        Namespace="mlship", MetricName=name, Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5), Period=60, Statistics=["Maximum"])
    return [p["Maximum"] for p in resp["Datapoints"]]


def _page(env: dict[str, Any], result: Any) -> str:
    key = result.report_uris["html"].split(f"s3://{env['bucket']}/", 1)[1]
    return client("s3").get_object(Bucket=env["bucket"], Key=key)["Body"].read().decode()


def test_a_window_like_the_holdout_is_quiet_and_explains_at_most_the_sample(
        env: dict[str, Any], bundles: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    explained: list[int] = []
    real = Predictor.explainer

    def counting(self: Predictor) -> Any:  # the real explainer, its calls counted
        explainer = real(self)
        if not getattr(explainer, "_counted", False):
            inner = explainer.explain_columns
            explainer.explain_columns = lambda cols: (explained.append(len(next(iter(cols.values())))),
                                                      inner(cols))[1]
            explainer._counted = True
        return explainer

    monkeypatch.setattr(Predictor, "explainer", counting)
    result = _run(env, bundles["baseline"], make_churn(600, seed=21))
    section = result.report["attribution_drift"]
    assert section["status"] == "computed" and section["drifted"] is False
    assert section["value"] < section["threshold"] == 0.05
    assert (section["rows_in_window"], section["rows_sampled"], section["rows_explained"]) == (600, SAMPLE, SAMPLE)
    assert sum(explained) == SAMPLE and section["rows_refused"] == 0
    assert set(section["fields"]) == set(env["predictor"].schema.names)
    assert "AttributionDrift" not in result.report["events"] and not result.attribution_drift
    assert [e["detail-type"] for e in drain(env["queue"])] == []
    assert _metric("AttributionShift", Model="churn", Version="1") == [pytest.approx(section["value"])]
    assert _metric("AttributionDrift", Model="churn", Version="1") == [0.0]
    page = _page(env, result)
    assert "no attribution drift" in page and 'aria-label="holdout vs window mean |contribution| per field' in page


def test_a_shifted_informative_field_moves_its_attribution_and_sends_the_event(
        env: dict[str, Any], bundles: dict[str, Path]) -> None:
    frame = make_churn(600, seed=24)
    frame["monthly_charges"] = frame["monthly_charges"] + 60.0
    result = _run(env, bundles["baseline"], frame)
    section = result.report["attribution_drift"]
    assert section["status"] == "computed" and section["drifted"] is True
    assert section["value"] >= 2 * section["threshold"]
    charges = section["fields"]["monthly_charges"]
    assert section["top_fields"][0] == "monthly_charges"
    assert charges["share_shift"][0] > 0.05 and charges["rel_change"][0] > 0.3
    assert charges["window"][0] > charges["baseline"][0]
    assert result.attribution_drift and "AttributionDrift" in result.report["events"]
    assert any(a["type"] == "AttributionDrift" and "monthly_charges" in a["message"]
               for a in result.report["alerts"])
    events = {e["detail-type"]: e for e in drain(env["queue"])}
    detail = events["AttributionDrift"]["detail"]
    assert detail["top_fields"][0] == "monthly_charges" and detail["value"] == pytest.approx(section["value"])
    assert detail["model"] == {"name": "churn", "version": "1"} and detail["rows_explained"] == SAMPLE
    shift = _metric("FeatureAttributionShift", Model="churn", Version="1", Feature="monthly_charges")
    assert shift == [pytest.approx(charges["share_shift"][0])]
    assert _metric("AttributionDrift", Model="churn", Version="1") == [1.0]
    assert "DRIFTED" in _page(env, result)


def test_a_bundle_without_a_baseline_is_not_computed(env: dict[str, Any], bundles: dict[str, Path]) -> None:
    result = _run(env, bundles["none"], make_churn(600, seed=25))
    section = result.report["attribution_drift"]
    assert section["status"] == "not_computed" and section["drifted"] is None and section["value"] is None
    assert section["reason"] == NO_BASELINE
    assert result.summary()["attribution_drift"]["status"] == "not_computed"
    assert not {"AttributionShift", "AttributionDrift"} & {m.name for m in result.metrics}
    assert _metric("AttributionShift", Model="churn", Version="1") == []
    page = _page(env, result)
    assert "not computed" in page and "re-export it" in page and "no attribution drift" not in page


def _sample(frame: Any, size: int = SAMPLE) -> RowSample:
    names = list(frame.columns)
    sample = RowSample(names, size)
    sample.update({n: frame[n].to_numpy(dtype=object) for n in names}, len(frame))
    return sample


def test_a_model_without_an_explainer_is_not_computed(bundles: dict[str, Path]) -> None:
    section = attribution_drift(open_bundle(bundles["unexplainable"]), _sample(make_churn(200, seed=3)))
    assert section["status"] == "not_computed" and section["drifted"] is None
    assert "stores no explainer" in section["reason"] and "not a tree ensemble" in section["reason"]
    assert section["rows_sampled"] == 200


def test_refused_rows_are_counted_and_too_few_explained_rows_are_insufficient(bundles: dict[str, Path]) -> None:
    bundle = open_bundle(bundles["baseline"])
    features = Predictor(bundle).schema.names
    frame = make_churn(150, seed=4)[features]
    frame.loc[:39, "contract"] = "lifetime"  # not a category the encoder saw: the schema refuses the row
    computed = attribution_drift(bundle, _sample(frame))
    assert computed["status"] == "computed"
    assert (computed["rows_sampled"], computed["rows_explained"], computed["rows_refused"]) == (150, 110, 40)
    assert sum(computed["refused_reasons"].values()) == 40 and "contract" in next(iter(computed["refused_reasons"]))
    few = attribution_drift(bundle, _sample(frame.iloc[:130]))
    assert few["status"] == "insufficient_data" and few["drifted"] is None
    assert (few["rows_explained"], few["rows_refused"]) == (90, 40) and "fewer than the 100 needed" in few["reason"]
    empty = attribution_drift(bundle, RowSample(features, SAMPLE))
    assert empty["status"] == "insufficient_data" and empty["reason"] == "no rows in the window"


def test_the_row_sample_is_bounded_uniform_and_deterministic() -> None:
    def stream() -> RowSample:
        sample = RowSample(["i", "missing"], 100)
        for start in range(0, 10_000, 777):
            ids = np.arange(start, min(start + 777, 10_000))
            sample.update({"i": ids.astype(object)}, len(ids))
        return sample

    first, again = stream(), stream()
    assert first.seen == 10_000 and len(first.rows) == 100 and first.rows == again.rows
    ids = [r[0] for r in first.rows]
    assert len(set(ids)) == 100 and abs(np.mean(ids) - 5000) < 900 and max(ids) > 9000
    assert all(r[1] is None for r in first.rows)
    small = RowSample(["i"], 100)
    small.update({"i": np.arange(30).astype(object)}, 30)
    assert [r[0] for r in small.rows] == list(range(30))


def test_merged_samples_are_a_bounded_uniform_sample_of_both_streams() -> None:
    """Spark partitions' samples merged: at most ``size`` rows, each stream represented in proportion
    to the rows it saw (over many merges), every row from one of them; a small union is kept whole."""
    def sample(first: int, n: int) -> RowSample:
        out = RowSample(["i"], 100)
        out.update({"i": np.arange(first, first + n).astype(object)}, n)
        return out

    from_first = []
    for seed in range(200):
        merged = sample(0, 3_000)
        merged._rng = np.random.default_rng(seed)
        merged.merge(sample(3_000, 1_000))
        ids = [r[0] for r in merged.rows]
        assert merged.seen == 4_000 and len(ids) == 100 == len(set(ids)) and all(0 <= i < 4_000 for i in ids)
        from_first.append(sum(i < 3_000 for i in ids))
    assert abs(np.mean(from_first) - 75) < 2  # 3,000 of 4,000 rows: three quarters of the sample
    whole = sample(0, 30).merge(sample(30, 40))
    assert [r[0] for r in whole.rows] == list(range(70))  # under the bound: every row, in stream order
    assert sample(0, 0).merge(sample(0, 0)).rows == []


def _baseline(values: list[list[float]]) -> AttributionBaseline:
    return AttributionBaseline.from_summary({"targets": [1], "rows": 100, "method": "tree_shap",
                                             "output_space": "log-odds",
                                             "mean_abs": {f"f{i}": v for i, v in enumerate(values)}})


def test_the_statistic_is_the_total_variation_of_the_attribution_shares() -> None:
    base = _baseline([[1.0], [1.0], [2.0], [0.0]])
    scaled = compare(base, np.array([[3.0], [3.0], [6.0], [0.0]]), 0.05)
    assert scaled["value"] == pytest.approx(0.0) and scaled["drifted"] is False  # larger outputs alone: no drift
    moved = compare(base, np.array([[2.0], [1.0], [1.0], [0.0]]), 0.05)
    assert moved["value"] == pytest.approx(0.25) and moved["drifted"] is True
    assert moved["fields"]["f0"]["share_shift"] == [pytest.approx(0.25)]
    assert moved["fields"]["f0"]["rel_change"] == [pytest.approx(1.0)]
    assert moved["fields"]["f2"]["abs_change"] == [pytest.approx(-1.0)]
    assert moved["fields"]["f3"]["rel_change"] == [None]  # no baseline attribution: no relative change
    assert moved["max_relative_change"] == {"field": "f0", "target": 1, "value": pytest.approx(1.0)}
    assert moved["top_fields"][:2] == ["f0", "f2"]


def test_the_baseline_is_read_from_the_manifest_or_its_absence_explained(baseline_summary: dict[str, Any]) -> None:
    baseline, reason = read_baseline({"explain": {"method": "tree_shap", "summary": baseline_summary}})
    assert reason is None and baseline is not None and baseline.rows == baseline_summary["rows"]
    assert baseline.mean_abs.shape == (len(baseline_summary["mean_abs"]), 1)
    assert read_baseline({"explain": {"method": "tree_shap"}}) == (None, NO_BASELINE)
    assert read_baseline({}) == (None, NO_BASELINE)
    bad = {**baseline_summary, "mean_abs": {"age": [0.1, 0.2]}}
    none, why = read_baseline({"explain": {"summary": bad}})
    assert none is None and "cannot be read" in str(why) and "re-export" in str(why)


def test_without_onnxruntime_it_is_not_computed_and_says_why(bundles: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor Lambda's requirements have no onnxruntime: the section says so instead of failing the run."""
    import sys

    bundle = open_bundle(bundles["baseline"])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    section = attribution_drift(bundle, _sample(make_churn(200, seed=5)))
    assert section["status"] == "not_computed" and section["drifted"] is None
    assert section["reason"] == "onnxruntime is not installed where the monitor runs"
