"""``mlship abtest``: A/B test analysis (filled in by the experiments work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``abtest`` commands to ``app``."""
