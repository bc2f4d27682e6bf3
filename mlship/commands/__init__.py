"""CLI command groups. Each module exposes ``register(app)`` and keeps heavy imports inside
its command functions so that ``mlship --help`` stays fast."""

from typing import NoReturn

import typer

MODULES = ("core", "local", "serving", "batch", "edge", "registry", "monitoring")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red ``error:`` line on stderr and exit non-zero (no traceback)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)
