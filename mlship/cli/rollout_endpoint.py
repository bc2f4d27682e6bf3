"""``mlship rollout endpoint``: take one registry version to a SageMaker endpoint, canary by canary.

Resolves the model to a concrete version and checks its bundle (hashes, signature, golden examples),
checks the endpoint, the policy and the alarms, and only then creates the endpoint (first use) or
starts a blue/green ``UpdateEndpoint``. It follows the update with a live progress display and
decides the outcome itself; the registry records it on the version, and only a success moves
``champion`` and the deployed-model parameters the stacks read. Exit 0 succeeded, 1 rolled back /
failed / timed out, 2 bad input (nothing changed).

``--shadow MODEL`` puts the version on a shadow variant of the live endpoint instead (a copy of the
traffic, its answers captured and never returned, data capture on): no traffic moves, ``champion``
and the deployed-model parameters stay, and the registry records a shadow rollout on the version.
``--clear-shadow`` removes the shadow variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlship.cli.common import fail
from mlship.cli.rollout_display import one_line, phase_line, report

STRATEGIES = {"canary": "CANARY", "linear": "LINEAR", "all-at-once": "ALL_AT_ONCE"}


def _config(env: str | None) -> Any:
    from mlship.config import ConfigError, load_project_config

    try:
        return load_project_config(env)
    except ConfigError as exc:
        fail(one_line(str(exc)), code=2)


def _policy(cfg: Any, strategy: str | None, size: int | None, size_type: str, wait: int | None,
            termination_wait: int | None, max_time: int | None) -> Any:
    """The configured rollout policy with the flags applied (validated by pydantic)."""
    from pydantic import ValidationError

    from mlship.release.policy import EndpointRollout

    base = cfg.endpoint.rollout.model_dump()
    if strategy is not None:
        if strategy not in STRATEGIES:
            fail(f"--strategy {strategy!r}: use one of {', '.join(STRATEGIES)}", code=2)
        base.update(strategy=STRATEGIES[strategy], canary=None, linear_step=None)
    kind = base["strategy"]
    if size is not None or (strategy is not None and kind != "ALL_AT_ONCE"):
        step = {"type": "INSTANCE_COUNT" if size_type == "instances" else "CAPACITY_PERCENT",
                "value": size if size is not None else 10}
        base.update(canary=step if kind == "CANARY" else None, linear_step=step if kind == "LINEAR" else None)
    for key, value in (("wait_interval_seconds", wait), ("termination_wait_seconds", termination_wait),
                       ("maximum_execution_timeout_seconds", max_time)):
        if value is not None:
            base[key] = value
    try:
        return EndpointRollout.model_validate(base)
    except ValidationError as exc:
        fail("rollout policy: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
             code=2)


def _resolve(model: str, registry: Any, public_key: Path | None, console: Any) -> Any:
    from mlship.release.models import ModelRefError, check_deployable, resolve_model

    try:
        resolved = resolve_model(model, registry)
        with console.status(f"checking {resolved.ref}: hashes, signature, golden examples"):
            checked = check_deployable(resolved, public_key)
    except ModelRefError as exc:
        fail(one_line(str(exc)), code=2)
    console.print(f"{resolved.ref} ({resolved.bundle_uri}): verified, {checked} golden examples pass",
                  markup=False, highlight=False, soft_wrap=True)
    return resolved


def _settle(outcome: Any, resolved: Any, cfg: Any, expected: Any, alias: str, console: Any) -> None:
    from mlship.aws import clients
    from mlship.errors import MlshipError
    from mlship.release.settle import DeployedParameters, settle_rollout

    try:
        settled = settle_rollout(outcome, resolved, target=f"endpoint:{outcome.endpoint}", expected_champion=expected,
                                 alias=alias, ssm=clients.client("ssm"), parameters=DeployedParameters.of(cfg.names))
    except MlshipError as exc:
        fail(f"the rollout {outcome.outcome} but the registry was not updated: {one_line(str(exc))}")
    for note in settled.notes:
        console.print(note, markup=False, highlight=False)
    if settled.moved is not None:
        console.print(f"{resolved.name}@{alias}: {settled.moved.previous or '(unset)'} -> {settled.moved.version}",
                      markup=False, highlight=False)
    elif resolved.registry is not None and not outcome.ok:
        console.print(f"{resolved.name}@{alias} unchanged ({getattr(expected, 'version', None) or 'unset'}); "
                      f"the {outcome.outcome} rollout is recorded on {resolved.ref}", markup=False, highlight=False)


def endpoint_cmd(
    model: str = typer.Option(None, "--model", help="NAME/VERSION, NAME@ALIAS, mlship://... or s3://.../bundle.tar.gz"),
    shadow: str = typer.Option(None, "--shadow", help="MODEL on a shadow variant of the live endpoint: a copy of "
                               "the traffic, answers captured, never returned; no traffic moves."),
    clear_shadow: bool = typer.Option(False, "--clear-shadow", help="Remove the live endpoint's shadow variant."),
    endpoint: str = typer.Option(None, "--endpoint", help="SageMaker endpoint (default: from the configuration)."),
    strategy: str = typer.Option(None, "--strategy", help="canary, linear or all-at-once (default: configured)."),
    size: int = typer.Option(None, "--size", help="Canary size or linear step (default: 10)."),
    size_type: str = typer.Option("percent", "--size-type", help="percent (of capacity) or instances."),
    wait: int = typer.Option(None, "--wait", help="Baking seconds after each traffic shift (0-3600)."),
    termination_wait: int = typer.Option(None, "--termination-wait", help="Seconds the old fleet is kept (0-3600)."),
    max_time: int = typer.Option(None, "--max-time", help="MaximumExecutionTimeoutInSeconds (600-28800)."),
    alarm: list[str] = typer.Option([], "--alarm", help="Rollback alarm (repeatable; must exist)."),
    image: str = typer.Option(None, "--image", help="Serving image for a new endpoint (default: configured)."),
    role: str = typer.Option(None, "--role", help="SageMaker execution role for a new endpoint."),
    instance_type: str = typer.Option(None, "--instance-type", help="Instance type for a new endpoint."),
    instance_count: int = typer.Option(None, "--instance-count", help="Instances for a new endpoint."),
    public_key: Path = typer.Option(None, "--public-key", help="Require and check the bundle's signature."),
    fault: str = typer.Option(None, "--fault", help="Local rehearsals only: errors=0.2, latency=400ms or crash "
                              "on the new fleet (or the shadow variant)."),
    alias: str = typer.Option(None, "--alias", help="Registry alias a success moves (default: champion)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    env: str = typer.Option(None, "--env", help="Configuration environment (default: cdk.json's env)."),
    timeout: float = typer.Option(7200.0, "--timeout", help="Give up (outcome timeout) after this many seconds."),
    poll: float = typer.Option(15.0, "--poll", help="Seconds between two DescribeEndpoint calls."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome document on stdout."),
) -> None:
    """Roll MODEL out to a SageMaker endpoint (blue/green, rollback on alarms) and report the verdict."""
    from mlship.cli.common import console as new_console
    from mlship.release.models import open_registry

    if timeout <= 0 or poll <= 0:
        fail("--timeout and --poll must be positive", code=2)
    if sum(map(bool, (model, shadow, clear_shadow))) != 1:
        fail("give one of --model MODEL (a rollout), --shadow MODEL or --clear-shadow", code=2)
    console = new_console(stderr=True)
    cfg = _config(env)
    policy = _policy(cfg, strategy, size, size_type, wait, termination_wait, max_time)
    registry = open_registry(bucket)
    if shadow or clear_shadow:
        return _shadow_rollout(cfg, registry, endpoint, shadow, (policy, alarm, fault, public_key),
                               (timeout, poll, as_json), console)
    resolved = _resolve(model, registry, public_key, console)
    alias = alias or cfg.model.champion_alias
    expected = registry.get_alias(resolved.name, alias) if registry is not None else None
    request = _request(cfg, endpoint, resolved, policy, alarm, image, role, instance_type, instance_count, fault)
    outcome = _run(request, timeout, poll, console)
    _settle(outcome, resolved, cfg, expected, alias, console)
    if fault and outcome.ok:  # no alarm saw the fault (no traffic during the bake?): it now serves live
        console.print(f"warning: the rehearsed fault ({fault}) was not caught and now serves all traffic; "
                      "roll out a clean version", style="yellow", markup=False, highlight=False)
    report(outcome, as_json)


def _request(cfg: Any, endpoint: str | None, resolved: Any, policy: Any, alarm: list[str], image: str | None,
             role: str | None, instance_type: str | None, instance_count: int | None, fault: str | None) -> Any:
    from mlship.release.endpoint_release import endpoint_request

    return endpoint_request(cfg, resolved, policy, endpoint=endpoint, alarms=alarm, image=image, role=role,
                            instance_type=instance_type, instance_count=instance_count, fault=fault)


def _shadow_rollout(cfg: Any, registry: Any, endpoint: str | None, shadow: str | None, how: tuple[Any, ...],
                    run: tuple[float, float, bool], console: Any) -> None:
    """``--shadow MODEL`` / ``--clear-shadow``: change the live endpoint's shadow variant, record it, report."""
    policy, alarm, fault, public_key = how
    if fault and not shadow:
        fail("--fault applies to a new model: it needs --model or --shadow", code=2)
    resolved = _resolve(shadow, registry, public_key, console) if shadow else None
    request = _request(cfg, endpoint, resolved, policy, alarm, None, None, None, None, fault)
    configured = cfg.endpoint.shadow
    request.shadow, request.clear_shadow = bool(shadow), not shadow
    request.shadow_variant = configured.name if configured is not None else "shadow"
    request.shadow_instance_type = configured.instance_type if configured is not None else None
    request.capture_bucket = registry.bucket if registry is not None else None
    outcome = _run(request, run[0], run[1], console)
    if resolved is not None:
        _record_shadow(outcome, resolved, request.shadow_variant, console)
    elif outcome.ok:
        console.print(f"{outcome.endpoint}: shadow variant removed (it served v{outcome.previous_version})",
                      markup=False, highlight=False)
    report(outcome, run[2])


def _record_shadow(outcome: Any, resolved: Any, variant: str, console: Any) -> None:
    """Record a shadow rollout on the version; it moves no alias and writes no deployed-model parameter."""
    from mlship.errors import MlshipError

    if resolved.registry is None:
        console.print(f"{resolved.bundle_uri} is not in a registry: no rollout record", markup=False, highlight=False)
        return
    try:
        resolved.registry.record_rollout(
            resolved.name, resolved.version, outcome=outcome.outcome, target=f"endpoint:{outcome.endpoint}:shadow",
            reason=outcome.reason, alarm=outcome.alarm, previous_version=outcome.previous_version, alias="shadow",
            details={"mode": "shadow", "variant": variant, "endpoint_config": outcome.endpoint_config,
                     "phases": len(outcome.phases)})
    except MlshipError as exc:
        fail(f"the shadow rollout {outcome.outcome} but the registry was not updated: {one_line(str(exc))}")
    if outcome.ok:
        console.print(f"{resolved.ref} is the shadow of {outcome.endpoint} (variant {variant}): it gets a copy of "
                      "the traffic; champion unchanged", markup=False, highlight=False, soft_wrap=True)


def _describe_action(request: Any, prepared: Any) -> str:
    if prepared.live is None:
        return f"creating {request.model.ref} ({request.policy.strategy})"
    config = prepared.live["EndpointConfigName"]
    if request.clear_shadow:
        return f"updating {config} -> without its shadow variant"
    if request.shadow:
        return f"updating {config} -> {request.model.ref} as shadow variant {request.shadow_variant}"
    return f"updating {config} -> {request.model.ref} ({request.policy.strategy})"


def _run(request: Any, timeout: float, poll: float, console: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws import clients
    from mlship.cli import release
    from mlship.release.endpoint import RolloutError
    from mlship.release.endpoint_release import EndpointRelease

    runner = EndpointRelease(clients.client("sagemaker"), clients.client("cloudwatch"), poll_seconds=poll,
                             clock=release.clock, sleep=release.sleep)
    try:
        prepared = runner.prepare(request)
    except RolloutError as exc:
        fail(one_line(str(exc)), code=2)
    except (ClientError, BotoCoreError) as exc:
        fail(f"checking {request.endpoint}: {one_line(str(exc))}")
    console.print(f"{request.endpoint}: {_describe_action(request, prepared)}; alarms: {', '.join(prepared.alarms)}",
                  markup=False, highlight=False, soft_wrap=True)
    try:
        with console.status(f"updating {request.endpoint}"):
            return runner.run(prepared, timeout, on_phase=lambda p: console.print(phase_line(p), soft_wrap=True))
    except RolloutError as exc:
        fail(one_line(str(exc)), code=2)
    except (ClientError, BotoCoreError) as exc:
        fail(f"rolling out to {request.endpoint}: {clients.error_code(exc) if isinstance(exc, ClientError) else ''} "
             f"{one_line(str(exc))}")


def pin_cmd(
    model: str = typer.Option(..., "--model", help="NAME/VERSION or NAME@ALIAS (resolved once, to a version)."),
    bucket: str = typer.Option(None, "--bucket", help="Registry bucket (default: $MLSHIP_REGISTRY_BUCKET)."),
    env: str = typer.Option(None, "--env", help="Configuration environment (default: cdk.json's env)."),
    public_key: Path = typer.Option(None, "--public-key", help="Require and check the bundle's signature."),
) -> None:
    """Write the deployed-model parameters the stacks read, without a rollout (before the first cdk deploy).

    Moves no alias; the next successful rollout overwrites them.
    """
    from mlship.aws import clients
    from mlship.cli.common import console as new_console
    from mlship.release.models import open_registry
    from mlship.release.settle import DeployedParameters, write_deployed

    console = new_console(stderr=True)
    cfg = _config(env)
    resolved = _resolve(model, open_registry(bucket), public_key, console)
    try:
        written = write_deployed(clients.client("ssm"), DeployedParameters.of(cfg.names), resolved)
    except Exception as exc:  # noqa: BLE001 - botocore errors: one line, exit 1
        fail(f"writing the deployed-model parameters: {one_line(str(exc))}")
    for name, value in written.items():
        typer.echo(f"{name} = {value}")
