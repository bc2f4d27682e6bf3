"""The ``mlship`` typer app: the core command modules plus every plugin of the ``mlship.cli`` group."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import typer
import typer.main

CORE_MODULES = ("core", "local", "serving", "registry", "monitoring", "release", "loadtest", "experiments", "shadow",
                "retrain", "init")
PLUGIN_GROUP = "mlship.cli"  # entry points: ``name = "package.module:register"``

app = typer.Typer(name="mlship", help="Ship a scikit-learn model to AWS Lambda, SageMaker, Spark and edge "
                  "devices from one signed ONNX bundle.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=True)

for _module in CORE_MODULES:
    importlib.import_module(f"mlship.cli.{_module}").register(app)
# The targets (batch, edge, and any installed plugin) register their own commands: the core
# never imports a target.
for _plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
    _plugin.load()(app)


def command_words(argv: list[str]) -> list[str]:
    """The command words of ``argv`` (``["shadow", "report"]`` for ``mlship shadow report X``)."""
    command = typer.main.get_command(app)
    words: list[str] = []
    for token in argv:
        subcommands = getattr(command, "commands", None)  # a group (typer vendors its click)
        if not isinstance(subcommands, dict):
            break
        if token.startswith("-"):
            continue  # an option before the subcommand
        if token not in subcommands:
            break
        words.append(token)
        command = subcommands[token]
    return words


def main() -> None:
    """Console entry point: mlship errors and a missing optional extra become one clear line."""
    from mlship.cli.defaults import apply_defaults
    from mlship.errors import MlshipError
    from mlship.extras import missing_extra_message, preflight_message

    early = preflight_message([word for word in sys.argv[1:] if not word.startswith("-")])
    if early is not None:
        typer.secho(f"error: {early}", fg="red", err=True)
        sys.exit(2)
    try:
        apply_defaults()  # mlship.toml / [tool.mlship]: fills only the unset environment variables
        app()
    except MlshipError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except ModuleNotFoundError as exc:
        # a library of an extra that is not installed (pip install mlship is the core only); any
        # other missing module is a bug and keeps its traceback
        message = missing_extra_message(exc.name or "", command_words(sys.argv[1:]))
        if message is None:
            raise
        typer.secho(f"error: {message}", fg="red", err=True)
        sys.exit(2)
