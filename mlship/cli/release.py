"""``mlship rollout watch``: follow a SageMaker endpoint update started elsewhere (``cdk deploy``,
the console, another ``mlship``) to its verdict, decided by :mod:`mlship.release.outcome` from
``DescribeEndpoint`` (never from the ``endpoint_in_service`` waiter)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import typer

from mlship.cli.common import fail
from mlship.cli.rollout_display import one_line as _one_line
from mlship.cli.rollout_display import phase_line as _phase_line
from mlship.cli.rollout_display import report

rollout_app = typer.Typer(help="Take a registered version to live traffic, or follow an update to its verdict.",
                          no_args_is_help=True)

# The driver's clock and sleep (tests replace them: no real waiting).
clock: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


def _describe(sagemaker: Any, endpoint: str) -> dict[str, Any]:
    """``DescribeEndpoint``; an endpoint that does not exist is bad input (exit 2)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws.clients import error_code

    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        message = _one_line(exc.response.get("Error", {}).get("Message", "") or str(exc))
        # DescribeEndpoint names an unknown endpoint with ValidationException ("Could not find endpoint")
        if error_code(exc) in {"ValidationException", "ResourceNotFound"}:
            fail(f"endpoint {endpoint} does not exist: {message}", code=2)
        fail(f"DescribeEndpoint {endpoint}: {error_code(exc)}: {message}")
    except BotoCoreError as exc:
        fail(f"DescribeEndpoint {endpoint}: {_one_line(str(exc))}")


def _target(describe: dict[str, Any]) -> str | None:
    """The configuration the endpoint is moving to, or ``None`` when no update is in progress."""
    pending = describe.get("PendingDeploymentSummary") or {}
    if pending.get("EndpointConfigName"):
        return pending["EndpointConfigName"]
    if describe.get("EndpointStatus") == "Creating":
        return describe.get("EndpointConfigName")
    return None


def _not_updating(endpoint: str, describe: dict[str, Any], as_json: bool) -> None:
    """Report an endpoint with nothing to follow: exit 0 only if it is InService."""
    status = describe.get("EndpointStatus", "Unknown")
    config = describe.get("EndpointConfigName", "?")
    if status in ("Failed", "UpdateRollbackFailed"):
        reason = _one_line(describe.get("FailureReason") or "no failure reason given")
        fail(f"endpoint {endpoint} is {status} on {config}: {reason}")
    if status != "InService":
        fail(f"endpoint {endpoint} is {status} on {config} with no pending deployment: no update to watch")
    typer.echo(f"endpoint {endpoint} is InService on {config}: there is no update to watch", err=as_json)


def _default_alarms(describe: dict[str, Any]) -> list[str]:
    """The rollback alarms of the deployment SageMaker reports (``LastDeploymentConfig``)."""
    rollback = (describe.get("LastDeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}
    return [a["AlarmName"] for a in rollback.get("Alarms", []) if a.get("AlarmName")]


@rollout_app.command("watch")
def watch_cmd(
    endpoint: str = typer.Option(..., "--endpoint", help="The SageMaker endpoint being updated."),
    alarm: list[str] = typer.Option([], "--alarm", help="Rollback alarm to follow (repeatable). Default: the "
                                    "alarms of the endpoint's LastDeploymentConfig."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Give up (outcome timeout) after this many seconds."),
    poll: float = typer.Option(15.0, "--poll", help="Seconds between two DescribeEndpoint calls."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome document on stdout."),
) -> None:
    """Follow an endpoint update started elsewhere (e.g. by cdk deploy) to its verdict.

    Exit 0 when it succeeded (InService on the new configuration, nothing pending, no failure
    reason), 1 when it was rolled back, failed or timed out, 2 for bad input.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from mlship.aws import clients
    from mlship.cli.common import console as new_console
    from mlship.release.endpoint import EndpointRollout

    if timeout <= 0:
        fail(f"--timeout must be positive, not {timeout:g}", code=2)
    if poll <= 0:
        fail(f"--poll must be positive, not {poll:g}", code=2)
    sagemaker = clients.client("sagemaker")
    describe = _describe(sagemaker, endpoint)
    target = _target(describe)
    if target is None:
        _not_updating(endpoint, describe, as_json)
        return
    alarms = list(alarm) or _default_alarms(describe)
    console = new_console(stderr=True)
    console.print(f"watching {endpoint}: {describe.get('EndpointConfigName')} -> {target}; alarms: "
                  f"{', '.join(alarms) or 'none'}", markup=False, highlight=False, soft_wrap=True)
    driver = EndpointRollout(sagemaker, clients.client("cloudwatch"), poll_seconds=poll, clock=clock, sleep=sleep)
    try:
        with console.status(f"following {endpoint}"):
            outcome = driver.follow(endpoint, target, alarms, timeout,
                                    on_phase=lambda p: console.print(_phase_line(p), soft_wrap=True))
    except ClientError as exc:
        fail(f"following {endpoint}: {clients.error_code(exc)}: {_one_line(str(exc))}")
    except BotoCoreError as exc:
        fail(f"following {endpoint}: {_one_line(str(exc))}")
    report(outcome, as_json)


def register(app: typer.Typer) -> None:
    """Add ``mlship rollout`` to the main app."""
    from mlship.cli.rollout_endpoint import endpoint_cmd, pin_cmd
    from mlship.cli.rollout_lambda import lambda_cmd

    rollout_app.command("endpoint")(endpoint_cmd)
    rollout_app.command("lambda")(lambda_cmd)
    rollout_app.command("pin")(pin_cmd)
    app.add_typer(rollout_app, name="rollout")
