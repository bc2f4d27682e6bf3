"""``mlship local up | down | status | env``: the moto server that stands in for AWS."""

from __future__ import annotations

import json

import typer

from mlship.cli.common import fail

local_app = typer.Typer(help="Run a local AWS (moto server on localhost) for demos and tests.",
                        no_args_is_help=True)


@local_app.command("up")
def up(port: int = typer.Option(5000, help="Port for the moto server."),
       gateway_port: int = typer.Option(0, help="Port for the sagemaker-runtime gateway (0: any free port)."),
       gateway: bool = typer.Option(True, help="Start the local sagemaker-runtime gateway.")) -> None:
    """Start the local AWS (idempotent) and print how to use it."""
    from mlship.local import environment as local

    state = local.up(port, gateway_port if gateway else None)
    typer.echo(f"local AWS running at {state['endpoint_url']} (pid {state['moto']['pid']})")
    if "gateway" in state.get("services", {}):
        typer.echo(f"sagemaker-runtime gateway at {state['services']['gateway']['url']} "
                   "(invoke_endpoint answers from local `mlship serve` processes)")
    typer.echo('point boto3 at it with: eval "$(mlship local env)"')


@local_app.command("down")
def down() -> None:
    """Stop the local AWS and everything `mlship local` started."""
    from mlship.local import environment as local

    typer.echo("stopped" if local.down() else "nothing was running")


@local_app.command("status")
def status() -> None:
    """Show whether the local AWS is running; exit 1 when it is not."""
    from mlship.local import environment as local

    state = local.read_state()
    if not state or not local.is_alive(state["moto"]["pid"]):
        typer.echo("local AWS is not running")
        raise typer.Exit(1)
    typer.echo(json.dumps(state, indent=2))


@local_app.command("env")
def env() -> None:
    """Print shell exports that point boto3 at the running local AWS."""
    from mlship.local import environment as local

    state = local.read_state()
    if not state:
        fail("local AWS is not running: run `mlship local up`")
    for key, value in local.env_exports(state).items():
        typer.echo(f"export {key}={value}")


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")
