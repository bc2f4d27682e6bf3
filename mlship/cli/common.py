"""Helpers shared by the CLI command modules.

Each command module (here, and each target's ``cli.py``) exposes ``register(app)`` and keeps
heavy imports inside its command functions so that ``mlship --help`` stays fast."""

from typing import NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red ``error:`` line on stderr and exit non-zero (no traceback)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)
