"""``mlship rollout lambda``: pin a registered version on the predict function and shift its alias
with CodeDeploy, following the deployment to a verdict (:mod:`mlship.release.function`).

Registered by :mod:`mlship.cli.release` as ``mlship rollout lambda`` (:func:`lambda_cmd`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from mlship.cli.common import fail
from mlship.cli.rollout_display import one_line as _one_line
from mlship.cli.rollout_display import phase_line, report

# The driver's clock and sleep (tests may replace them).
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


def _names(env: str | None, function: str | None, alias: str | None, application: str | None,
           group: str | None) -> tuple[Any, Any]:
    """The target from the flags, defaults from the project configuration; and that configuration."""
    from mlship.config import ConfigError, load_project_config
    from mlship.release.function import FunctionTarget

    try:
        cfg = load_project_config(env)
    except ConfigError as exc:
        fail(_one_line(exc), code=2)
    names = cfg.names
    target = FunctionTarget(function or names.function_name, alias or names.function_alias,
                            application or names.codedeploy_application, group or names.codedeploy_deployment_group)
    return target, cfg


def _resolve(model: str, bucket: str | None) -> Any:
    from mlship.errors import MlshipError
    from mlship.release.models import open_registry, resolve_model

    try:
        return resolve_model(model, open_registry(bucket))
    except MlshipError as exc:
        fail(_one_line(exc), code=2)


def _preflight(driver: Any, target: Any, model: Any, public_key: str | None) -> Any:
    """The driver's checks and the bundle's (signature, golden examples): all before any change."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.errors import MlshipError
    from mlship.release.models import check_deployable

    try:
        preflight = driver.check(target)
    except MlshipError as exc:
        fail(_one_line(exc), code=2)
    except (ClientError, BotoCoreError) as exc:
        fail(f"checking {target.label}: {_one_line(exc)}")
    key = public_key or preflight.latest_environment.get("MLSHIP_PUBLIC_KEY") or None
    try:
        check_deployable(model, public_key=key)
    except MlshipError as exc:
        fail(_one_line(exc), code=2)
    return preflight


def _fault_env(fault: str | None) -> dict[str, str] | None:
    """The new version's rehearsal fault variable; refused unless Lambda calls go to a local plane."""
    if not fault:
        return None
    from mlship.local.plane.fleet import FAULT_VARIABLE
    from mlship.release.endpoint import RolloutError
    from mlship.release.endpoint_release import check_fault

    try:
        check_fault(fault, "lambda")
    except RolloutError as exc:
        fail(_one_line(exc), code=2)
    return {FAULT_VARIABLE: fault}


def _settle(outcome: Any, model: Any, target: Any, cfg: Any, champion: Any) -> None:
    from mlship.aws import clients
    from mlship.errors import MlshipError
    from mlship.release.settle import DeployedParameters, settle_rollout

    try:
        settled = settle_rollout(outcome, model, target=f"lambda:{target.label}", expected_champion=champion,
                                 alias=cfg.model.champion_alias, ssm=clients.client("ssm"),
                                 parameters=DeployedParameters.of(cfg.names))
    except MlshipError as exc:
        fail(f"the rollout {outcome.outcome} but the registry was not updated: {_one_line(exc)}")
    for note in settled.notes:
        typer.echo(f"note: {note}", err=True)


def _follow(driver: Any, target: Any, model: Any, preflight: Any, timeout: float,
            deployment_config: str | None, extra_env: dict[str, str] | None) -> Any:
    """Run the rollout with a live progress display on stderr; the outcome."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.cli.common import console as new_console
    from mlship.errors import MlshipError

    console = new_console(stderr=True)
    console.print(f"rolling out {model.ref} to {target.label} (live version {preflight.current_version}, model "
                  f"{preflight.previous_model_version or '?'}); alarms: {', '.join(preflight.alarms) or 'none'}",
                  markup=False, highlight=False, soft_wrap=True)

    def started(deployment_id: str, current: str, new: str) -> None:
        console.print(f"deployment {deployment_id}: version {current} -> {new}", markup=False, highlight=False)

    try:
        with console.status(f"shifting {target.label}"):
            return driver.run(target, model, timeout, preflight=preflight, deployment_config=deployment_config,
                              on_start=started, extra_env=extra_env,
                              on_phase=lambda p: console.print(phase_line(p, percent=True), soft_wrap=True))
    except MlshipError as exc:
        fail(_one_line(exc))
    except (ClientError, BotoCoreError) as exc:
        fail(f"rolling out to {target.label}: {_one_line(exc)}")


def lambda_cmd(
    model: str = typer.Option(..., "--model", help="NAME/VERSION, NAME@ALIAS, a mlship:// URI (resolved once "
                              "to a concrete version) or an s3://.../bundle.tar.gz."),
    function: str = typer.Option(None, "--function", help="The function. Default: the configuration's."),
    alias: str = typer.Option(None, "--alias", help="The alias CodeDeploy shifts. Default: the configuration's "
                              "(live)."),
    application: str = typer.Option(None, "--application", help="CodeDeploy application. Default: the "
                                    "configuration's ({prefix}-{env}-predict)."),
    deployment_group: str = typer.Option(None, "--deployment-group", help="CodeDeploy deployment group. Default: "
                                         "the configuration's."),
    deployment_config: str = typer.Option(None, "--deployment-config", help="Override the group's deployment "
                                          "configuration (e.g. CodeDeployDefault.LambdaAllAtOnce)."),
    env: str = typer.Option(None, "--env", help="Configuration environment (dev, staging, prod)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket. Default: $MLSHIP_REGISTRY_BUCKET."),
    public_key: str = typer.Option(None, "--public-key", help="Require the bundle's signature by this key. "
                                   "Default: the function's MLSHIP_PUBLIC_KEY."),
    fault: str = typer.Option(None, "--fault", help="Rehearsals on the local control plane only: inject "
                              "errors=SHARE, latency=DURATION or crash into the new version."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Give up (outcome timeout) after this many seconds."),
    poll: float = typer.Option(5.0, "--poll", help="Seconds between two GetDeployment calls."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome document on stdout."),
) -> None:
    """Publish a function version pinned to one model version and shift the alias to it with CodeDeploy.

    Exit 0 when the deployment succeeded with the alias wholly on the new version, 1 when it was
    rolled back (an alarm fired), failed or timed out, 2 for bad input (nothing changed).
    """
    from mlship.aws import clients
    from mlship.release.function import FunctionRollout

    if timeout <= 0 or poll <= 0:
        fail(f"--timeout and --poll must be positive, not {timeout:g} and {poll:g}", code=2)
    extra_env = _fault_env(fault)
    target, cfg = _names(env, function, alias, application, deployment_group)
    resolved = _resolve(model, bucket)
    driver = FunctionRollout(clients.client("lambda"), clients.client("codedeploy"), clients.client("cloudwatch"),
                             poll_seconds=poll, clock=clock, sleep=sleep)
    preflight = _preflight(driver, target, resolved, public_key)
    champion = resolved.registry.get_alias(resolved.name, cfg.model.champion_alias) if resolved.registry else None
    outcome = _follow(driver, target, resolved, preflight, timeout, deployment_config, extra_env)
    _settle(outcome, resolved, target, cfg, champion)
    report(outcome, as_json)
