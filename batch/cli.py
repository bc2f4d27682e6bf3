"""``mlship batch run|backfill|submit|status``: Spark batch scoring here, EMR Serverless on AWS."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from mlship.cli.common import fail

batch_app = typer.Typer(help="Batch scoring on Spark (local[*] here, EMR Serverless on AWS).",
                        no_args_is_help=True)

# options the commands share (one definition each: run, backfill and submit take them alike)
ModelOption = Annotated[str, typer.Option(help="Bundle: directory, .tar.gz, s3:// or mlship://NAME@ALIAS.")]
FormatOption = Annotated[str, typer.Option("--format", help="parquet or csv (default: from the input).")]
IdColumnOption = Annotated[str, typer.Option(help="Unique input column to use as row_id.")]
MasterOption = Annotated[str, typer.Option(help="Spark master.")]
PublicKeyOption = Annotated[str, typer.Option(help="Trusted public key (PEM path): signature required.")]
DriftOption = Annotated[bool, typer.Option(help="Compare each batch with the bundle's baseline profile.")]
ExplainOption = Annotated[bool, typer.Option(help="Write each scored row's base value and field contributions.")]
ConfOption = Annotated[list[str], typer.Option("--conf", metavar="KEY=VALUE",
                                               help="Extra Spark configuration (repeatable).")]



def _print_summary(summary: dict[str, Any]) -> None:
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    console = new_console(stderr=True)
    counts = summary["counts"]
    table = new_table(title=f"run {summary['run_id']}: model {summary['model']['name']}:{summary['model']['version']}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("input rows", f"{counts['input']:,}")
    table.add_row("scored", f"{counts['scored']:,}")
    table.add_row("quarantined", f"{counts['quarantined']:,}")
    causes = counts.get("quarantine_causes", {})
    for cause in ("input", "model"):  # bad input vs a model emitting NaN/inf: different owners
        table.add_row(f"  {cause}", f"{causes.get(cause, 0):,}")
    for kind, n in counts["quarantine_reasons"].items():
        table.add_row(f"    {kind}", f"{n:,}")
    table.add_row("reconciled", "yes" if counts["reconciled"] else "NO")
    table.add_row("throughput", f"{summary['throughput_rows_per_s']:,.0f} rows/s")
    table.add_row("total time", f"{summary['durations_s']['total_s']:.1f} s")
    drift = summary.get("drift", {})
    table.add_row("drift", drift.get("summary") or drift.get("status", "-"))
    table.add_row("output", str(summary["output"]["run_path"]))
    table.add_row("quarantine", str(summary["output"]["quarantine_path"]))
    console.print(table)


@batch_app.command("run")
def run(
    model: ModelOption,
    input: Annotated[str, typer.Option("--input", help="Parquet/CSV file or directory, or s3:// URI.")],
    output: Annotated[str, typer.Option(help="Output root (directory or s3:// URI).")],
    run_id: Annotated[str, typer.Option(help="Idempotency key: rerunning an id replaces its output.")],
    format: FormatOption = None,
    id_column: IdColumnOption = None,
    master: MasterOption = "local[*]",
    public_key: PublicKeyOption = None,
    threads: int = typer.Option(1, help="onnxruntime threads per Python worker."),
    batch_rows: int = typer.Option(10_000, help="Arrow batch size (rows per call of the scoring UDF)."),
    drift: DriftOption = True,
    explain: ExplainOption = False,
    progress: bool = typer.Option(True, help="Show a progress bar."),
    summary: str = typer.Option(None, help="Also write the summary JSON here."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary JSON on stdout."),
    conf: ConfOption = [],  # noqa: B006 - typer copies the default
) -> None:
    """Score a batch with a bundle on Spark; quarantine bad rows; commit the run atomically."""
    from mlship.batch.job import JobConfig, run_job, spark_conf_pairs

    from mlship.errors import MlshipError

    try:
        spark_conf = spark_conf_pairs(conf)
    except MlshipError as exc:
        fail(str(exc), code=2)
    config = JobConfig(model=model, input=input, output=output, run_id=run_id, format=format,
                       id_column=id_column, master=master, public_key=public_key, threads=threads,
                       max_records_per_batch=batch_rows, drift=drift, explain=explain, progress=progress,
                       summary_path=summary,
                       spark_conf=spark_conf)
    try:
        result = run_job(config)
    except MlshipError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(result, default=str))
    else:
        _print_summary(result)


@batch_app.command("backfill")
def backfill(
    model: ModelOption,
    input: Annotated[str, typer.Option("--input", help="The partitioned input root (INPUT/date=YYYY-MM-DD/).")],
    output: Annotated[str, typer.Option(help="Output root (directory or s3:// URI): runs land in run_id=DATE.")],
    first: Annotated[str, typer.Option("--from", help="First date, YYYY-MM-DD.")],
    last: Annotated[str, typer.Option("--to", help="Last date, YYYY-MM-DD (inclusive).")],
    force: bool = typer.Option(False, help="Rerun dates that are committed already (each replaces its output)."),
    format: FormatOption = None,
    id_column: IdColumnOption = None,
    master: MasterOption = "local[*]",
    public_key: PublicKeyOption = None,
    drift: DriftOption = True,
    explain: ExplainOption = False,
    progress: bool = typer.Option(True, help="Show a progress bar per date."),
    conf: ConfOption = [],  # noqa: B006 - typer copies the default
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON on stdout."),
) -> None:
    """Score the dates a schedule missed: INPUT/date=D/ as run D for every D from --from to --to
    without a committed run; exit 1 when a date failed."""
    from mlship.batch import schedule
    from mlship.batch.job import JobConfig, spark_conf_pairs

    from mlship.errors import MlshipError

    try:
        days = schedule.dates(schedule.parse_day(first, "--from"), schedule.parse_day(last, "--to"))
        base = JobConfig(model=model, input=input, output=output, run_id="backfill", format=format,
                         id_column=id_column, master=master, public_key=public_key, drift=drift, explain=explain,
                         progress=progress,
                         spark_conf=spark_conf_pairs(conf))
    except MlshipError as exc:
        fail(str(exc), code=2)

    def show(outcome: Any) -> None:
        typer.secho(f"{outcome.day}: {outcome.status} {outcome.detail}".rstrip(), err=True,
                    fg={"failed": "red", "skipped": "yellow"}.get(outcome.status))

    outcomes = schedule.backfill(days, base, force=force, on_day=show)
    if as_json:
        typer.echo(json.dumps([{"date": o.day.isoformat(), "status": o.status, "detail": o.detail,
                                "counts": o.counts} for o in outcomes]))
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


@batch_app.command("submit")
def submit(
    model: Annotated[str, typer.Option(help="Bundle URI (a local bundle is uploaded to the artifacts).")],
    input: str = typer.Option(..., "--input", help="s3:// input (Parquet or CSV)."),
    output: str = typer.Option(..., help="s3:// output root."),
    run_id: str = typer.Option(..., help="Idempotency key of the run."),
    artifacts: str = typer.Option(..., help="s3://bucket/prefix for the entry point and archives."),
    role_arn: str = typer.Option(..., help="Execution role ARN of the job run."),
    application_id: str = typer.Option(None, help="EMR Serverless application id."),
    application_name: str = typer.Option("mlship-batch", help="Find or create the application by name "
                                         "(when --application-id is not given)."),
    format: FormatOption = None,
    id_column: IdColumnOption = None,
    deps_archive: str = typer.Option(None, help="Existing dependencies archive (.tar.gz, local or s3://)."),
    build_deps: bool = typer.Option(False, help="Build the dependencies archive with pip (needs PyPI)."),
    python_version: str = typer.Option("3.11", help="Python version of the EMR image (for --build-deps)."),
    python: str = typer.Option(None, help="Python executable on the EMR image (sets PYSPARK_PYTHON)."),
    log_uri: str = typer.Option(None, help="s3:// URI for the Spark logs."),
    drift: DriftOption = True,
    explain: ExplainOption = False,
) -> None:
    """Package the job, upload it and start an EMR Serverless job run."""
    from mlship.batch import emr

    from mlship.errors import MlshipError

    try:
        app_id = application_id or emr.ensure_application(application_name)
        result = emr.submit(application_id=app_id, execution_role_arn=role_arn, artifacts=artifacts,
                            model=model, input=input, output=output, run_id=run_id, fmt=format,
                            id_column=id_column, deps_archive=deps_archive, build_deps=build_deps,
                            python_version=python_version, python_executable=python, log_uri=log_uri,
                            drift=drift, explain=explain)
    except MlshipError as exc:
        fail(str(exc))
    except Exception as exc:  # botocore errors: one line naming the AWS error
        fail(f"start_job_run failed: {exc}")
    typer.echo(json.dumps(result))
    typer.secho(f"submitted job run {result['job_run_id']} to application {app_id}; follow it with: "
                f"mlship batch status --application-id {app_id} --job-run-id {result['job_run_id']} --wait",
                err=True)


@batch_app.command("monitor-artifacts")
def monitor_artifacts(
    artifacts: str = typer.Option(..., help="s3://bucket/prefix for the entry point and archives."),
    deps_archive: str = typer.Option(None, help="Existing dependencies archive (.tar.gz, local or s3://)."),
    build_deps: bool = typer.Option(False, help="Build the dependencies archive with pip (needs PyPI)."),
    python_version: str = typer.Option("3.11", help="Python version of the EMR image (for --build-deps)."),
    python: str = typer.Option(None, help="Python executable on the EMR image (sets PYSPARK_PYTHON)."),
) -> None:
    """Upload the monitor's Spark job for large windows; print the monitor settings that submit it
    (SPARK_ENTRY_POINT, SPARK_SUBMIT_PARAMETERS; with SPARK_APPLICATION_ID and SPARK_JOB_ROLE_ARN)."""
    from mlship.batch import emr

    from mlship.errors import MlshipError

    try:
        result = emr.monitor_artifacts(artifacts, deps_archive=deps_archive, build_deps=build_deps,
                                       python_version=python_version, python_executable=python)
    except MlshipError as exc:
        fail(str(exc))
    typer.echo(json.dumps(result))


@batch_app.command("status")
def status(
    application_id: str = typer.Option(..., help="EMR Serverless application id."),
    job_run_id: str = typer.Option(..., help="Job run id (from submit)."),
    wait: bool = typer.Option(False, help="Follow the run until it succeeds, fails or is cancelled."),
    interval: float = typer.Option(10.0, help="Seconds between polls with --wait."),
    timeout: float = typer.Option(3600.0, help="Give up after this many seconds with --wait."),
) -> None:
    """Show (or follow) an EMR Serverless job run; exits 1 if it failed or was cancelled."""
    from mlship.batch import emr

    from mlship.errors import MlshipError

    def show(state: dict[str, Any]) -> None:
        typer.secho(f"{state['job_run_id']}: {state['state']} {state['state_details']}".rstrip(), err=True)

    try:
        result = (emr.wait(application_id, job_run_id, timeout=timeout, interval=interval, on_change=show)
                  if wait else emr.status(application_id, job_run_id))
    except MlshipError as exc:
        fail(str(exc))
    typer.echo(json.dumps(result))
    if result["state"] in ("FAILED", "CANCELLED"):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``mlship batch ...`` to the main app."""
    app.add_typer(batch_app, name="batch")
