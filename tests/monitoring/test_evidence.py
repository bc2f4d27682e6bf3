"""No verdict without evidence: a window with fewer rows than ``min_rows`` gets ``insufficient_data``
(statistics shown, every verdict None, no DriftDetected event, no drift metric datum), prediction
drift without a prediction baseline is "not computed" (never "no"), and the default ``min_rows``
is checked by simulation: at that many rows the drift test keeps its false-positive rate and
detects a medium shift (0.5 sigma) almost always."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mlship.cli.root import app
from mlship.stats.drift import INSUFFICIENT_DATA, NOT_COMPUTED, DriftAccumulator, DriftThresholds
from mlship.stats.profile import build_profile


def _profile(seed: int = 0, rows: int = 5000) -> dict:
    rng = np.random.default_rng(seed)
    return build_profile({"x": rng.normal(size=rows)}, {"x": True})


def test_a_six_row_window_sends_no_event_and_says_why(moto_env: dict, churn_bundle: Path) -> None:
    from mlship.aws.clients import client
    from mlship.monitoring import MonitorConfig, run_monitor
    from mlship.runtime.predictor import Predictor
    from monitoring.helpers import send_traffic

    bucket = f"mlship-evidence-{uuid.uuid4().hex[:8]}"
    client("s3").create_bucket(Bucket=bucket)
    send_traffic(Predictor.load(churn_bundle), bucket, 6, seed=3, shift=1.0, request_rows=3)
    result = run_monitor(MonitorConfig(model_uri=str(churn_bundle), records_bucket=bucket, reports_bucket=bucket))
    drift = result.report["drift"]
    assert result.events == [] and drift["rows"] == 6
    assert drift["status"] == INSUFFICIENT_DATA and "6 rows" in drift["reason"] and "min_rows 100" in drift["reason"]
    assert drift["dataset_drift"] is None and drift["prediction_drift"] is None and drift["share"] is None
    assert all(f["drifted"] is None and f["ks_statistic"] is not None
               for f in drift["features"].values() if f["type"] == "numeric")  # shown, not judged
    assert result.summary()["drift_status"] == INSUFFICIENT_DATA
    assert "No drift verdict" in result.html and "6 rows" in result.html
    published = {m.name for m in result.metrics}
    assert "Rows" in published and not published & {"DriftShare", "DatasetDrift", "FeatureDrift", "PredictionDrift"}


def test_prediction_drift_without_a_baseline_is_not_computed() -> None:
    rng = np.random.default_rng(1)
    report = DriftAccumulator(_profile()).update({"x": rng.normal(size=500)}).result()
    assert report.prediction_drift is None and report.prediction_status == NOT_COMPUTED
    assert "prediction drift: not computed" in report.summary()
    as_json = report.to_dict()
    assert as_json["prediction_drift"] is None and "no prediction distribution" in as_json["prediction_reason"]


def test_mlship_drift_on_a_bundle_says_not_computed_for_predictions(churn_bundle: Path, tmp_path: Path) -> None:
    from mlship.local.datasets import make_churn

    make_churn(800, seed=9).drop(columns=["churned"]).to_csv(tmp_path / "rows.csv", index=False)
    done = CliRunner().invoke(app, ["drift", str(churn_bundle), str(tmp_path / "rows.csv"), "--out",
                                    str(tmp_path / "r")])
    assert done.exit_code == 0, done.output
    assert "prediction drift: not computed" in done.stdout and "prediction drift: no;" not in done.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text())["drift"]
    assert report["prediction_status"] == NOT_COMPUTED and report["predictions"] == {}


def test_a_small_dataset_exits_without_a_drift_verdict(churn_bundle: Path, tmp_path: Path) -> None:
    from mlship.local.datasets import make_churn

    make_churn(20, seed=9, shift=1.0).drop(columns=["churned"]).to_csv(tmp_path / "few.csv", index=False)
    done = CliRunner().invoke(app, ["drift", str(churn_bundle), str(tmp_path / "few.csv"), "--out",
                                    str(tmp_path / "r"), "--fail-on-drift"])
    assert done.exit_code == 0, done.output  # no verdict is not drift: CI is not failed on 20 rows
    assert "no drift verdict: 20 rows" in done.stdout


@pytest.mark.parametrize("value", [0, -5, 2.5, "100"])
def test_min_rows_must_be_a_positive_whole_number(value: object) -> None:
    with pytest.raises(ValueError, match="min_rows"):
        DriftThresholds.from_dict({"min_rows": value})


def test_the_default_min_rows_keeps_the_error_rate_and_has_power() -> None:
    """Simulated at exactly ``min_rows`` current rows against a 5,000-row baseline profile."""
    n, trials = DriftThresholds().min_rows, 300
    profile = _profile(seed=2)
    rng = np.random.default_rng(3)

    def drifted(shift: float) -> float:
        hits = [DriftAccumulator(profile).update({"x": rng.normal(shift, 1.0, n)}).result().features["x"]["drifted"]
                for _ in range(trials)]
        return float(np.mean(hits))

    false_positives = drifted(0.0)
    power = drifted(0.5)
    assert false_positives <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials), false_positives  # ~alpha, binned
    assert power >= 0.95, power
