"""A retraining run end to end against moto: fresh (drifted) data → validation → the user's trainer
→ a signed export → the registry → the gate against the champion on the same fresh holdout rows
→ challenger; a worse model ends gated, a bad batch stops before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.retrain.pipeline import STEPS, RunInputs, list_runs, run_retraining

TRAINER = "mlship.local.train:train_pipeline"


@pytest.fixture
def registry(aws, churn_bundle: Path) -> Any:
    from mlship.aws.clients import client
    from mlship.registry.store import Registry

    client("s3").create_bucket(Bucket="retrain-registry")
    reg = Registry("retrain-registry", sagemaker=False)
    record, _ = reg.register(churn_bundle)
    reg.set_alias("churn", "champion", record.version, reason="first")
    return reg


def _fresh(tmp_path: Path, *, shift: float = 1.0, shuffle_labels: bool = False, rows: int = 2500) -> str:
    from mlship.local.datasets import make_churn

    frame = make_churn(rows, seed=21, shift=shift)
    if shuffle_labels:  # labels unrelated to the features: whatever is trained on them is worse
        frame["churned"] = np.random.default_rng(0).permutation(frame["churned"].to_numpy())
    out = tmp_path / "fresh"
    out.mkdir()
    frame.iloc[: rows // 2].to_parquet(out / "part-0.parquet")
    frame.iloc[rows // 2:].to_csv(out / "part-1.csv", index=False)
    return str(out)


def _inputs(registry: Any, tmp_path: Path, data_uri: str, *, min_improvement: float, min_rows: int = 500) -> Any:
    from mlship.config import RetrainConfig
    from mlship.evaluation.gate import Thresholds

    config = RetrainConfig(trainer=TRAINER, data_uri=data_uri, min_rows=min_rows)
    thresholds = Thresholds.model_validate({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": min_improvement}},
                                            "bootstrap": 0})
    return RunInputs(registry, "churn", config, thresholds, tmp_path / "work")


def test_drifted_data_is_retrained_and_the_challenger_passes_the_gate(registry, tmp_path):
    seen = []
    record = run_retraining(_inputs(registry, tmp_path, _fresh(tmp_path), min_improvement=-0.05), "run-1",
                            {"kind": "DriftDetected"}, progress=seen.append)
    assert record.outcome == "succeeded", [(s.name, s.outcome, s.detail) for s in record.steps]
    assert [s.name for s in record.steps] == list(STEPS) == [s.name for s in seen]
    assert record.version == "2" and registry.get_alias("churn", "challenger").version == "2"
    assert registry.get_alias("churn", "champion").version == "1"  # only the release loop moves it
    assert "2500 labelled rows" in record.steps[0].detail
    assert list_runs(registry, "churn")[0]["outcome"] == "succeeded"


def test_a_worse_model_is_gated_and_nothing_moves(registry, tmp_path):
    record = run_retraining(_inputs(registry, tmp_path, _fresh(tmp_path, shuffle_labels=True), min_improvement=0.05),
                            "run-2", {"kind": "PerformanceDegraded"})
    assert record.outcome == "gated" and record.steps[-1].name == "gate"
    assert "roc_auc" in record.steps[-1].detail and record.steps[-1].report is not None
    assert registry.get_alias("churn", "challenger") is None and registry.get_alias("churn", "champion").version == "1"
    assert [v.version for v in registry.list_versions("churn")] == ["1", "2"]  # kept, with its gate report


def test_a_batch_that_fails_validation_is_never_trained_on(registry, tmp_path):
    record = run_retraining(_inputs(registry, tmp_path, _fresh(tmp_path, rows=600), min_improvement=0.0,
                                    min_rows=1000), "run-3", {"kind": "Manual"})
    assert record.outcome == "failed" and [s.name for s in record.steps] == ["collect", "validate"]
    assert "fewer than the 1000 required" in record.steps[-1].detail and record.steps[-1].report["passed"] is False
    assert [v.version for v in registry.list_versions("churn")] == ["1"]


@pytest.mark.parametrize(("change", "step", "named"), [
    ({"trainer": "no_such.module:fit"}, "train", "cannot import no_such"),
    ({"data_uri": None}, "collect", "data_uri is not set"),
    ({"data_uri": "/nonexistent/fresh"}, "collect", "does not exist"),
])
def test_a_broken_configuration_stops_at_its_step(registry, tmp_path, change, step, named):
    inputs = _inputs(registry, tmp_path, _fresh(tmp_path), min_improvement=0.0)
    inputs.config = inputs.config.model_copy(update=change)
    record = run_retraining(inputs, "run-4", {"kind": "Manual"})
    assert record.outcome == "failed" and record.steps[-1].name == step and named in record.steps[-1].detail
    assert registry.get_alias("churn", "challenger") is None
