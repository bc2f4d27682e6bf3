"""``mlship retrain run`` / ``mlship retrain status``: a retraining run, claimed once per trigger."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import fail

retrain_app = typer.Typer(help="Continuous training: retrain on fresh data, gate against the champion.",
                          no_args_is_help=True)


@retrain_app.command("run")
def run_cmd(
    model: str = typer.Option(None, "--model", help="Model name (default: the configuration's)."),
    event: Path = typer.Option(None, "--event", help="A DriftDetected / PerformanceDegraded event (JSON file)."),
    reason: str = typer.Option(None, "--reason", help="A manual trigger's reason (instead of --event)."),
    thresholds: Path = typer.Option(..., "--thresholds", "-t", help="Gate thresholds file (.yaml or .json)."),
    data: str = typer.Option(None, "--data", help="Fresh labelled data (default: retrain.data_uri)."),
    trainer: str = typer.Option(None, "--trainer", help="package.module:function (default: retrain.trainer)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    cooldown_hours: float = typer.Option(None, "--cooldown-hours", help="Default: retrain.cooldown_hours."),
) -> None:
    """Claim the trigger (duplicates and triggers inside the cooldown are recorded and skipped), then
    run collect → validate → train → export → register → gate; exit 0 succeeded or skipped, 1 gated
    or failed, 2 bad input."""
    from mlship.errors import MlshipError

    try:
        inputs, trigger, ledger = _prepare(model, event, reason, thresholds, data, trainer, bucket, cooldown_hours)
        claim = ledger.claim(trigger)
    except MlshipError as exc:
        fail(str(exc), code=2)
    if not claim.started:
        typer.echo(f"{claim.outcome}: {claim.reason} (run {claim.run_id}); nothing to do")
        return
    record = _run(inputs, claim)
    typer.echo(f"run {record.run_id}: {record.outcome}" + (f" (v{record.version})" if record.version else ""))
    if record.outcome != "succeeded":
        raise typer.Exit(1)


def _prepare(model: str | None, event: Path | None, reason: str | None, thresholds: Path, data: str | None,
             trainer: str | None, bucket: str | None, cooldown_hours: float | None) -> tuple[Any, Any, Any]:
    from mlship.config import load_project_config
    from mlship.evaluation.gate import load_thresholds
    from mlship.registry.store import Registry
    from mlship.retrain.pipeline import RunInputs, signing_key_from_env
    from mlship.retrain.triggers import Trigger, TriggerError, TriggerLedger

    cfg = load_project_config()
    name = model or cfg.model.name
    if bool(event) == bool(reason):
        raise TriggerError("give --event FILE or --reason TEXT (one trigger)")
    if event is not None:
        try:
            trigger = Trigger.from_event(json.loads(event.read_text()))
        except (OSError, ValueError) as exc:
            raise TriggerError(f"cannot read the event {event}: {exc}") from None
        if trigger.model != name:
            raise TriggerError(f"the event is about model {trigger.model!r}, not {name!r}")
    else:
        trigger = Trigger.manual(name, str(reason))
    config = cfg.retrain.model_copy(update={k: v for k, v in {"data_uri": data, "trainer": trainer}.items() if v})
    registry = Registry(bucket, sagemaker=False)
    hours = config.cooldown_hours if cooldown_hours is None else cooldown_hours
    ledger = TriggerLedger(registry.bucket, registry.prefix, cooldown_seconds=hours * 3600)
    workdir = Path(tempfile.mkdtemp(prefix=f"mlship-retrain-{name}-"))
    inputs = RunInputs(registry, name, config, load_thresholds(thresholds), workdir, signing_key_from_env())
    return inputs, trigger, ledger


def _run(inputs: Any, claim: Any) -> Any:
    from rich.console import Console

    from mlship.retrain.pipeline import run_retraining

    console = Console()
    marks = {"ok": "[green]ok[/]", "gated": "[yellow]gated[/]", "failed": "[red]failed[/]"}
    console.print(f"run {claim.run_id} for {inputs.model}: {claim.reason}", highlight=False)

    def show(step: Any) -> None:
        console.print(f"  {step.name:<9} {marks.get(step.outcome, step.outcome)} {step.seconds:6.1f}s  {step.detail}",
                      highlight=False)

    return run_retraining(inputs, claim.run_id, {"kind": claim.trigger.kind, "key": claim.trigger.key,
                                                 "reason": claim.trigger.reason}, progress=show)


@retrain_app.command("status")
def status_cmd(
    model: str = typer.Option(None, "--model", help="Model name (default: the configuration's)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
) -> None:
    """Every run with each step's outcome and timing, and the triggers skipped (duplicate, cooldown)."""
    from rich.console import Console
    from rich.table import Table

    from mlship.config import load_project_config
    from mlship.errors import MlshipError
    from mlship.registry.store import Registry
    from mlship.retrain.pipeline import list_runs
    from mlship.retrain.triggers import TriggerLedger

    name = model or load_project_config().model.name
    try:
        registry = Registry(bucket, sagemaker=False)
        runs = list_runs(registry, name)
        triggers = TriggerLedger(registry.bucket, registry.prefix).records(name)
    except MlshipError as exc:
        fail(str(exc), code=2)
    table = Table(title=f"retraining runs of {name}")
    for column in ("run", "started", "trigger", "outcome", "version", "steps"):
        table.add_column(column)
    for run in runs:
        steps = ", ".join(f"{s['name']} {s['outcome']} ({s['seconds']:.1f}s)" for s in run["steps"])
        table.add_row(run["run_id"], run["started"], str(run["trigger"].get("kind")), run["outcome"],
                      str(run.get("version") or "–"), steps)
    console = Console()
    console.print(table)
    for record in triggers:
        if record["outcome"] != "started":
            console.print(f"{record['claimed_at']} {record['trigger']['kind']}: {record['outcome']} "
                          f"({record.get('reason', '')})", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``retrain`` commands to ``app``."""
    app.add_typer(retrain_app, name="retrain")
