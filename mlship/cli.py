"""The ``mlship`` command line: parse arguments, call the library, print results.

Errors from mlship (bad input, failed verification, AWS failures) become one clear line
on stderr and exit code 1 (2 for usage errors); never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from mlship.commands import MODULES

app = typer.Typer(name="mlship", help="Ship a scikit-learn model to AWS Lambda, SageMaker, Spark and edge "
                  "devices from one signed ONNX bundle.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

for _module in MODULES:
    importlib.import_module(f"mlship.commands.{_module}").register(app)


def main() -> None:
    """Console entry point with mlship errors turned into one clear line."""
    from mlship.errors import MlshipError

    try:
        app()
    except MlshipError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
