"""The ``mlship`` typer app: the core command modules plus every plugin of the ``mlship.cli`` group."""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import entry_points

import typer

CORE_MODULES = ("core", "local", "serving", "registry", "monitoring", "release", "loadtest", "experiments", "shadow",
                "retrain")
PLUGIN_GROUP = "mlship.cli"  # entry points: ``name = "package.module:register"``

app = typer.Typer(name="mlship", help="Ship a scikit-learn model to AWS Lambda, SageMaker, Spark and edge "
                  "devices from one signed ONNX bundle.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

for _module in CORE_MODULES:
    importlib.import_module(f"mlship.cli.{_module}").register(app)
# The targets (batch, edge, and any installed plugin) register their own commands: the core
# never imports a target.
for _plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
    _plugin.load()(app)


def main() -> None:
    """Console entry point with mlship errors turned into one clear line."""
    from mlship.errors import MlshipError

    try:
        app()
    except MlshipError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
