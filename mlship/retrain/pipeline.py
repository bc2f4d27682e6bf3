"""One retraining run, step by step (issue 16, item 2): claim the trigger → collect the fresh
labelled data → validate it against the champion → train (the user's trainer) → export and sign
→ register → gate against the champion on the same fresh holdout rows (``challenger``) → release
(``mlship rollout``: canary, shadow or none).

:data:`CLAIM_STEP` + :data:`STEPS` is the one step list: the local runner
(:func:`run_retraining`) and the Retrain stack's state machine are both built from it, and each
step hands its state to the next through :mod:`mlship.retrain.workspace`, so it can run in its
own process (``mlship retrain step``). A step that fails stops the run with its reason
(``failed``); a challenger the gate refuses ends the run ``gated``, its version kept with its
gate report and no alias moved. Each run's record (steps, outcomes, timings, reports) is stored
under ``retrain/MODEL/runs/RUN_ID.json`` beside the trigger ledger; its end is an EventBridge
event (:func:`announce`).
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
EVENT_SOURCE = "mlship.retrain"
HOLDOUT_SHARE = 0.25  # of the fresh rows, kept from training: the gate judges both models on them


class StepFailed(MlshipError):
    """A step could not complete: the run stops there with this reason (and its report, if any)."""

    kind = "retrain_step"

    def __init__(self, message: str, report: dict[str, Any] | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class StepResult:
    name: str
    outcome: str  # ok | failed | gated (the claim step's skipped is the CLI's, never a stored step)
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
    event: str | None = None  # the event that announced the run's end (or why it was not sent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunInputs:
    """What a run needs: the registry, the model, its retrain configuration and gate thresholds.

    ``project`` (the whole configuration) tells the release step where the model serves; ``env``
    is passed on to ``mlship rollout``. ``workspace`` is set by :func:`run_step` for the run.
    """

    registry: Any
    model: str
    config: Any  # mlship.config.RetrainConfig
    thresholds: Any  # mlship.evaluation.gate.Thresholds
    workdir: Path
    private_key: Any = None
    project: Any = None  # mlship.config.MlshipConfig
    env: str | None = None
    workspace: Any = None  # mlship.retrain.workspace.RunWorkspace


def run_retraining(inputs: RunInputs, run_id: str, trigger: dict[str, Any],
                   progress: Callable[[StepResult], None] | None = None) -> RunRecord:
    """Run every step in order, stopping at the first that does not succeed; store the record."""
    record = start_run(inputs.registry, inputs.model, run_id, trigger)
    for name in STEPS:
        result = run_step(inputs, record, name)
        if progress is not None:
            progress(result)
        if result.outcome != "ok":
            break
    return record


def start_run(registry: Any, model: str, run_id: str, trigger: dict[str, Any]) -> RunRecord:
    """The record of a run the claim started (stored, outcome ``running``)."""
    record = RunRecord(run_id, model, trigger, _now())
    store_run(registry, record)
    return record


def run_step(inputs: RunInputs, record: RunRecord, name: str) -> StepResult:
    """Run one step of ``record``'s run, add its result and store the record; the last step, or one
    that does not succeed, ends the run (its outcome, and an event saying so)."""
    from mlship.retrain.workspace import RunWorkspace

    if inputs.workspace is None:
        inputs.workspace = RunWorkspace(inputs.registry, inputs.model, record.run_id)
    started = time.perf_counter()
    try:
        outcome, detail, report = STEP_FUNCTIONS[name](inputs)
    except StepFailed as exc:
        outcome, detail, report = "failed", str(exc), exc.report
    except MlshipError as exc:
        outcome, detail, report = "failed", f"{type(exc).__name__}: {exc}", None
    result = StepResult(name, outcome, round(time.perf_counter() - started, 3), detail, report)
    record.steps = [s for s in record.steps if s.name != name] + [result]  # a retried step replaces its result
    record.version = inputs.workspace.facts().get("version", record.version)
    if outcome != "ok" or name == STEPS[-1]:
        record.outcome = "succeeded" if outcome == "ok" else outcome
        record.finished = _now()
        record.event = announce(inputs, record, result)
    store_run(inputs.registry, record)
    return result


def _collect(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.retrain.data import collect

    frame, sources = collect(inputs.registry, inputs.model, inputs.config)
    inputs.workspace.put_frame("fresh", frame)
    return "ok", f"{len(frame)} labelled rows from {sources}", None


def _validate(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.retrain.validate import Limits, validate_batch
    from mlship.runtime.sources import open_bundle

    registry, name = inputs.registry, inputs.model
    champion = registry.get_alias(name, "champion")
    if champion is None:
        raise StepFailed(f"{name} has no champion to validate against and to beat")
    bundle = open_bundle(registry.bundle_uri(name, champion.version))
    inputs.workspace.remember(champion=champion.version)
    report = validate_batch(inputs.workspace.frame("fresh", "validate"), inputs.config.label, bundle.manifest,
                            bundle.profile, Limits(min_rows=inputs.config.min_rows))
    if not report.passed:
        raise StepFailed("the fresh data failed validation: " + "; ".join(report.failures()), report.to_dict())
    inputs.workspace.remember(validated=report.rows)
    return "ok", f"{report.rows} rows valid against champion v{champion.version}", report.to_dict()


def _train(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.local.train import split
    from mlship.retrain.trainer import TrainerError, train

    if not inputs.config.trainer:
        raise StepFailed("retrain.trainer is not set (package.module:function)")
    if not inputs.workspace.facts().get("validated"):
        raise StepFailed("the fresh data was not validated: the validate step did not pass for this run")
    train_rows, holdout = split(inputs.workspace.frame("fresh", "train"), test_size=HOLDOUT_SHARE, seed=0)
    try:
        estimator = train(inputs.config.trainer, train_rows)
    except TrainerError as exc:
        raise StepFailed(str(exc)) from None
    inputs.workspace.put_estimator(estimator)
    inputs.workspace.put_frame("holdout", holdout)
    return "ok", f"{inputs.config.trainer} on {len(train_rows)} rows ({len(holdout)} held out for the gate)", None


def _export(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.evaluation.export import ParityPolicy, export_bundle

    version = next_version(inputs.registry, inputs.model)
    out = inputs.workdir / f"{inputs.model}-{version}"
    parity = ParityPolicy(tolerance=inputs.config.parity_tolerance, max_share_over=inputs.config.parity_max_share_over)
    try:
        export_bundle(inputs.workspace.estimator("export"), inputs.workspace.frame("holdout", "export"),
                      inputs.config.label, out, name=inputs.model, version=version, parity=parity,
                      private_key=inputs.private_key, description="retrained by mlship")
    except (MlshipError, ValueError) as exc:  # a failed parity check among them
        raise StepFailed(f"export of v{version} failed: {exc}") from None
    inputs.workspace.put_file("bundle.tar.gz", out.parent / f"{out.name}.tar.gz")
    inputs.workspace.remember(version=version)
    return "ok", f"v{version} exported, signed and checked for parity: {inputs.workspace.uri('bundle.tar.gz')}", None


def _register(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    version = inputs.workspace.facts().get("version")
    archive = inputs.workspace.file("bundle.tar.gz", inputs.workdir / f"{inputs.model}-{version}.tar.gz", "register")
    record, _created = inputs.registry.register(archive)
    return "ok", f"registered {record.name}/{record.version}", None


def _gate(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.evaluation.gate import promote

    facts = inputs.workspace.facts()
    version, champion = facts["version"], facts.get("champion")
    promotion = promote(inputs.registry, inputs.model, version, inputs.workspace.frame("holdout", "gate"),
                        inputs.thresholds, label=inputs.config.label, reason="retraining run passed the gate",
                        report_dir=inputs.workdir / f"gate-{version}")
    summary = promotion.gate.summary()
    summary["attached"] = _attach_gate_report(inputs, version, summary, promotion.report_paths)
    failed = [c.name for c in promotion.gate.checks if not c.passed]
    if not promotion.gate.passed:
        return "gated", f"v{version} refused by the gate against champion v{champion}: {', '.join(failed)}", summary
    return "ok", f"v{version} passed {len(promotion.gate.checks)} checks: challenger -> v{version}", summary


def _attach_gate_report(inputs: RunInputs, version: str, summary: dict[str, Any], paths: Any) -> str:
    """Keep the gate's verdict with the version (``models/NAME/VERSION/gates/``), passed or not."""
    import uuid

    from mlship.registry.attachments import attach_report

    html = next((Path(p).read_bytes() for p in (paths or ()) if str(p).endswith(".html")), None)
    report = {**summary, "created": _now(), "id": uuid.uuid4().hex[:8], "kind": "gate"}
    return attach_report(inputs.registry, inputs.model, version, "gates", report, html)


def _release(inputs: RunInputs) -> tuple[str, str, dict[str, Any] | None]:
    from mlship.retrain.release import ReleaseFailed, release_challenger

    try:
        released = release_challenger(inputs, inputs.workspace.facts()["version"])
    except ReleaseFailed as exc:
        raise StepFailed(str(exc), exc.outcome) from None
    return "ok", released.detail, released.outcome


STEP_FUNCTIONS: dict[str, Callable[[RunInputs], tuple[str, str, dict[str, Any] | None]]] = {
    "collect": _collect, "validate": _validate, "train": _train, "export": _export, "register": _register,
    "gate": _gate, "release": _release}


def announce(inputs: RunInputs, record: RunRecord, last: StepResult) -> str:
    """Send the run's end as an EventBridge event (``RetrainSucceeded``/``Gated``/``Failed``, source
    ``mlship.retrain``); returns its id or why it was not sent (an event never fails the run)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.monitoring.publish import put_events

    kind = {"succeeded": "RetrainSucceeded", "gated": "RetrainGated"}.get(record.outcome, "RetrainFailed")
    detail = {"model": {"name": record.model, "version": record.version}, "run_id": record.run_id,
              "outcome": record.outcome, "step": last.name, "reason": last.detail,
              "champion": inputs.workspace.facts().get("champion"), "trigger": record.trigger}
    try:
        ids = put_events([{"detail_type": kind, "detail": detail}], os.environ.get("MLSHIP_EVENT_BUS", "default"),
                         source=EVENT_SOURCE)
    except (ClientError, BotoCoreError, RuntimeError) as exc:
        return f"not sent: {type(exc).__name__}: {exc}"
    return f"{kind} {ids[0] if ids else ''}".strip()


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


def load_run(registry: Any, model: str, run_id: str) -> RunRecord:
    """The stored record of a run the claim step started (``WorkspaceError`` when there is none)."""
    from mlship.aws.clients import get_if_exists
    from mlship.retrain.workspace import WorkspaceError

    found = get_if_exists(registry.s3, registry.bucket, run_key(registry, model, run_id))
    if found is None:
        raise WorkspaceError(f"no run {run_id} of {model}: the claim step starts a run")
    doc = json.loads(found["Body"].read())
    doc["steps"] = [StepResult(**step) for step in doc.get("steps", [])]
    return RunRecord(**doc)


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


def signing_key_from_env(parameter: str | None = None) -> Any:
    """The key that signs the retrained bundles: ``$MLSHIP_SIGNING_KEY`` (a PEM file path, or
    ``ssm:NAME``), else the SSM SecureString ``parameter``; None: the bundles are unsigned."""
    value = os.environ.get("MLSHIP_SIGNING_KEY") or (f"ssm:{parameter}" if parameter else None)
    if not value:
        return None
    if not value.startswith("ssm:"):
        return Path(value)
    from botocore.exceptions import BotoCoreError, ClientError
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from mlship.aws.clients import client

    name = value[len("ssm:"):]
    try:
        pem = client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        return load_pem_private_key(pem.encode(), password=None)
    except (ClientError, BotoCoreError, ValueError) as exc:
        raise StepFailed(f"cannot read the signing key from SSM parameter {name}: {exc}") from None
