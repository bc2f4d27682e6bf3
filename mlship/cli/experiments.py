"""``mlship abtest analyze``: the decision of an A/B test from a per-unit table or from inference
records and late labels on S3, with ``abtest.json`` + ``abtest.html`` (see docs/experiments.md).

Exit codes: 0 with the decision printed (``ship``, ``keep``, ``continue`` or ``invalid``), 1 when
AWS cannot be read, 2 for bad input (never a decision)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail, mark_latest, report_folder

abtest_app = typer.Typer(help="A/B tests: a statistical decision between the champion and a challenger.",
                         no_args_is_help=True)


def _load(data: Path | None, bucket: str | None, prefix: str, labels_prefix: str, model: str | None,
          unit_field: str | None, outcome: str, columns: dict[str, Any], control: str, treatment: str,
          metric: str) -> Any:
    """The experiment's two arms from the table or from S3."""
    from mlship.experiments.data import from_frame, read_table
    from mlship.experiments.labelled import load_s3

    if (data is None) == (bucket is None):
        fail("give either --data FILE or --bucket (with --prefix), not both or neither", code=2)
    if data is not None:
        return from_frame(read_table(data), control=control, treatment=treatment, metric=metric, **columns)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return load_s3(bucket or "", prefix, labels_prefix=labels_prefix, model=model, control=control,
                       treatment=treatment, metric=metric, outcome=outcome, unit_field=unit_field)
    except (ClientError, BotoCoreError) as exc:
        fail(f"cannot read s3://{bucket}/{prefix}: {exc}", code=1)


def _print(result: Any, paths: tuple[Path, Path]) -> None:
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    console = new_console()
    table = new_table(title=f"A/B test ({result.metric}, {result.test.method})")
    for col in ("variant", "role", "units", "mean", "std"):
        table.add_column(col)
    for v in (result.control, result.treatment):
        table.add_row(v.name, v.role, str(v.units), f"{v.mean:.4g}", f"{v.std:.4g}")
    console.print(table)
    t = result.test
    console.print(f"relative lift {t.relative_lift:+.2%} [{t.relative_lift_ci[0]:+.2%}, {t.relative_lift_ci[1]:+.2%}]"
                  f", p = {t.p_value:.3g}; SRM p = {result.srm.p_value:.3g}")
    colour = {"ship": "green", "keep": "yellow", "continue": "cyan", "invalid": "red"}[result.decision]
    console.print(f"decision: [bold {colour}]{result.decision}[/]")
    for reason in result.reasons:
        console.print(f"  - {reason}", highlight=False)
    console.print(f"report: {paths[1]} (JSON: {paths[0]})")


@abtest_app.command("analyze")
def analyze_cmd(
    data: Path = typer.Option(None, "--data", help="Per-unit table: .csv or .parquet (one row per unit)."),
    bucket: str = typer.Option(None, help="S3 bucket of the inference records and labels (instead of --data)."),
    prefix: str = typer.Option("inference-records", help="S3 prefix of the inference records (e.g. one model)."),
    labels_prefix: str = typer.Option("labels", help="S3 prefix of the late labels."),
    model: str = typer.Option(None, help="Model name: read labels under LABELS_PREFIX/model=NAME/ only."),
    unit_field: str = typer.Option(None, help="Input field that identifies a unit (default: the request)."),
    outcome: str = typer.Option("correct", help="S3: outcome of a row, 'correct' (prediction == label) or 'label'."),
    variant_column: str = typer.Option("variant", help="Table column naming each unit's variant."),
    outcome_column: str = typer.Option("outcome", help="Table column with each unit's outcome."),
    time_column: str = typer.Option(None, help="Table column giving arrival order (default: row order)."),
    latency_column: str = typer.Option(None, help="Table column with latency in ms (latency guardrail)."),
    error_column: str = typer.Option(None, help="Table column with a 0/1 error flag (error-rate guardrail)."),
    metric: str = typer.Option("binary", help="binary (0/1 outcome) or continuous."),
    control: str = typer.Option("control", help="The control (champion) variant's name."),
    treatment: str = typer.Option("treatment", help="The treatment (challenger) variant's name."),
    alpha: float = typer.Option(0.05, help="Significance level (two-sided)."),
    sequential: bool = typer.Option(False, "--sequential", help="Always-valid inference: safe to read at every look."),
    n_star: int = typer.Option(None, help="Sequential: total units the bound is tuned for (default: the MDE's)."),
    mde: float = typer.Option(0.05, help="Minimum detectable effect as a relative lift (0.05 = +5 %)."),
    power: float = typer.Option(0.8, help="Power for the MDE."),
    baseline: float = typer.Option(None, help="Control mean for the power calculation (default: observed)."),
    treatment_share: float = typer.Option(0.5, help="The design's share of units sent to the treatment."),
    min_units: int = typer.Option(30, help="Fewest units per variant the analysis accepts."),
    lower_is_better: bool = typer.Option(False, "--lower-is-better", help="A lower outcome is the better one."),
    max_latency_p99_ms: float = typer.Option(None, help="Guardrail: treatment latency p99 at most this (ms)."),
    max_latency_p99_increase: float = typer.Option(None, help="Guardrail: p99 at most control's × (1 + this)."),
    max_error_rate: float = typer.Option(None, help="Guardrail: treatment error rate at most this."),
    max_error_rate_increase: float = typer.Option(None, help="Guardrail: error rate at most control's + this."),
    out: Path = typer.Option(None, "--out", "-o", help="Directory for abtest.json + abtest.html "
                             "(default: reports/abtest/<time>/, with reports/abtest/latest)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Analyse an A/B test and print its decision: ship, keep, continue or invalid, with the reasons."""
    from mlship.experiments.analysis import analyze
    from mlship.experiments.config import AbTestConfig
    from mlship.experiments.errors import ExperimentInputError
    from mlship.experiments.guardrails import Guardrails
    from mlship.experiments.report import write_report

    columns = {"variant_column": variant_column, "outcome_column": outcome_column, "time_column": time_column,
               "latency_column": latency_column, "error_column": error_column}
    guards = Guardrails(max_latency_p99_ms, max_latency_p99_increase, max_error_rate, max_error_rate_increase)
    cfg = AbTestConfig(metric=metric, alpha=alpha, power=power, mde=mde, sequential=sequential, n_star=n_star,
                       treatment_share=treatment_share, min_units=min_units, higher_is_better=not lower_is_better,
                       baseline=baseline, guardrails=guards)
    try:
        cfg.validate()
        exp = _load(data, bucket, prefix, labels_prefix, model, unit_field, outcome, columns, control, treatment,
                    metric)
        result = analyze(exp, cfg)
    except ExperimentInputError as exc:
        fail(" ".join(str(exc).split()), code=2)  # one line, whatever a parser's message holds
    folder = report_folder(out, "abtest")
    paths = write_report(result, exp, folder)
    mark_latest(folder, out)
    if as_json:
        return emit_json({**result.to_dict(), "reports": [str(p) for p in paths]})
    _print(result, paths)


def register(app: typer.Typer) -> None:
    """Add the ``abtest`` commands to ``app``."""
    app.add_typer(abtest_app, name="abtest")
