"""The loop closed on the local control plane (real ``mlship serve`` fleets behind a moto server):
drifted data → retrain → gate pass → ``challenger`` → the release step's canary (the real
``mlship rollout endpoint`` process) under client traffic → ``champion`` moves; a canary that is
rolled back fails the run's release step with the rollout's reason and champion stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from release.plane import IMAGE, ROLE, BackgroundClient, create_config, plane, plane_clients, wait_status  # noqa: F401

from mlship.retrain.pipeline import STEPS, RunInputs, run_retraining


@pytest.fixture
def live(moto_server: str, plane: Any, churn_bundle: Path) -> dict[str, Any]:  # noqa: F811 - the fixture
    """Champion v1 in a new registry, serving on a new endpoint of the control plane (the moto
    server lives for the whole session)."""
    import uuid

    from mlship.registry.store import Registry

    clients = plane_clients(plane, moto_server)
    suffix = uuid.uuid4().hex[:8]
    bucket, endpoint = f"retrain-release-{suffix}", f"churn-retrain-{suffix}"
    clients["s3"].create_bucket(Bucket=bucket)
    registry = Registry(bucket, sagemaker=False)
    record, _ = registry.register(churn_bundle)
    registry.set_alias("churn", "champion", record.version, reason="first")
    config = create_config(clients["sagemaker"], f"{endpoint}-v1", registry.bundle_uri("churn", "1"), "1")
    clients["sagemaker"].create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    wait_status(clients["sagemaker"], endpoint, "InService")
    return {"registry": registry, "endpoint": endpoint, **clients}


@pytest.fixture
def row(churn_split: tuple[Any, Any], churn_bundle: Path) -> dict[str, Any]:
    """One holdout row as a JSON record (the client's request)."""
    import json

    from mlship.runtime.sources import open_bundle

    names = [f["name"] for f in open_bundle(churn_bundle).manifest["input_schema"]["fields"]]
    return json.loads(churn_split[1].head(1)[names].to_json(orient="records"))[0]


def _inputs(live: dict[str, Any], tmp_path: Path, fault: str | None = None) -> RunInputs:
    from mlship.config import RetrainConfig, load_project_config
    from mlship.evaluation.gate import Thresholds
    from mlship.local.datasets import make_churn

    make_churn(3000, seed=31, shift=1.0).to_parquet(tmp_path / "fresh.parquet")
    args = ["--endpoint", live["endpoint"], "--image", IMAGE, "--role", ROLE, "--poll", "0.2", "--size", "50",
            "--wait", "120", "--termination-wait", "0", *(["--fault", fault] if fault else [])]
    config = RetrainConfig(trainer="mlship.local.train:train_pipeline", data_uri=str(tmp_path / "fresh.parquet"),
                           release="canary", release_target="endpoint", release_args=args)
    thresholds = Thresholds.model_validate({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": -0.05}},
                                            "bootstrap": 0})
    return RunInputs(live["registry"], "churn", config, thresholds, tmp_path / "work", project=load_project_config())


def test_drift_retrain_gate_canary_moves_the_champion(live, tmp_path, row):
    registry = live["registry"]
    with BackgroundClient(live["runtime"], live["endpoint"], row) as client:
        run = run_retraining(_inputs(live, tmp_path), "run-canary", {"kind": "DriftDetected"})
    assert run.outcome == "succeeded", [(s.name, s.outcome, s.detail) for s in run.steps]
    assert [s.name for s in run.steps] == list(STEPS)
    assert run.steps[-1].report["outcome"] == "succeeded" and "champion -> v2" in run.steps[-1].detail
    assert registry.get_alias("churn", "champion").version == "2"
    assert client.failures == [] and set(client.versions) == {"1", "2"}, client.versions
    assert run.event.startswith("RetrainSucceeded")


def test_a_canary_rolled_back_fails_the_run_and_keeps_the_champion(live, tmp_path):
    registry = live["registry"]
    run = run_retraining(_inputs(live, tmp_path, fault="crash"), "run-crash", {"kind": "DriftDetected"})
    release = run.steps[-1]
    assert run.outcome == "failed" and release.name == "release", [(s.name, s.outcome, s.detail) for s in run.steps]
    assert "champion unchanged" in release.detail and release.report["outcome"] != "succeeded"
    assert registry.get_alias("churn", "champion").version == "1"
    assert registry.get_alias("churn", "challenger").version == "2"  # passed the gate, never served
    assert run.event.startswith("RetrainFailed")
