"""``mlship local up | down | status | env``: the moto server and control plane that stand in for AWS."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

import typer

from mlship.cli.common import JSON_HELP, console, emit_json, fail, table

local_app = typer.Typer(help="Run a local AWS (moto server + control plane on localhost) for demos and tests.",
                        no_args_is_help=True)


@local_app.command("up")
def up(port: int = typer.Option(5000, min=1, max=65535, help="Port for the moto server."),
       plane_port: int = typer.Option(0, min=0, max=65535,
                                      help="Port for the control plane (0: any free port)."),
       time_scale: float = typer.Option(1.0, min=0.0, help="Multiplier of every simulated wait of the control "
                                        "plane (rollout baking, alarm periods); e.g. 0.02 for rehearsals."),
       plane: bool = typer.Option(True, "--plane/--no-plane",
                                  help="Start the control plane (SageMaker endpoints, Lambda, CodeDeploy)."),
       bucket: list[str] = typer.Option([], "--bucket", help="An extra bucket to create (repeatable)."),
       data_bucket: bool = typer.Option(True, "--data-bucket/--no-data-bucket",
                                        help="Create the project's data bucket (--no-data-bucket: leave it to "
                                        "the project's stacks, deployed with `mlship local deploy`)."),
       env: str | None = typer.Option(None, "--env", help="The configuration's environment whose buckets to "
                                      "create (default: cdk.json's context env, else dev)."),
       ) -> None:
    """Start the local AWS (idempotent), create the project's buckets and print how to use it."""
    from mlship.local import environment as local

    names = _project_names(env)
    try:
        result = local.up(port, plane_port if plane else None, time_scale=time_scale, buckets=bucket,
                          data_bucket=names.bucket if names else None, create_data_bucket=data_bucket)
    except (local.PortInUse, local.BucketNameError) as exc:
        fail(str(exc), code=2)
    except local.LocalEnvironmentError as exc:
        fail(str(exc))
    _report(result, port, time_scale, local.state_dir())


def _report(result: Any, port: int, time_scale: float, state_dir: Any) -> None:
    """What ``up`` found or started, the buckets, and how to use it."""
    state = result.state
    if result.stale:
        typer.echo(f"removed the state of a local AWS that had stopped (pid {result.stale['moto'].get('pid')})")
    verb = "local AWS running" if result.started else "local AWS already running"
    typer.echo(f"{verb} at {state['endpoint_url']} (moto, pid {state['moto']['pid']})")
    plane_state = state.get("services", {}).get("plane")
    if plane_state:
        typer.echo(f"control plane at {plane_state['url']} (pid {plane_state['pid']}, time scale "
                   f"{plane_state.get('time_scale', 1.0):g}): SageMaker, sagemaker-runtime, Lambda, CodeDeploy")
    for name in state.get("buckets", []):
        typer.echo(f"bucket s3://{name}{' (created)' if name in result.created_buckets else ''}")
    if state.get("data_bucket") and state["data_bucket"] not in state.get("buckets", []):
        typer.echo(f"data bucket s3://{state['data_bucket']}: not created (the project's stacks create it: "
                   "mlship local deploy)")
    if not result.started and port != state["moto"]["port"]:
        typer.echo(f"note: --port {port} ignored; run `mlship local down` first to restart on another port")
    if not result.started and plane_state and time_scale != plane_state.get("time_scale", 1.0):
        typer.echo(f"note: --time-scale {time_scale:g} ignored; run `mlship local down` first to change it")
    typer.echo(f"state and logs: {state_dir}")
    typer.echo('point boto3 at it with: eval "$(mlship local env)"')


def _project_names(env: str | None) -> Any:
    """The resource names of the project's configuration (``mlship.config``): the nearest
    ``cdk.json`` with an ``mlship`` context here or in a parent (or ``$MLSHIP_CDK_JSON``), else
    the built-in defaults. None, with a warning, when the configuration is invalid: the local AWS
    still starts (it is where one fixes a deployment), only the data bucket is not created."""
    import os

    from mlship.config import CDK_JSON_ENV, ConfigError, load_project_config
    from mlship.local.environment import find_project_cdk_json

    cdk_json = None if os.environ.get(CDK_JSON_ENV) else find_project_cdk_json()
    try:
        return load_project_config(env, cdk_json).names
    except ConfigError as exc:
        typer.secho(f"warning: invalid mlship config for environment {exc.env!r} ({'; '.join(exc.problems)}): "
                    "no data bucket created", fg="yellow", err=True)
        return None


@local_app.command("down")
def down() -> None:
    """Stop the local AWS and everything `mlship local` started."""
    from mlship.local import environment as local

    typer.echo("stopped" if local.down() else "nothing was running")


@local_app.command("status")
def status() -> None:
    """Show the running local AWS as JSON; exit 1 when it is not running."""
    from mlship.local import environment as local

    state = local.running_state()
    if state is None:
        typer.echo("local AWS is not running")
        raise typer.Exit(1)
    typer.echo(json.dumps(_with_health(state, local.is_ours), indent=2))


def _with_health(state: dict[str, Any], is_ours: Any) -> dict[str, Any]:
    """``state`` with ``running: true|false`` on moto and each service (a plane may die on its own)."""
    shown = json.loads(json.dumps(state))
    shown["moto"]["running"] = is_ours(state["moto"])
    for name, service in (state.get("services") or {}).items():
        shown["services"][name]["running"] = is_ours(service)
    return shown


@local_app.command("env")
def env() -> None:
    """Print shell exports that point boto3 at the running local AWS."""
    from mlship.local import environment as local

    state = local.running_state()
    if state is None:
        fail("local AWS is not running: run `mlship local up`")
    for key, value in local.env_exports(state).items():
        typer.echo(f"export {key}={shlex.quote(value)}")


@local_app.command("deploy")
def deploy(stacks: list[str] = typer.Argument(None, help="Stacks to deploy (default: all of them)."),
           env: str | None = typer.Option(None, "--env", help="The environment to deploy (default: cdk.json's env)."),
           context: list[str] = typer.Option([], "-c", "--context", help="KEY=VALUE passed to `cdk deploy` "
                                             "(repeatable), e.g. mlship:assets.lambda_code=source."),
           as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Deploy rehearsal: bootstrap the local AWS and `cdk deploy --all` the project's app to it."""
    from mlship.config import ConfigError
    from mlship.local import deploy as rehearsal
    from mlship.local import environment as local

    state = local.running_state()
    if state is None:
        fail("local AWS is not running: run `mlship local up`", code=2)
    from mlship.config import CDK_JSON_ENV, project_cdk_json

    # $MLSHIP_CDK_JSON first, else the nearest project's, as `local up` finds it
    cdk_json = project_cdk_json() if os.environ.get(CDK_JSON_ENV) else local.find_project_cdk_json()
    if cdk_json is None:
        fail("no cdk.json with an mlship context here or in a parent folder: run this in a project "
             "(`mlship init DIR` creates one)", code=2)
    try:
        cfg = _deployed_config(cdk_json, env, context)
    except ConfigError as exc:
        fail(str(exc), code=2)
    url, region = state["endpoint_url"], local.env_exports(state)["AWS_REGION"]
    try:
        done = rehearsal.rehearse(cdk_json.parent, _target(cfg), url, region, context,
                                  echo=lambda line: typer.echo(line, err=as_json), stacks=stacks or (),
                                  account=state.get("account"))
    except rehearsal.RehearsalError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"environment": cfg.env, "stacks": done.statuses, "outputs": done.outputs})
    else:
        grid = table("stack", "status", "outputs")
        for name, status in done.statuses.items():
            grid.add_row(name, status, str(len(done.outputs.get(name, {}))))
        console().print(grid)
    if not done.ok:
        raise typer.Exit(1)


def _target(cfg: Any) -> Any:
    """The rehearsal's view of the configuration (``mlship.local`` sits below ``mlship.config``)."""
    from mlship.local.deploy import Target

    names = cfg.names
    pinned = names.pinned_model("") is not None
    parameters = () if pinned else (names.deployed_bundle_parameter, names.deployed_version_parameter)
    return Target(cfg.env, cfg.model.name, parameters)


def _deployed_config(cdk_json: Any, env: str | None, context: list[str]) -> Any:
    """The settings the deploy synthesizes: cdk.json's context with the ``-c KEY=VALUE`` pairs."""
    from mlship.config import ConfigError, load_project_config

    overrides = {}
    for pair in context:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(env or "?", [f"-c {pair!r}: expected KEY=VALUE"])
        overrides[key] = value
    return load_project_config(env, cdk_json, overrides)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
