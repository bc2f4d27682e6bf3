"""``mlship shadow report``: how a shadow model agrees with the champion on the same live rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail, mark_latest, report_folder

shadow_app = typer.Typer(help="Shadow deployments: the agreement report.", no_args_is_help=True)


@shadow_app.command("report")
def report_cmd(
    bucket: str = typer.Option(..., "--bucket", help="Bucket of the inference records (and labels)."),
    model: str = typer.Option(None, "--model", help="The champion NAME/VERSION whose capture holds the Lambda "
                                                    "shadow's answers."),
    endpoint: str = typer.Option(None, "--endpoint", help="An endpoint with a shadow variant: read its data "
                                                          "capture instead."),
    shadow_variant: str = typer.Option(None, "--shadow-variant", help="The endpoint's shadow variant."),
    champion_variant: str = typer.Option(None, "--champion-variant", help="The endpoint's production variant "
                                                                          "(default: every other one)."),
    prefix: str = typer.Option(None, "--prefix", help="Records prefix (default inference-records, or "
                                                      "datacapture with --endpoint)."),
    hours: float = typer.Option(24.0, "--hours", help="Window: the last N hours (ending --until)."),
    until: str = typer.Option(None, "--until", help="Window end, ISO-8601 (default now)."),
    labels_prefix: str = typer.Option("labels", "--labels-prefix", help="Late labels prefix ('' for none)."),
    slices: list[str] = typer.Option(None, "--slice", help="Input to slice disagreement by (repeatable; default "
                                                           "every categorical input)."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the agreement interval."),
    out: Path = typer.Option(None, "--out", "-o", help="Report directory (default: reports/shadow/<time>/, "
                             "with reports/shadow/latest)."),
    register: str = typer.Option(None, "--register", help="Attach the report to NAME/VERSION (the shadow's) in "
                                                          "the registry, for the gate's shadow thresholds."),
    registry_bucket: str = typer.Option(None, "--registry-bucket", help="Registry bucket (default: "
                                                                        "$MLSHIP_REGISTRY_BUCKET)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Join champion and shadow answers by inference id over a window; write JSON + HTML."""
    from mlship.errors import MlshipError
    from mlship.monitoring.shadow_report import ShadowSpec, build_report, write_report

    try:
        source, window = _source(bucket, model, endpoint, shadow_variant, prefix, hours, until)
        if not 0.5 < confidence < 1:
            raise _bad(f"--confidence must be between 0.5 and 1, not {confidence}")
        records, labels = _read(source, window, labels_prefix)
        spec = ShadowSpec(shadow_variant=shadow_variant, primary_variant=champion_variant, slices=slices or [],
                          confidence=confidence, task=_task(records))
        report = build_report(records, spec, labels=labels, window=window.to_dict(), source=source.describe())
        folder = report_folder(out, "shadow")
        json_path, html_path = write_report(report, folder)
        mark_latest(folder, out)
        attached = _attach(register, registry_bucket, report, html_path) if register else None
    except MlshipError as exc:
        fail(str(exc), code=2)
    if as_json:
        return emit_json({**report, "reports": [str(json_path), str(html_path)], "attached": attached})
    _print(report, json_path, html_path, attached)


def _bad(message: str) -> Exception:
    from mlship.monitoring.shadow import ShadowReportError

    return ShadowReportError(message)


def _source(bucket: str, model: str | None, endpoint: str | None, shadow_variant: str | None, prefix: str | None,
            hours: float, until: str | None) -> tuple[Any, Any]:
    from mlship.monitoring.shadow_report import ShadowSource
    from mlship.monitoring.window import Window

    if bool(model) == bool(endpoint):
        raise _bad("give --model NAME/VERSION (the Lambda's capture) or --endpoint NAME (data capture), not both")
    if endpoint and not shadow_variant:
        raise _bad("--endpoint needs --shadow-variant (which variant is the shadow)")
    if hours <= 0:
        raise _bad(f"--hours must be positive, not {hours}")
    try:
        end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else datetime.now(UTC)
    except ValueError:
        raise _bad(f"--until is not an ISO-8601 time: {until!r}") from None
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if endpoint:
        return ShadowSource(bucket, prefix or "datacapture", endpoint=endpoint), Window.ending(end, hours)
    name, sep, version = str(model).partition("/")
    if not sep or not name or not version:
        raise _bad(f"--model wants NAME/VERSION (the champion answering), not {model!r}")
    return ShadowSource(bucket, prefix or "inference-records", model=name, version=version), Window.ending(end, hours)


def _read(source: Any, window: Any, labels_prefix: str) -> tuple[list[dict[str, Any]], dict[Any, Any] | None]:
    from mlship.aws.labels import read_labels
    from mlship.monitoring.shadow_report import read_window

    records = read_window(source, window)
    names = {(r.get("model") or {}).get("name") for r in records if r.get("role") != "shadow"} - {None}
    model_name = source.model or (sorted(names)[0] if names else None)
    if not labels_prefix or not model_name:
        return records, None
    return records, read_labels(source.bucket, labels_prefix, model_name, since=window.start) or None


def _task(records: list[dict[str, Any]]) -> str:
    from mlship.monitoring.shadow_report import infer_task

    return infer_task(records)


def _attach(register: str, registry_bucket: str | None, report: dict[str, Any], html_path: Path) -> str:
    from mlship.evaluation.gate import SHADOW_DIR
    from mlship.monitoring.shadow_report import summary
    from mlship.registry.attachments import attach_report
    from mlship.registry.store import Registry

    name, sep, version = register.partition("/")
    if not sep or not name or not version:
        raise _bad(f"--register wants NAME/VERSION, not {register!r}")
    registry = Registry(registry_bucket, sagemaker=False)  # $MLSHIP_REGISTRY_BUCKET without --registry-bucket
    return attach_report(registry, name, version, SHADOW_DIR, summary(report), html_path.read_bytes())


def _print(report: dict[str, Any], json_path: Path, html_path: Path, attached: str | None) -> None:
    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table

    agreement, delta, errors = report["agreement"], report["delta"], report["errors"]
    table = new_table(title=f"shadow {_model(report['shadow'])} vs champion {_model(report['champion'])}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("rows joined", str(report["rows"]["joined"]))
    table.add_row("label agreement", f"{_pct(agreement['rate'])} [{_pct(agreement['lower'])}, "
                                     f"{_pct(agreement['upper'])}]")
    table.add_row("|Δp| p50 / p99 / max", " / ".join(_num(delta[k]) for k in ("p50", "p99", "max")))
    table.add_row("shadow error rate", _pct(errors["rate"]))
    if report.get("labelled"):
        lab = report["labelled"]
        table.add_row(f"{lab['metric']} champion / shadow", f"{_num(lab['primary'])} / {_num(lab['shadow'])} "
                                                            f"({lab['test']} p={_num(lab['p_value'])})")
    console = new_console()
    console.print(table)
    console.print(f"report: {html_path}\njson: {json_path}" + (f"\nattached: {attached}" if attached else ""))


def _model(side: dict[str, Any]) -> str:
    model = side.get("model")
    return f"{model['name']}/{model['version']}" if model else (side.get("variant") or "?")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def register(app: typer.Typer) -> None:
    """Add the ``shadow`` commands to ``app``."""
    app.add_typer(shadow_app, name="shadow")
