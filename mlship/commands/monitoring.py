"""CLI commands for the monitoring path (filled in by its issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this path's commands to the main app."""
