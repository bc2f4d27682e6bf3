"""Registry and gate commands: ``register``, ``models list|show``, ``alias set|get|history``,
``evaluate`` and ``promote`` (the offline gate: moves ``challenger``, judged against ``champion``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail, mark_latest, report_folder
from mlship.errors import MlshipError

models_app = typer.Typer(help="Registered models and versions (S3 registry + SageMaker mirror).",
                         no_args_is_help=True)
alias_app = typer.Typer(help="Aliases (champion, challenger, ...): atomic pointers with an audit log.",
                        no_args_is_help=True)

BUCKET = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET).")
SAGEMAKER = typer.Option(True, "--sagemaker/--no-sagemaker",
                         help="Mirror into the SageMaker Model Registry (default: $MLSHIP_SAGEMAKER_MIRROR or on).")



def _registry(bucket: str | None, sagemaker: bool = True) -> Any:
    import os

    from mlship.registry.store import ENV_SAGEMAKER, Registry

    if os.environ.get(ENV_SAGEMAKER, "").lower() in {"0", "false", "no", "off"}:
        sagemaker = False
    return Registry(bucket, sagemaker=sagemaker)


def _load_frame(path: Path) -> Any:
    from mlship.evaluation.export import load_table

    return load_table(path)


def register_cmd(
    bundle: str = typer.Argument(..., help="Bundle directory, .tar.gz or s3:// URI."),
    bucket: str = BUCKET,
    public_key: Path = typer.Option(None, "--public-key", help="Require and check the bundle's signature."),
    description: str = typer.Option(None, help="Free text stored with the version."),
    sagemaker: bool = SAGEMAKER,
    as_json: bool = typer.Option(False, "--json", help="Print the version record as JSON."),
) -> None:
    """Register a bundle as models/NAME/VERSION (immutable) and mirror it into SageMaker."""
    from mlship import api

    try:
        registered = api.register(bundle, bucket=bucket, public_key=public_key, description=description,
                                  sagemaker=sagemaker)
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        emit_json({**registered.record, "created": registered.created})
        return
    verb = "registered" if registered.created else "already registered (same content)"
    typer.echo(f"{registered.name} version {registered.version} {verb}: {registered.bundle_uri}")
    package = registered.record.get("sagemaker_package_arn")
    if package:
        typer.echo(f"SageMaker model package: {package} (PendingManualApproval)")


@models_app.command("list")
def models_list(bucket: str = BUCKET, as_json: bool = typer.Option(False, "--json")) -> None:
    """List models with their versions, aliases and rollout status."""
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    try:
        reg = _registry(bucket, sagemaker=False)
        rows = []
        for name in reg.list_models():
            versions = reg.list_versions(name)
            aliases = {a: r.version for a, r in reg.list_aliases(name).items()}
            rows.append({"name": name, "versions": [v.version for v in versions], "aliases": aliases,
                         "latest": versions[-1].version if versions else None, "status": reg.statuses(name)})
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = new_table("model", "versions", "latest", "aliases", "status")
    for row in rows:
        table.add_row(row["name"], str(len(row["versions"])), str(row["latest"]),
                      ", ".join(f"{a}→{v}" for a, v in sorted(row["aliases"].items())) or "-",
                      ", ".join(f"{v} {st}" for v, st in row["status"].items()) or "-")
    new_console().print(table)


@models_app.command("show")
def models_show(name: str = typer.Argument(...), version: str = typer.Argument(None),
                bucket: str = BUCKET, sagemaker: bool = SAGEMAKER,
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Show a model's versions (metrics, approval, aliases, status) or one version with its rollouts."""
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    if version:
        _show_version(name, version, bucket, sagemaker, as_json)
        return
    try:
        reg = _registry(bucket, sagemaker)
        versions = reg.list_versions(name)
        if not versions:
            fail(f"model {name} has no registered version in s3://{reg.bucket}/{reg.prefix}")
        aliases = reg.list_aliases(name)
        approvals = {v.version: reg.approval_status(name, v.version) for v in versions}
        statuses = reg.statuses(name)
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"name": name, "versions": [v.to_dict() for v in versions],
                               "aliases": {a: r.to_dict() for a, r in aliases.items()},
                               "approval": approvals, "status": statuses}, indent=2))
        return
    metric_cols = [m for m in ("roc_auc", "accuracy", "f1", "rmse", "r2") if any(m in v.metrics for v in versions)]
    table = new_table("version", "registered", "by", *metric_cols, "SageMaker", "aliases", "status",
                  title=f"model {name}")
    for v in versions:
        table.add_row(v.version, v.registered_at, v.registered_by,
                      *[f"{v.metrics[m]:.4f}" if m in v.metrics else "-" for m in metric_cols],
                      str(approvals.get(v.version) or "-"),
                      ", ".join(a for a, r in sorted(aliases.items()) if r.version == v.version) or "-",
                      statuses.get(v.version) or "-")
    new_console().print(table)


def _show_version(name: str, version: str, bucket: str | None, sagemaker: bool, as_json: bool) -> None:
    """``models show NAME VERSION``: the version record, its aliases, status and rollouts."""
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table
    from mlship.registry.rollouts import latest

    try:
        reg = _registry(bucket, sagemaker)
        record = reg.get_version(name, version)
        rollouts = reg.rollouts(name, version)
        last = latest(rollouts)
        data = {**record.to_dict(), "approval": reg.approval_status(name, version),
                "aliases": [a for a, r in reg.list_aliases(name).items() if r.version == version],
                "status": None if last is None else last.status, "rollouts": [r.to_dict() for r in rollouts]}
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    console = new_console()
    console.print(f"[bold]{name} version {version}[/]: {record.description or ''}")
    for key in ("bundle_uri", "content_sha256", "registered_at", "registered_by", "signed", "approval"):
        console.print(f"  {key}: {data[key]}")
    console.print(f"  aliases: {', '.join(data['aliases']) or '-'}")
    console.print(f"  metrics: {', '.join(f'{k} {v:.4g}' for k, v in record.metrics.items()) or '-'}")
    console.print(f"  status: {data['status'] or '- (never rolled out)'}")
    if rollouts:
        table = new_table("when", "outcome", "target", "previous", "alarm", "reason", "by", title="rollouts")
        for r in rollouts:
            colour = "green" if r.succeeded else "red"
            table.add_row(r.recorded_at, f"[{colour}]{r.outcome}[/]", r.target, r.previous_version or "-",
                          r.alarm or "-", r.reason or "-", r.recorded_by)
        console.print(table)


@alias_app.command("set")
def alias_set(name: str = typer.Argument(...), alias: str = typer.Argument(...), version: str = typer.Argument(...),
              reason: str = typer.Option("", help="Why: stored in the audit log."),
              expect: str = typer.Option(None, help="Only move if the alias points at this version now "
                                                    "('none': only if unset)."),
              bucket: str = BUCKET) -> None:
    """Point NAME@ALIAS at VERSION (atomic; recorded in the audit log). No gate: see `mlship promote`."""
    from mlship.registry.store import ANY

    expected: Any = ANY if expect is None else (None if expect.lower() == "none" else expect)
    try:
        record = _registry(bucket, sagemaker=False).set_alias(name, alias, version, expect=expected, reason=reason)
    except MlshipError as exc:
        fail(str(exc))
    typer.echo(f"{name}@{alias}: {record.previous or '(unset)'} -> {record.version} "
               f"(generation {record.generation}, by {record.updated_by})")


@alias_app.command("get")
def alias_get(name: str = typer.Argument(...), alias: str = typer.Argument(...), bucket: str = BUCKET,
              as_json: bool = typer.Option(False, "--json")) -> None:
    """Print the version NAME@ALIAS points at."""
    try:
        reg = _registry(bucket, sagemaker=False)
        record = reg.get_alias(name, alias)
    except MlshipError as exc:
        fail(str(exc))
    if record is None:
        fail(f"alias {name}@{alias} is not set")
    if as_json:
        typer.echo(json.dumps({**record.to_dict(), "uri": reg.bundle_uri(name, record.version)}, indent=2))
    else:
        typer.echo(record.version)


@alias_app.command("history")
def alias_history(name: str = typer.Argument(...), alias: str = typer.Argument(...), bucket: str = BUCKET,
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """The audit log of an alias (who moved it, when, from, to, why) and, between its moves, the
    failed rollouts of versions that tried to become it."""
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    try:
        entries = _registry(bucket, sagemaker=False).history_with_rollouts(name, alias)
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    table = new_table("#", "when", "who", "from", "to", "why", title=f"{name}@{alias}")
    for e in entries:
        if e.move is not None:
            m = e.move
            table.add_row(str(m.generation), m.updated_at, m.updated_by, m.previous or "-", m.version, m.reason)
        elif e.rollout is not None:
            r = e.rollout
            table.add_row("[red]✗[/]", r.recorded_at, r.recorded_by, e.alias_version or "-",
                          f"[red]{r.version} {r.outcome}[/]", r.describe(e.alias_version))
    new_console().print(table)


def evaluate_cmd(
    model: str = typer.Argument(..., help="Bundle: directory, .tar.gz, s3:// or mlship://NAME@ALIAS."),
    data: Path = typer.Option(..., "--data", help="Labelled data (.csv or .parquet)."),
    label: str = typer.Option(None, help="Label column (default: the one recorded at export)."),
    slice_: list[str] = typer.Option([], "--slice", help="Column to report metrics per value of (repeatable)."),
    sensitive: str = typer.Option(None, help="Sensitive attribute for fairness metrics."),
    bootstrap: int = typer.Option(200, help="Bootstrap resamples for confidence intervals (0: none)."),
    explain_rows: int = typer.Option(500, "--explain-rows", help="Rows explained for global attributions and "
                                     "permutation importance (at most ~10 s of explaining; 0: none)."),
    out: Path = typer.Option(None, "--out", "-o", help="Report directory (default: reports/evaluation/<time>/, "
                             "with reports/evaluation/latest)."),
    public_key: Path = typer.Option(None, "--public-key", help="Require and check the bundle's signature."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Evaluate a bundle through onnxruntime: metrics with intervals, slices, fairness, latency."""
    from mlship.cli.common import console as new_console
    from mlship.evaluation.evaluate import evaluate, write_report

    console = new_console(stderr=True)
    try:
        frame = _load_frame(data)
        with console.status("evaluating") as status:
            ev = evaluate(model, frame, label, slices=slice_, sensitive=sensitive, bootstrap=bootstrap,
                          explain_rows=explain_rows, public_key=public_key,
                          progress=lambda m: (status.update(m), console.log(m)))
        folder = report_folder(out, "evaluation")
        json_path, html_path = write_report(ev, folder)
        mark_latest(folder, out)
    except (MlshipError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        return emit_json({**ev.to_dict(), "reports": [str(json_path), str(html_path)]})
    _print_metrics(ev)
    typer.echo(f"report: {json_path} and {html_path}")


def _print_metrics(ev: Any) -> None:
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    table = new_table("metric", "value", "95% interval", title=f"{ev.model['name']}:{ev.model['version']} "
                  f"on {ev.data['valid_rows']} rows")
    for m, v in ev.metrics.items():
        ci = ev.intervals.get(m) or {}
        span = f"[{ci['low']:.4f}, {ci['high']:.4f}]" if ci.get("low") is not None else "-"
        table.add_row(m, "-" if v is None else f"{v:.4f}", span)
    if ev.fairness:
        for k in ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference"):
            table.add_row(f"{k} ({ev.fairness['attribute']})", f"{ev.fairness[k]:.4f}", "")
    if ev.latency.get("single_row_ms"):
        lat = ev.latency["single_row_ms"]
        table.add_row("latency p50 / p99 (ms)", f"{lat['p50']:.3f} / {lat['p99']:.3f}", "")
    new_console().print(table)


def promote_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Registered candidate version."),
    data: Path = typer.Option(..., "--data", help="Labelled evaluation data (.csv or .parquet)."),
    thresholds: Path = typer.Option(..., "--thresholds", "-t", envvar="MLSHIP_GATE_THRESHOLDS",
                                    help="Thresholds file (.yaml or .json); default: mlship.toml's thresholds."),
    label: str = typer.Option(None, help="Label column (default: the one recorded at export)."),
    alias: str = typer.Option("challenger", help="Alias to move when the gate passes."),
    against: str = typer.Option("champion", help="Alias to gate against (the model in production)."),
    reason: str = typer.Option("", help="Why: stored in the audit log."),
    out: Path = typer.Option(None, "--out", "-o", help="Report directory (default: reports/gate/<time>/, "
                             "with reports/gate/latest)."),
    public_key: Path = typer.Option(None, "--public-key", help="Require and check the bundles' signatures."),
    bucket: str = BUCKET,
    sagemaker: bool = SAGEMAKER,
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Gate VERSION against NAME@champion; only if it passes, move NAME@challenger to it and approve its
    SageMaker package. The champion moves when a rollout of the challenger succeeds (`mlship rollout`)."""
    from mlship.cli.common import console as new_console
    from mlship.evaluation.gate import load_thresholds, promote

    console = new_console(stderr=True)
    try:
        limits = load_thresholds(thresholds)
        frame = _load_frame(data)
        reg = _registry(bucket, sagemaker)
        folder = report_folder(out, "gate")
        with console.status("gating") as status:
            result = promote(reg, name, version, frame, limits, label=label, alias=alias, against=against,
                             reason=reason, public_key=public_key, report_dir=folder,
                             progress=lambda m: (status.update(m), console.log(m)))
    except (MlshipError, ValueError) as exc:
        fail(str(exc))
    mark_latest(folder, out)
    gate = result.gate
    champ = gate.champion.model["version"] if gate.champion else None
    if as_json:
        emit_json(_promotion_doc(result))
        raise typer.Exit(0 if gate.passed else 1)
    new_console().print(_gate_table(gate, f"gate {name}:{version} vs {name}@{against} ({champ or 'not set yet'})"))
    if result.report_paths:
        typer.echo(f"report: {result.report_paths[0]} and {result.report_paths[1]}")
    if not gate.passed:
        failed = "; ".join(c.describe() for c in gate.failures)
        typer.secho(f"refused: {len(gate.failures)} of {len(gate.checks)} checks failed ({failed}); "
                    f"nothing changed", fg="red", err=True)
        raise typer.Exit(1)
    moved = result.moved
    typer.secho(f"promoted: {name}@{alias} {moved.previous or '(unset)'} -> {moved.version} "
                f"(generation {moved.generation}; gated against {name}@{against} {champ or '(unset)'})"
                + (f"; approved {result.package_arn}" if result.package_arn else ""), fg="green")


def _promotion_doc(result: Any) -> dict[str, Any]:
    """``promote --json``: the gate's verdict, the alias moved (or not) and the report files."""
    moved = result.moved
    return {"passed": result.gate.passed, "gate": result.gate.to_dict(), "alias": result.alias,
            "against": result.against, "package_arn": result.package_arn,
            "moved": None if moved is None else {"version": moved.version, "previous": moved.previous,
                                                  "generation": moved.generation},
            "reports": [str(p) for p in result.report_paths or ()]}


def _gate_table(gate: Any, title: str) -> Any:
    from mlship.cli.common import table as new_table

    table = new_table("check", "threshold", "candidate", "champion", "result", title=title)
    for c in gate.checks:
        table.add_row(c.name, f"{c.sign} {c.threshold:g}", "n/a" if c.value is None else f"{c.value:.4f}",
                      "-" if c.champion is None else f"{c.champion:.4f}",
                      "[green]pass[/]" if c.passed else "[red]FAIL[/]")
    return table


def register(app: typer.Typer) -> None:
    """Add this path's commands to the main app."""
    app.command("register")(register_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("promote")(promote_cmd)
    app.add_typer(models_app, name="models")
    app.add_typer(alias_app, name="alias")
