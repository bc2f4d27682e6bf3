"""``mlship shadow``: the shadow agreement report."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``shadow`` commands to ``app``."""
