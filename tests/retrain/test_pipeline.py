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

    # the release is configured: a gated or failed run never reaches it (its success is test_release's)
    config = RetrainConfig(trainer=TRAINER, data_uri=data_uri, min_rows=min_rows, release="canary",
                           from_records=False)
    thresholds = Thresholds.model_validate({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": min_improvement}},
                                            "bootstrap": 0})
    return RunInputs(registry, "churn", config, thresholds, tmp_path / "work")


def test_drifted_data_is_retrained_and_the_challenger_passes_the_gate(registry, tmp_path):
    seen = []
    inputs = _inputs(registry, tmp_path, _fresh(tmp_path), min_improvement=-0.05)
    inputs.config = inputs.config.model_copy(update={"release": "none"})
    record = run_retraining(inputs, "run-1", {"kind": "DriftDetected"}, progress=seen.append)
    assert record.outcome == "succeeded", [(s.name, s.outcome, s.detail) for s in record.steps]
    assert [s.name for s in record.steps] == list(STEPS) == [s.name for s in seen]
    assert record.version == "2" and registry.get_alias("churn", "challenger").version == "2"
    assert registry.get_alias("churn", "champion").version == "1"  # only the release loop moves it
    assert "stays challenger" in record.steps[-1].detail
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


@pytest.fixture
def user_trainers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A user's trainers that go wrong, importable as ``bad_trainers``."""
    import sys

    (tmp_path / "bad_trainers.py").write_text(
        "def raises(frame):\n"
        "    raise ValueError('column tenure has strings')\n"
        "def returns_a_dict(frame):\n"
        "    return {'coef': [1, 2]}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("bad_trainers", None)


@pytest.mark.parametrize(("change", "step", "named"), [
    ({"trainer": "no_such.module:fit"}, "train", "cannot import no_such"),
    ({"trainer": "bad_trainers:raises"}, "train", "column tenure has strings"),
    ({"trainer": "bad_trainers:returns_a_dict"}, "train", "dict"),
    ({"data_uri": None}, "collect", "no fresh labelled data"),
    ({"data_uri": "/nonexistent/fresh"}, "collect", "does not exist"),
    ({"parity_tolerance": 1e-15, "parity_max_share_over": 0.0}, "export", "parity"),
])
def test_a_broken_run_stops_at_its_step_and_moves_no_alias(registry, tmp_path, user_trainers, change, step, named):
    import json

    from mlship.aws.clients import client

    client("logs").create_log_group(logGroupName="/retrain-failures")
    client("events").put_rule(Name="failures", EventPattern=json.dumps({"detail-type": ["RetrainFailed"]}))
    client("events").put_targets(Rule="failures", Targets=[
        {"Id": "log", "Arn": "arn:aws:logs:us-east-1:123456789012:log-group:/retrain-failures"}])
    inputs = _inputs(registry, tmp_path, _fresh(tmp_path), min_improvement=0.0)
    inputs.config = inputs.config.model_copy(update=change)
    record = run_retraining(inputs, "run-4", {"kind": "Manual"})
    assert record.outcome == "failed" and record.steps[-1].name == step, [(s.name, s.detail) for s in record.steps]
    assert named in record.steps[-1].detail.lower() or named in record.steps[-1].detail
    assert registry.get_alias("churn", "challenger") is None and registry.get_alias("churn", "champion").version == "1"
    sent = client("logs").filter_log_events(logGroupName="/retrain-failures")["events"]
    assert [json.loads(e["message"])["detail"]["step"] for e in sent] == [step]


def _serve_records(registry: Any, frame: Any, *, hours_ago: float, labelled: int) -> None:
    """``frame``'s rows as served inference records of v1 (one request each), ``labelled`` of them
    with a late label, and one object of garbage lines beside them."""
    import json
    from datetime import UTC, datetime, timedelta

    from mlship.runtime.records import DEFAULT_PREFIX, LABELS_PREFIX, encode, make_records, object_key

    stamp = datetime.now(UTC) - timedelta(hours=hours_ago)
    inputs = json.loads(frame.drop(columns=["churned"]).to_json(orient="records"))
    records = [r for i, row in enumerate(inputs)
               for r in make_records(f"req-{hours_ago}-{i}", "churn", "1", [row], [{"prediction": 0}],
                                     source="lambda", ts=stamp)]
    s3 = registry.s3
    s3.put_object(Bucket=registry.bucket, Key=object_key(DEFAULT_PREFIX, "churn", "1", stamp), Body=encode(records))
    s3.put_object(Bucket=registry.bucket, Key=object_key(DEFAULT_PREFIX, "churn", "1", stamp), Body=b"not json\n")
    labels = "\n".join(json.dumps({"request_id": f"req-{hours_ago}-{i}", "row": 0, "label": int(y)})
                       for i, y in enumerate(frame["churned"].iloc[:labelled]))
    s3.put_object(Bucket=registry.bucket, Key=f"{LABELS_PREFIX}/model=churn/{hours_ago}.jsonl", Body=labels.encode())


def test_served_records_joined_with_late_labels_are_fresh_data(registry, tmp_path):
    from mlship.config import RetrainConfig
    from mlship.local.datasets import make_churn
    from mlship.retrain.data import collect

    _serve_records(registry, make_churn(900, seed=8, shift=1.0), hours_ago=2, labelled=700)
    _serve_records(registry, make_churn(300, seed=9), hours_ago=72, labelled=300)  # outside the window
    frame, source = collect(registry, "churn", RetrainConfig(window_hours=24, from_records=True))
    assert len(frame) == 700 and set(frame["churned"].unique()) <= {0, 1}
    assert "700 served records with late labels (24 h, 1 unreadable record lines skipped)" in source
    wider, _ = collect(registry, "churn", RetrainConfig(window_hours=96, from_records=True))
    assert len(wider) == 1000


def test_every_outcome_is_announced_on_eventbridge(registry, tmp_path):
    import json

    from mlship.aws.clients import client

    logs, events = client("logs"), client("events")
    logs.create_log_group(logGroupName="/retrain-events")
    events.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["mlship.retrain"]}))
    events.put_targets(Rule="retrain", Targets=[{"Id": "log", "Arn": "arn:aws:logs:us-east-1:123456789012:"
                                                 "log-group:/retrain-events"}])
    gated = run_retraining(_inputs(registry, tmp_path, _fresh(tmp_path, shuffle_labels=True), min_improvement=0.05),
                           "run-gated", {"kind": "DriftDetected"})
    assert gated.event.startswith("RetrainGated")
    sent = [json.loads(e["message"]) for e in logs.filter_log_events(logGroupName="/retrain-events")["events"]]
    assert [(e["detail-type"], e["detail"]["outcome"], e["detail"]["step"]) for e in sent] == [
        ("RetrainGated", "gated", "gate")]
    assert sent[0]["detail"]["model"] == {"name": "churn", "version": "2"} and sent[0]["detail"]["champion"] == "1"
    attached = gated.steps[-1].report["attached"]
    assert attached.startswith("s3://retrain-registry/models/churn/2/gates/") and attached.endswith(".json")
