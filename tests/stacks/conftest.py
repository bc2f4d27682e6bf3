"""One synthesized mlship app per test run, shared by every infra test (and every xdist worker).

The app holds three environments so every shape is checked from one synthesis:
* dev  (defaults): serverless endpoint, ALL_AT_ONCE, Function URL, image override, the model
  read from the deployed-model SSM parameters, batch scoring without a schedule;
* prod (defaults + shadow variant + data capture): two instances, LINEAR 50%, API Gateway,
  the repo's Dockerfile as an image asset when it exists (else an image override), SSM model,
  the Retrain stack (``RETRAIN``: a schedule, the py312 scikit-learn base image) and scheduled
  batch scoring with its workers' archive in S3 (``DEPS_ARCHIVE``);
* staging (the escape hatch): the model pinned in the config (``model.uri`` names version 3,
  ``model.model_data_url`` its tarball outside the data bucket) and a shadow variant pinned to
  registry version 2; no batch or edge stacks (they do not depend on the model source).
Lambda code comes from ``functions/<name>`` (``assets.lambda_code=source``): building the real
asset downloads wheels from PyPI, which mlship.deploy.lambda_asset's own tests cover.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlship-serve:test"
MODEL_DATA = "s3://models-example/churn/3/bundle.tar.gz"
PINNED_URI = "mlship://churn/3"
SHADOW_URI = "mlship://churn/2"
DEPS_ARCHIVE = "s3://artifacts-example/batch/mlship-batch-deps.tar.gz"  # the scheduled job's worker wheels
RETRAIN = {"enabled": True, "schedule": "rate(30 days)", "framework_version": "1.4-2-py312",
           "signing_key_parameter": "/mlship/prod/signing-key"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs the real CDK CLI (tens of seconds)")


@dataclass
class Synth:
    """The synthesized cloud assembly: templates, metadata and the validation report."""

    outdir: Path
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    docker_asset: bool = False

    def template(self, stack: str) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.templates[stack])

    def resources(self, stack: str, rtype: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == rtype}

    def all_resources(self, rtype: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(s, k, v) for s, t in self.templates.items() for k, v in t["Resources"].items()
                if v["Type"] == rtype]


def synth_configs() -> list[Any]:
    from mlship.config import load_config

    prod_image = {} if (REPO / "Dockerfile").is_file() else {"mlship:endpoint.image_uri": IMAGE}
    dev = load_config("dev", {"mlship:assets.lambda_code": "source", "mlship:endpoint.image_uri": IMAGE})
    staging = load_config("staging", {
        "mlship:assets.lambda_code": "source", "mlship:endpoint.image_uri": IMAGE,
        "mlship:model.uri": PINNED_URI, "mlship:model.model_data_url": MODEL_DATA,
        "mlship:endpoint.shadow": json.dumps({"name": "shadow", "model_uri": SHADOW_URI}),
        "mlship:batch.enabled": "false", "mlship:edge.enabled": "false"})
    prod = load_config("prod", {
        "mlship:assets.lambda_code": "source",
        "mlship:endpoint.shadow": json.dumps({"name": "shadow", "instance_type": "ml.c5.large"}),
        "mlship:monitoring.sensitive_attribute": "gender",
        "mlship:monitoring.environment": json.dumps({"PRIMARY_METRIC": "roc_auc"}),
        "mlship:retrain": json.dumps(RETRAIN), "mlship:batch.dependencies_archive": DEPS_ARCHIVE, **prod_image})
    return [dev, prod, staging]


@pytest.fixture(scope="session")
def configs() -> dict[str, Any]:
    """The configs the shared synthesis is built from, by environment (their names are the expected ones)."""
    return {cfg.env: cfg for cfg in synth_configs()}


def _synthesize(outdir: Path) -> None:
    import aws_cdk as cdk

    from mlship.cdk.app import build_app
    from mlship.resources import cdk_feature_flags

    app = cdk.App(outdir=str(outdir), context=cdk_feature_flags())
    build_app(synth_configs(), app)
    app.synth()


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The synthesized app, built once and shared across xdist workers through a lock file."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    root = tmp_path_factory.getbasetemp()
    shared = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    outdir = shared / "infra-synth"
    ok, failed = shared / "infra-synth.ok", shared / "infra-synth.error"
    with open(shared / "infra-synth.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ok.is_file() and not failed.is_file():
            started = time.monotonic()
            try:
                _synthesize(outdir)
            except Exception as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}")
                raise
            ok.write_text(f"{time.monotonic() - started:.1f}")
    if failed.is_file():
        pytest.fail(f"synthesis of the mlship app failed: {failed.read_text()[:4000]}")
    out = Synth(outdir)
    for path in outdir.glob("*.template.json"):
        out.templates[path.name.removesuffix(".template.json")] = json.loads(path.read_text())
    for path in outdir.glob("*.metadata.json"):
        out.metadata[path.name.removesuffix(".metadata.json")] = json.loads(path.read_text())
    out.docker_asset = any(outdir.glob("asset.*/Dockerfile"))
    return out
