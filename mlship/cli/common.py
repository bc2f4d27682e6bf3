"""Helpers shared by the CLI command modules.

Each command module (here, and each target's ``cli.py``) exposes ``register(app)`` and keeps
heavy imports inside its command functions so that ``mlship --help`` stays fast."""

import os
from pathlib import Path
from typing import Any, NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red ``error:`` line on stderr and exit non-zero (no traceback)."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


WIDE = 200  # columns when the output is not a terminal (a pipe, a CI log): tables are not cut at 80


def console(*, stderr: bool = False) -> Any:
    """A rich console at the terminal's width; writing to a pipe or a log, ``$COLUMNS`` or ``WIDE``."""
    from rich.console import Console

    found = Console(stderr=stderr)
    if found.is_terminal or os.environ.get("COLUMNS"):
        return found
    return Console(stderr=stderr, width=WIDE)


def table(*columns: str, **options: Any) -> Any:
    """A rich table whose cells fold long values onto more lines instead of cutting them (columns
    given here and those added later)."""
    from rich.table import Table

    class FoldingTable(Table):
        def add_column(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("overflow", "fold")
            super().add_column(*args, **kwargs)

    found = FoldingTable(**options)
    for name in columns:
        found.add_column(name)
    return found


def report_folder(out: Path | None, kind: str, root: Path = Path("reports")) -> Path:
    """Where a report goes: ``out`` exactly when given, else a new ``reports/KIND/<UTC time>/`` (so
    no run overwrites another's report); :func:`mark_latest` points ``reports/KIND/latest`` at it."""
    import time
    import uuid

    if out is not None:
        return out
    folder = root / kind / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:4]}"
    folder.mkdir(parents=True)
    return folder


def mark_latest(folder: Path, out: Path | None) -> None:
    """After a report was written to a folder of :func:`report_folder`: ``latest`` beside it points
    at it (replaced atomically: a reader sees the old report or the new one, never none)."""
    import uuid

    if out is not None:
        return
    pointer = folder.parent / f".latest-{uuid.uuid4().hex[:8]}"
    pointer.symlink_to(folder.name, target_is_directory=True)
    os.replace(pointer, folder.parent / "latest")


JSON_HELP = "Print the result as one JSON document on stdout (instead of the tables)."


def emit_json(doc: Any) -> None:
    """A command's result as JSON on stdout (``--json``)."""
    import json

    typer.echo(json.dumps(doc, indent=2, default=str))
