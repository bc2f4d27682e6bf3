"""One retraining run, step by step (issue 16, item 2): collect the fresh labelled data →
validate it against the champion → train (the user's trainer) → export and sign → register →
gate against the champion on the same fresh holdout rows → ``challenger``.

:data:`STEPS` is the one step list (the Step Functions definition is to be built from it). A
step that fails stops the run with its reason (``failed``); a challenger the gate refuses ends
the run ``gated``, its version kept with its gate report and no alias moved. The release loop
(shadow or canary, then champion) starts from ``challenger``: ``mlship rollout ... --model
NAME@challenger``. Each run's record (steps, outcomes, timings, reports) is stored under
``retrain/MODEL/runs/RUN_ID.json`` beside the trigger ledger.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

STEPS = ("collect", "validate", "train", "export", "register", "gate", "release")
CLAIM_STEP = "claim"  # before STEPS: the trigger is claimed once (duplicates and cooldown end the run)
TRAINING_STEPS = frozenset({"train"})  # a SageMaker training job in AWS; the others are processing jobs
OUTCOMES = ("ok", "skipped", "gated", "failed")  # a step's outcome, the first word of its exit message
HOLDOUT_SHARE = 0.25  # of the fresh rows, kept from training: the gate judges both models on them


class StepFailed(MlshipError):
    """A step could not complete: the run stops there with this reason."""

    kind = "retrain_step"


@dataclass
class StepResult:
    name: str
    outcome: str  # ok | failed | gated
    seconds: float
    detail: str = ""
    report: dict[str, Any] | None = None


@dataclass
class RunRecord:
    """What ``mlship retrain status`` shows of one run."""

    run_id: str
    model: str
    trigger: dict[str, Any]
    started: str
    outcome: str = "running"  # running | succeeded (challenger moved) | gated | failed
    finished: str | None = None
    version: str | None = None
    steps: list[StepResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunInputs:
    """What a run needs: the registry, the model, its retrain configuration and gate thresholds."""

    registry: Any
    model: str
    config: Any  # mlship.config.RetrainConfig
    thresholds: Any  # mlship.evaluation.gate.Thresholds
    workdir: Path
    private_key: Any = None
    state: dict[str, Any] = field(default_factory=dict)


def run_retraining(inputs: RunInputs, run_id: str, trigger: dict[str, Any],
                   progress: Callable[[StepResult], None] | None = None) -> RunRecord:
    """Run every step in order, stopping at the first that does not succeed; store the record."""
    record = RunRecord(run_id, inputs.model, trigger, _now())
    for name in STEPS:
        started = time.perf_counter()
        try:
            outcome, detail, report = STEP_FUNCTIONS[name](inputs)
        except StepFailed as exc:
            outcome, detail, report = "failed", str(exc), getattr(exc, "report", None)
        except MlshipError as exc:
            outcome, detail, report = "failed", f"{type(exc).__name__}: {exc}", None
        result = StepResult(name, outcome, round(time.perf_counter() - started, 3), detail, report)
        record.steps.append(result)
        if progress is not None:
            progress(result)
        if outcome != "ok":
            record.outcome = outcome
            break
    else:
        record.outcome = "succeeded"
    record.version, record.finished = inputs.state.get("version"), _now()
    store_run(inputs.registry, record)
    return record


def _collect(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.retrain.data import read_labelled

    if not inputs.config.data_uri:
        raise StepFailed("retrain.data_uri is not set: no fresh labelled data to train on")
    frame = read_labelled(inputs.config.data_uri)
    inputs.state["frame"] = frame
    return "ok", f"{len(frame)} labelled rows from {inputs.config.data_uri}", None


def _validate(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.retrain.validate import Limits, validate_batch
    from mlship.runtime.sources import open_bundle

    registry, name = inputs.registry, inputs.model
    champion = registry.get_alias(name, "champion")
    if champion is None:
        raise StepFailed(f"{name} has no champion to validate against and to beat")
    bundle = open_bundle(registry.bundle_uri(name, champion.version))
    inputs.state["champion"] = champion.version
    report = validate_batch(inputs.state["frame"], inputs.config.label, bundle.manifest, bundle.profile,
                            Limits(min_rows=inputs.config.min_rows))
    if not report.passed:
        failure = StepFailed("the fresh data failed validation: " + "; ".join(report.failures()))
        failure.report = report.to_dict()  # type: ignore[attr-defined]
        raise failure
    return "ok", f"{report.rows} rows valid against champion v{champion.version}", report.to_dict()


def _train(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.local.train import split
    from mlship.retrain.trainer import TrainerError, train

    if not inputs.config.trainer:
        raise StepFailed("retrain.trainer is not set (package.module:function)")
    train_rows, holdout = split(inputs.state["frame"], test_size=HOLDOUT_SHARE, seed=0)
    try:
        inputs.state["estimator"] = train(inputs.config.trainer, train_rows)
    except TrainerError as exc:
        raise StepFailed(str(exc)) from None
    inputs.state["holdout"] = holdout
    return "ok", f"{inputs.config.trainer} on {len(train_rows)} rows ({len(holdout)} held out for the gate)", None


def _export(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.evaluation.export import export_bundle

    version = next_version(inputs.registry, inputs.model)
    out = inputs.workdir / f"{inputs.model}-{version}"
    try:
        inputs.state["bundle"] = export_bundle(inputs.state["estimator"], inputs.state["holdout"], inputs.config.label,
                                               out, name=inputs.model, version=version,
                                               private_key=inputs.private_key, description="retrained by mlship")
    except (MlshipError, ValueError) as exc:  # a failed parity check among them
        raise StepFailed(f"export of v{version} failed: {exc}") from None
    inputs.state["version"] = version
    return "ok", f"v{version} exported and checked for parity: {out}", None


def _register(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    record, _created = inputs.registry.register(inputs.state["bundle"])
    return "ok", f"registered {record.name}/{record.version}", None


def _gate(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.evaluation.gate import promote

    version = inputs.state["version"]
    promotion = promote(inputs.registry, inputs.model, version, inputs.state["holdout"], inputs.thresholds,
                        label=inputs.config.label, reason="retraining run passed the gate",
                        report_dir=inputs.workdir / f"gate-{version}")
    summary = promotion.gate.summary()
    failed = [c.name for c in promotion.gate.checks if not c.passed]
    if not promotion.gate.passed:
        return "gated", f"v{version} refused by the gate against champion v{inputs.state['champion']}: " \
                        f"{', '.join(failed)}", summary
    return "ok", f"v{version} passed {len(promotion.gate.checks)} checks: challenger -> v{version}", summary


STEP_FUNCTIONS: dict[str, Callable[[RunInputs], tuple[str, str, dict[str, Any] | None]]] = {
    "collect": _collect, "validate": _validate, "train": _train, "export": _export, "register": _register,
    "gate": _gate}


def next_version(registry: Any, name: str) -> str:
    """One more than the highest numeric version of ``name`` (1 for the first)."""
    numbers = [int(v.version) for v in registry.list_versions(name) if str(v.version).isdigit()]
    return str(max(numbers, default=0) + 1)


def run_key(registry: Any, model: str, run_id: str) -> str:
    return f"{registry.prefix}retrain/{model}/runs/{run_id}.json"


def store_run(registry: Any, record: RunRecord) -> None:
    """Write the run's record (each step's outcome, timing and report)."""
    registry.s3.put_object(Bucket=registry.bucket, Key=run_key(registry, record.model, record.run_id),
                           Body=json.dumps(record.to_dict(), default=str, indent=2).encode(),
                           ContentType="application/json")


def list_runs(registry: Any, model: str) -> list[dict[str, Any]]:
    """Every stored run of ``model``, oldest first."""
    base = f"{registry.prefix}retrain/{model}/runs/"
    runs = []
    for page in registry.s3.get_paginator("list_objects_v2").paginate(Bucket=registry.bucket, Prefix=base):
        for obj in page.get("Contents", []):
            runs.append(json.loads(registry.s3.get_object(Bucket=registry.bucket, Key=obj["Key"])["Body"].read()))
    return sorted(runs, key=lambda r: r["started"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def signing_key_from_env() -> Any:
    """``$MLSHIP_SIGNING_KEY`` (a private key path), or None: the bundle is then unsigned."""
    path = os.environ.get("MLSHIP_SIGNING_KEY")
    return Path(path) if path else None
