"""CLI: ``mlship loadtest TARGET``, an open-model load test with a stairs search, a stress step and
a recovery step; JSON and HTML report, optionally attached to a registry version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, emit_json, fail, mark_latest, report_folder

MAX_STEPS = 50


def loadtest_cmd(
    target: str = typer.Argument(..., help="A loopback URL (mlship serve, the local control plane), an https "
                                           "Function URL, endpoint:NAME or lambda:NAME[:ALIAS]."),
    model: str = typer.Option(None, "--model", help="Bundle URI: requests from its golden examples and profile."),
    body: Path = typer.Option(None, "--body", help="Request body file (.json, .csv; .jsonl: one body per line)."),
    rate: float = typer.Option(None, "--rate", help="One constant rate (requests/s) instead of the stairs."),
    rates: str = typer.Option(None, "--rates", help="Stairs rates, comma-separated (e.g. 50,100,200)."),
    start_rate: float = typer.Option(50.0, "--start-rate", help="Stairs: first rate."),
    step_rate: float = typer.Option(50.0, "--step-rate", help="Stairs: increment."),
    max_rate: float = typer.Option(500.0, "--max-rate", help="Stairs: last rate."),
    step_duration: float = typer.Option(5.0, "--step-duration", help="Seconds per step."),
    warmup: float = typer.Option(1.0, "--warmup", help="Warm-up seconds (not judged)."),
    p99_ms: float = typer.Option(None, "--p99-ms", help="SLO: p99 latency in ms (from the intended send)."),
    error_rate: float = typer.Option(None, "--error-rate", help="SLO: highest error rate (default 0.01)."),
    thresholds: Path = typer.Option(None, "--thresholds", "-t", help="Gate thresholds file: its loadtest "
                                                                     "section gives the SLO."),
    stress: bool = typer.Option(True, "--stress/--no-stress", help="Stress and recovery steps after the stairs."),
    stress_factor: float = typer.Option(1.5, "--stress-factor", help="Stress rate over the first failing rate."),
    closed_loop: bool = typer.Option(False, "--closed-loop", help="Constant mode: also a closed loop, to compare."),
    max_duration: float = typer.Option(300.0, "--max-duration", help="The whole run stops by this many seconds."),
    max_requests: int = typer.Option(200_000, "--max-requests", help="The whole run sends at most this many."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds before a request counts as timed out."),
    max_outstanding: int = typer.Option(1024, "--max-outstanding", help="Requests in flight before new ones "
                                                                        "are dropped (and counted)."),
    memory_mb: int = typer.Option(None, "--memory-mb", help="Lambda memory for the cost (default: read it)."),
    architecture: str = typer.Option("x86_64", "--architecture", help="Lambda architecture for the cost."),
    instance_type: str = typer.Option(None, "--instance-type", help="Instance type for the cost (ml.m5.large)."),
    instances: int = typer.Option(1, "--instances", help="Instances behind the target, for the cost."),
    out: Path = typer.Option(None, "--out", "-o", help="Report directory (default: reports/loadtest/<time>/)."),
    register: str = typer.Option(None, "--register", help="Attach the report to NAME/VERSION in the registry."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Load-test a target with open-model arrivals: exit 0 when a rate met the SLO, 1 when none did."""
    from mlship.errors import MlshipError
    from mlship.loadtest.errors import BadInput
    from mlship.loadtest.plan import Plan
    from mlship.loadtest.run import CostBasis
    from mlship.loadtest.targets import parse_target

    try:
        parse_target(target)  # refuse a bad or non-loopback target before reading anything else
        plan = Plan(slo=_slo(p99_ms, error_rate, thresholds), rate=rate, step_duration=step_duration,
                    rates=[] if rate is not None else _stairs(rates, start_rate, step_rate, max_rate),
                    warmup=warmup, stress=stress, stress_factor=stress_factor, max_duration=max_duration,
                    max_requests=max_requests, timeout=timeout, max_outstanding=max_outstanding,
                    closed_loop=closed_loop)
        plan.check()
        bodies, model_info = _bodies(model, body)
        cost = _checked(CostBasis(memory_mb, architecture, instance_type, instances))
        ref, registry = _registered(_register_ref(register), bucket)
    except (BadInput, MlshipError) as exc:  # refused before any request is sent
        fail(str(exc), code=2)
    try:
        outcome = _run(target, bodies, plan, out, cost, model_info)
        where = _attach(registry, ref, outcome) if ref else None
    except MlshipError as exc:
        fail(str(exc), code=1)
    _show(outcome, where, as_json)
    raise typer.Exit(0 if outcome.met_slo else 1)


def _show(outcome: Any, where: str | None, as_json: bool) -> None:
    if as_json:
        emit_json({**outcome.report, "reports": [str(p) for p in outcome.paths], "attached": where})
    else:
        _print(outcome.report, outcome.paths, where)


def _run(target: str, bodies: Any, plan: Any, out: Path | None, cost: Any, model_info: Any) -> Any:
    """The load test, its report in ``out`` (or a new timestamped folder)."""
    from mlship.loadtest.run import loadtest

    folder = report_folder(out, "loadtest")
    outcome = loadtest(target, bodies, plan, folder, cost=cost, model=model_info)
    mark_latest(folder, out)
    return outcome


def _checked(cost: Any) -> Any:
    cost.check()
    return cost


def _slo(p99_ms: float | None, error_rate: float | None, thresholds: Path | None) -> Any:
    from mlship.loadtest.errors import BadInput
    from mlship.loadtest.summary import Slo

    limits = None
    if thresholds is not None:
        from mlship.evaluation.gate import GateError, load_thresholds

        try:
            limits = load_thresholds(thresholds).loadtest
        except GateError as exc:
            raise BadInput(str(exc)) from None
        if limits is None:
            raise BadInput(f"{thresholds} has no loadtest section (loadtest: {{p99_ms: ..., error_rate: ...}})")
    p99 = p99_ms if p99_ms is not None else (limits.p99_ms if limits else None)
    if p99 is None:
        raise BadInput("give the SLO: --p99-ms, or --thresholds with a loadtest section")
    errors = error_rate if error_rate is not None else (limits.error_rate if limits else 0.01)
    return Slo(p99_ms=p99, error_rate=errors)


def _stairs(rates: str | None, start: float, step: float, top: float) -> list[float]:
    from mlship.loadtest.errors import BadInput

    if rates:
        try:
            return [float(r) for r in rates.split(",") if r.strip()]
        except ValueError:
            raise BadInput(f"--rates must be numbers separated by commas, not {rates!r}") from None
    if start <= 0 or step <= 0 or top < start:
        raise BadInput("stairs need --start-rate > 0, --step-rate > 0 and --max-rate >= --start-rate")
    count = int((top - start) / step + 1e-9) + 1
    if count > MAX_STEPS:
        raise BadInput(f"{count} stairs steps: at most {MAX_STEPS} (raise --step-rate)")
    return [start + i * step for i in range(count)]


def _bodies(model: str | None, body: Path | None) -> tuple[Any, dict[str, Any] | None]:
    from mlship.loadtest import bodies
    from mlship.loadtest.errors import BadInput

    if (model is None) == (body is None):
        raise BadInput("give exactly one of --body FILE or --model URI (requests from its golden examples)")
    if body is not None:
        return bodies.from_file(body), None
    made = bodies.from_bundle(model)
    return made, {"uri": model}


def _register_ref(text: str | None) -> tuple[str, str] | None:
    from mlship.loadtest.errors import BadInput

    if text is None:
        return None
    name, _, version = text.partition("/")
    if not name or not version or "/" in version:
        raise BadInput(f"--register wants NAME/VERSION, not {text!r}")
    return name, version


def _registered(ref: tuple[str, str] | None, bucket: str | None) -> tuple[tuple[str, str] | None, Any]:
    """The registry, once ``NAME/VERSION`` is known to be registered (checked before the run)."""
    from mlship.registry.store import Registry

    if ref is None:
        return None, None
    registry = Registry(bucket, sagemaker=False)
    registry.get_version(*ref)
    return ref, registry


def _attach(registry: Any, ref: tuple[str, str], outcome: Any) -> str:
    from mlship.loadtest.attach import attach

    return attach(registry, ref[0], ref[1], outcome.report, outcome.paths[1].read_bytes())


def _print(report: dict[str, Any], paths: tuple[Path, Path], where: str | None) -> None:
    for step in [*report["steps"], report.get("stress"), report.get("recovery"), report.get("closed_loop")]:
        if not step:
            continue
        lat = step["latency_ms"]
        verdict = "" if "meets_slo" not in step else (" ok" if step["meets_slo"] else
                                                       " FAIL: " + "; ".join(step["slo_failures"]))
        typer.echo(f"{step['phase']:<22} answered {step['achieved_rps']:8.1f}/s  p50 {lat['p50'] or 0:8.2f}  "
                   f"p99 {lat['p99'] or 0:8.2f}  p99.9 {lat['p99_9'] or 0:8.2f} ms  errors "
                   f"{step['error_rate']:.2%}{verdict}")
    if report.get("stress"):
        typer.echo(f"stress: {report['stress']['failure_mode']}")
    if report.get("recovery"):
        v = report["recovery"]["verdict"]
        typer.echo("recovery: " + ("recovered" if v["recovered"] else "did not recover: " + "; ".join(v["why_not"])))
    knee = report["knee"]
    typer.echo(f"highest rate meeting the SLO: {knee['achieved_rps']:.1f}/s" if knee else
               "no rate met the SLO")
    if report.get("cost"):
        typer.echo(f"cost: {report['cost']['usd_per_million']} USD per million (prices of "
                   f"{report['cost']['prices_as_of']})")
    typer.echo(f"report: {paths[0]} and {paths[1]}")
    if where:
        typer.echo(f"attached: {where}")


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest_cmd)
