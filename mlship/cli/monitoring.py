"""``mlship drift`` and ``mlship monitor run``: drift reports from files and monitoring runs on AWS
(or the local AWS started by ``mlship local up``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail, mark_latest, report_folder

monitor_app = typer.Typer(help="Monitor a deployed model: drift, performance with late labels, fairness.",
                          no_args_is_help=True)



def _thresholds(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    text = Path(value).read_text() if not value.lstrip().startswith("{") and Path(value).is_file() else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--thresholds is neither a JSON object nor a JSON file: {exc}")
    if not isinstance(data, dict):
        fail("--thresholds must be a JSON object")
    return data


def _print_drift(report: dict[str, Any]) -> None:
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    table = new_table(title="drift by feature")
    for col in ("feature", "type", "drifted", "method", "score", "KS D", "W (norm.)", "PSI", "JS", "Δ null"):
        table.add_column(col)

    def f(x: Any) -> str:
        return "–" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))

    rows = list(report["features"].items()) + [(f"prediction.{k}", v) for k, v in report["predictions"].items()]
    for name, feat in rows:
        verdict = {True: "[red]yes[/]", False: "no"}.get(feat.get("drifted"), "–")
        table.add_row(name, str(feat.get("type")), verdict,
                      str(feat.get("method")), f(feat.get("score")), f(feat.get("ks_statistic")),
                      f(feat.get("wasserstein_norm")), f(feat.get("psi")), f(feat.get("jensenshannon")),
                      f(feat.get("null_rate_change")))
    new_console().print(table)


class _RowProgress:
    """A progress bar of the rows read, shown from the first batch on (an early error prints alone)."""

    def __init__(self, console: Any):
        self.console, self.progress, self.task = console, None, None

    def update(self, done: int, total: int) -> None:
        if self.progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("reading current data"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("rows", total=total)
        self.progress.update(self.task, completed=done, total=total)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def drift_cmd(
    reference: str = typer.Argument(..., help="Bundle (dir, .tar.gz, s3://, mlship://) or reference dataset."),
    current: Path = typer.Argument(..., help="Current data: .csv, .parquet, .jsonl or a directory of them."),
    out: Path = typer.Option(None, "--out", "-o", help="Directory for report.json + report.html "
                             "(default: reports/drift/<time>/, with reports/drift/latest)."),
    thresholds: str = typer.Option(None, help="Threshold overrides: JSON object or file (see docs/monitoring.md)."),
    exclude: list[str] = typer.Option([], help="Columns to ignore (e.g. the label); repeatable."),
    batch_rows: int = typer.Option(200_000, help="Rows per streamed batch."),
    fail_on_drift: bool = typer.Option(False, help="Exit with code 3 when the dataset drifts."),
    as_json: bool = typer.Option(False, "--json", help="Print the report document as JSON (stdout)."),
) -> None:
    """Compare CURRENT with a bundle's baseline profile or a reference dataset; write JSON + HTML reports."""
    from mlship import api
    from mlship.cli.common import console as new_console
    from mlship.errors import MlshipError

    th = _thresholds(thresholds)
    rows = _RowProgress(new_console(stderr=True))
    try:
        folder = report_folder(out, "drift")
        found = api.drift(reference, current, out=folder, thresholds=th, exclude=list(exclude),
                          batch_rows=batch_rows, on_rows=rows.update)
    except (MlshipError, ValueError, FileNotFoundError) as exc:
        rows.stop()
        if out is None:  # the run wrote nothing: leave no empty report folder behind
            shutil.rmtree(folder, ignore_errors=True)
        fail(str(exc))
    rows.stop()
    mark_latest(folder, out)
    if as_json:
        emit_json(found.report)
    else:
        _print_drift(found.report["drift"])
        typer.echo(found.summary)
        typer.echo(f"reports: {found.paths['json']} and {found.paths['html']}")
    if fail_on_drift and found.dataset_drift:
        raise typer.Exit(3)


@monitor_app.command("run")
def monitor_run(
    model: str = typer.Option(None, envvar="MODEL_URI", help="Bundle URI (s3://, mlship://NAME@ALIAS, dir)."),
    records_bucket: str = typer.Option(None, envvar="RECORDS_BUCKET", help="Bucket of the inference records."),
    records_prefix: str = typer.Option("inference-records", envvar="RECORDS_PREFIX"),
    labels_prefix: str = typer.Option("labels", envvar="LABELS_PREFIX"),
    reports_bucket: str = typer.Option(None, envvar="REPORTS_BUCKET", help="Default: the records bucket."),
    reports_prefix: str = typer.Option("monitoring", envvar="REPORTS_PREFIX"),
    event_bus: str = typer.Option("default", envvar="EVENT_BUS_NAME"),
    window_hours: float = typer.Option(1.0, envvar="WINDOW_HOURS", help="Hours of records to analyse."),
    label_window_hours: float = typer.Option(24.0, envvar="LABEL_WINDOW_HOURS"),
    sensitive: str = typer.Option(None, envvar="SENSITIVE_ATTRIBUTE",
                                  help="Sensitive attribute (default: the bundle's)."),
    layout: str = typer.Option("mlship", envvar="RECORDS_LAYOUT", help="mlship | data-capture"),
    thresholds: str = typer.Option(None, envvar="DRIFT_THRESHOLDS", help="Drift threshold overrides (JSON)."),
    tolerance: float = typer.Option(0.05, envvar="PERFORMANCE_TOLERANCE", help="Allowed metric drop."),
    attribution_rows: int = typer.Option(500, envvar="ATTRIBUTION_SAMPLE_ROWS", min=0,
                                         help="Window rows explained for attribution drift (0: off)."),
    attribution_threshold: float = typer.Option(0.05, envvar="ATTRIBUTION_THRESHOLD", min=0.001, max=1.0,
                                                help="Total variation of the attribution shares that counts "
                                                "as attribution drift."),
    metrics: str = typer.Option("api", help="How to publish CloudWatch metrics: api | emf | both | none."),
    events: bool = typer.Option(True, help="Send EventBridge events when thresholds are crossed."),
    read_workers: int = typer.Option(8, envvar="READ_WORKERS", min=1, max=64,
                                     help="S3 objects of the window fetched at once."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write report.json + report.html here."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Run the monitor once (what the scheduled Lambda does) against AWS or the local AWS."""
    from mlship.cli.common import console as new_console
    from mlship.errors import MlshipError
    from mlship.monitoring import MonitorConfig, run_monitor

    if not model or not records_bucket:
        fail("--model and --records-bucket (or MODEL_URI and RECORDS_BUCKET) are required")
    if metrics not in ("api", "emf", "both", "none"):
        fail(f"--metrics must be api, emf, both or none, not {metrics!r}")
    console = new_console(stderr=True)
    config = MonitorConfig(model_uri=model, records_bucket=records_bucket, records_prefix=records_prefix,
                           labels_prefix=labels_prefix, reports_bucket=reports_bucket or records_bucket,
                           reports_prefix=reports_prefix, event_bus_name=event_bus, window_hours=window_hours,
                           label_window_hours=label_window_hours, sensitive_attribute=sensitive, layout=layout,
                           thresholds=_thresholds(thresholds), performance_tolerance=tolerance,
                           metrics_mode=metrics, emit_events=events, attribution_sample_rows=attribution_rows,
                           attribution_threshold=attribution_threshold, read_workers=read_workers)
    try:
        result = run_monitor(config, progress=console.log)
    except (MlshipError, ValueError, RuntimeError) as exc:
        fail(str(exc))
        return
    except Exception as exc:  # botocore errors (missing bucket, no credentials): one line, no traceback
        fail(f"{type(exc).__name__}: {exc}")
        return
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(result.report, indent=2, default=str))
        (out / "report.html").write_text(result.html)
    if as_json:
        return emit_json(result.report)
    _print_drift(result.report["drift"])
    typer.echo(json.dumps(result.summary(), indent=2, default=str))


def register(app: typer.Typer) -> None:
    """Add ``mlship drift`` and ``mlship monitor`` to the main app."""
    app.command("drift")(drift_cmd)
    app.add_typer(monitor_app, name="monitor")
