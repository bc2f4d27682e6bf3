"""``mlship retrain run|step|status``: a retraining run, claimed once per trigger.

``run`` claims the trigger and runs every step here (locally, against the local AWS); ``step``
runs one step of a run, as each SageMaker job of the AWS state machine does, and writes the
step's outcome as the first word of its exit message (``/opt/ml/output/message``, which the
state machine's choices read).
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail

retrain_app = typer.Typer(help="Continuous training: retrain on fresh data, gate against the champion, release.",
                          no_args_is_help=True)

SAGEMAKER_MESSAGE = Path("/opt/ml/output/message")  # a SageMaker job's ExitMessage (first 1 KB)


@retrain_app.command("run")
def run_cmd(
    model: str = typer.Option(None, "--model", help="Model name (default: the configuration's)."),
    event: str = typer.Option(None, "--event", help="A DriftDetected / PerformanceDegraded event (JSON file or s3://)."),
    reason: str = typer.Option(None, "--reason", help="A manual trigger's reason (instead of --event)."),
    thresholds: Path = typer.Option(None, "--thresholds", "-t", help="Gate thresholds file (default: "
                                    "retrain.thresholds)."),
    data: str = typer.Option(None, "--data", help="Fresh labelled data (default: retrain.data_uri)."),
    trainer: str = typer.Option(None, "--trainer", help="package.module:function (default: retrain.trainer)."),
    release: str = typer.Option(None, "--release", help="canary, shadow or none (default: retrain.release)."),
    release_args: str = typer.Option(None, "--release-args", help="Extra `mlship rollout` options, one string "
                                     "(default: retrain.release_args)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    cooldown_hours: float = typer.Option(None, "--cooldown-hours", help="Default: retrain.cooldown_hours."),
    env: str = typer.Option(None, "--env", help="Configuration environment (default: cdk.json's env)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Claim the trigger (duplicates and triggers inside the cooldown are recorded and skipped), then
    run collect → validate → train → export → register → gate → release; exit 0 succeeded or
    skipped, 1 gated or failed, 2 bad input."""
    from mlship.errors import MlshipError

    overrides = {"data_uri": data, "trainer": trainer, "release": release,
                 "release_args": shlex.split(release_args) if release_args is not None else None,
                 "cooldown_hours": cooldown_hours}
    try:
        inputs = _inputs(model, thresholds, bucket, env, overrides)
        trigger = _trigger(inputs.model, event, reason)
        claim = _ledger(inputs).claim(trigger)
    except MlshipError as exc:
        fail(str(exc), code=2)
    if not claim.started:
        if as_json:
            return emit_json({"outcome": claim.outcome, "reason": claim.reason, "run_id": claim.run_id})
        typer.echo(f"{claim.outcome}: {claim.reason} (run {claim.run_id}); nothing to do")
        return
    record = _run(inputs, claim, quiet=as_json)
    if as_json:
        emit_json(record.to_dict())
    else:
        typer.echo(f"run {record.run_id}: {record.outcome}" + (f" (v{record.version})" if record.version else ""))
    if record.outcome != "succeeded":
        raise typer.Exit(1)


def _inputs(model: str | None, thresholds: Path | None, bucket: str | None, env: str | None,
            overrides: dict[str, Any], *, need_gate: bool = True) -> Any:
    from pydantic import ValidationError

    from mlship.config import load_project_config
    from mlship.registry.store import Registry
    from mlship.retrain.pipeline import RunInputs, signing_key_from_env
    from mlship.retrain.triggers import TriggerError

    project = load_project_config(env)
    try:
        config = project.retrain.model_validate({**project.retrain.model_dump(),
                                                 **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise TriggerError("bad retrain option: " + "; ".join(e["msg"] for e in exc.errors())) from None
    gate = _thresholds(thresholds, config)
    if gate is None and need_gate:
        raise TriggerError("no gate thresholds: give -t FILE, or set retrain.thresholds (a file) or retrain.gate")
    name = model or project.model.name
    workdir = Path(tempfile.mkdtemp(prefix=f"mlship-retrain-{name}-"))
    return RunInputs(Registry(bucket, sagemaker=False), name, config, gate, workdir,
                     signing_key_from_env(config.signing_key_parameter), project=project, env=env)


def _thresholds(path: Path | None, config: Any) -> Any:
    """``-t FILE``, else ``retrain.thresholds`` (a file), else ``retrain.gate`` (inline), else None."""
    from mlship.evaluation.gate import load_thresholds, parse_thresholds

    if path is not None or config.thresholds:
        return load_thresholds(path or Path(config.thresholds))
    return None if config.gate is None else parse_thresholds(config.gate, source="retrain.gate")


def _trigger(name: str, event: str | None, reason: str | None) -> Any:
    from mlship.retrain.triggers import Trigger, TriggerError

    if bool(event) == bool(reason):
        raise TriggerError("give --event FILE or --reason TEXT (one trigger)")
    if event is None:
        return Trigger.manual(name, str(reason))
    try:
        trigger = Trigger.from_event(json.loads(_read(event)))
    except (OSError, ValueError) as exc:
        raise TriggerError(f"cannot read the event {event}: {exc}") from None
    if trigger.model != name:
        raise TriggerError(f"the event is about model {trigger.model!r}, not {name!r}")
    return trigger


def _read(location: str) -> bytes:
    """A local file, or an s3:// object (the state machine stores its input event there)."""
    if not location.startswith("s3://"):
        return Path(location).read_bytes()
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import client
    from mlship.aws.s3 import parse_s3_uri

    bucket, key = parse_s3_uri(location)
    try:
        return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as exc:
        raise OSError(str(exc)) from None


def _ledger(inputs: Any) -> Any:
    from mlship.retrain.triggers import TriggerLedger

    return TriggerLedger(inputs.registry.bucket, inputs.registry.prefix,
                         cooldown_seconds=inputs.config.cooldown_hours * 3600)


def _trigger_summary(claim: Any) -> dict[str, Any]:
    return {"kind": claim.trigger.kind, "key": claim.trigger.key, "reason": claim.trigger.reason}


def _run(inputs: Any, claim: Any, *, quiet: bool = False) -> Any:
    """Run the claimed trigger's steps, each step's line on stdout (stderr with ``--json``)."""
    from mlship.cli.common import console as new_console
    from mlship.retrain.pipeline import run_retraining

    console = new_console(stderr=quiet)
    console.print(f"run {claim.run_id} for {inputs.model}: {claim.reason}", highlight=False)
    return run_retraining(inputs, claim.run_id, _trigger_summary(claim), progress=lambda s: _show(console, s))


def _show(console: Any, step: Any) -> None:
    marks = {"ok": "[green]ok[/]", "gated": "[yellow]gated[/]", "failed": "[red]failed[/]",
             "skipped": "[yellow]skipped[/]"}
    console.print(f"  {step.name:<9} {marks.get(step.outcome, step.outcome)} {step.seconds:6.1f}s  {step.detail}",
                  highlight=False)


@retrain_app.command("step")
def step_cmd(
    step: str = typer.Argument(..., help="claim, or one of collect validate train export register gate release."),
    run_id: str = typer.Option(..., "--run-id", help="The run (in AWS: the Step Functions execution's name)."),
    model: str = typer.Option(None, "--model", help="Model name (default: the configuration's)."),
    event: str = typer.Option(None, "--event", help="claim: the trigger event (JSON file or s3://)."),
    thresholds: Path = typer.Option(None, "--thresholds", "-t", help="Default: retrain.thresholds."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    env: str = typer.Option(None, "--env", help="Configuration environment (default: cdk.json's env)."),
    message_file: Path = typer.Option(None, "--message-file", help="Where the outcome line goes (default: "
                                      "/opt/ml/output/message inside a SageMaker job, else none)."),
) -> None:
    """One step of a run, as a job of the AWS state machine runs it. The outcome (ok, skipped,
    gated or failed) is the first word of the message; exit 0 unless failed (1) or bad input (2)."""
    from mlship.errors import MlshipError
    from mlship.retrain.pipeline import CLAIM_STEP, STEPS

    # inside a SageMaker job (/opt/ml exists) the message is what the state machine's choices read
    target = message_file or (SAGEMAKER_MESSAGE if SAGEMAKER_MESSAGE.parent.parent.is_dir() else None)
    if step != CLAIM_STEP and step not in STEPS:
        _message(target, f"failed {step}: not a step (claim, {', '.join(STEPS)})")
        fail(f"{step!r} is not a step: claim, {', '.join(STEPS)}", code=2)
    try:
        inputs = _inputs(model, thresholds, bucket, env, {}, need_gate=step == "gate")
        outcome, detail = _claim_step(inputs, run_id, event) if step == CLAIM_STEP else _one_step(inputs, run_id, step)
    except MlshipError as exc:
        _message(target, f"failed {step}: {exc}")
        fail(str(exc), code=2)
    _message(target, f"{outcome} {step}: {detail}")
    typer.echo(f"{outcome} {step}: {detail}")
    if outcome == "failed":
        raise typer.Exit(1)


def _claim_step(inputs: Any, run_id: str, event: str | None) -> tuple[str, str]:
    from mlship.retrain.pipeline import start_run

    claim = _ledger(inputs).claim(_trigger(inputs.model, event, None), run_id=run_id)
    if not claim.started:
        return "skipped", f"{claim.outcome}: {claim.reason} (run {claim.run_id})"
    start_run(inputs.registry, inputs.model, claim.run_id, _trigger_summary(claim))
    return "ok", f"run {claim.run_id} started: {claim.reason}"


def _one_step(inputs: Any, run_id: str, step: str) -> tuple[str, str]:
    from mlship.retrain.pipeline import load_run, run_step

    result = run_step(inputs, load_run(inputs.registry, inputs.model, run_id), step)
    return result.outcome, result.detail


def _message(target: Path | None, text: str) -> None:
    """The outcome line for the state machine (SageMaker keeps the first 1 KB); a failure's also goes
    to ``failure`` beside it, which a SageMaker job reports as its FailureReason."""
    if target is None:
        return
    line = text.encode("utf-8")[:1024].decode("utf-8", "ignore")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(line, encoding="utf-8")
    if text.startswith("failed"):
        (target.parent / "failure").write_text(line, encoding="utf-8")


@retrain_app.command("status")
def status_cmd(
    model: str = typer.Option(None, "--model", help="Model name (default: the configuration's)."),
    run_id: str = typer.Option(None, "--run", help="One run in detail: each step's outcome, reason and reports."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run records as JSON."),
) -> None:
    """Every run with each step's outcome and timing, and the triggers skipped (duplicate, cooldown)."""
    from mlship.cli.common import console as new_console
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
    if run_id is not None:
        runs = [r for r in runs if r["run_id"] == run_id]
        if not runs:
            fail(f"no run {run_id} of {name} in s3://{registry.bucket}", code=2)
    if as_json:
        emit_json({"runs": runs, "triggers": triggers})
        return
    console = new_console()
    _print_runs(console, name, runs, detailed=run_id is not None)
    for record in triggers:
        if record["outcome"] != "started":
            console.print(f"{record['claimed_at']} {record['trigger']['kind']}: {record['outcome']} "
                          f"({record.get('reason', '')})", highlight=False, markup=False)


def _print_runs(console: Any, name: str, runs: list[dict[str, Any]], *, detailed: bool) -> None:
    from mlship.cli.common import table as new_table

    table = new_table(title=f"retraining runs of {name}")
    for column in ("run", "started", "trigger", "outcome", "version", "steps"):
        table.add_column(column)
    for run in runs:
        steps = ", ".join(f"{s['name']} {s['outcome']} ({s['seconds']:.1f}s)" for s in run["steps"])
        table.add_row(run["run_id"], run["started"], str(run["trigger"].get("kind")), run["outcome"],
                      str(run.get("version") or "–"), steps)
    console.print(table)
    for run in runs if detailed else runs[-1:]:
        console.print(f"run {run['run_id']}: {run['outcome']}; event: {run.get('event') or '–'}",
                      highlight=False, markup=False)
        for step in run["steps"]:
            link = (step.get("report") or {}).get("attached") if isinstance(step.get("report"), dict) else None
            console.print(f"  {step['name']:<9} {step['outcome']:<7} {step['seconds']:6.1f}s  {step['detail']}"
                          + (f"  report: {link}" if link else ""), highlight=False, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``retrain`` commands to ``app``."""
    app.add_typer(retrain_app, name="retrain")
