"""What every HTML report page shares: one Jinja2 environment setup (autoescaped, whitespace
trimmed) and the way numbers are shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def render_page(templates: Path, name: str, filters: dict[str, Callable[..., str]] | None = None,
                **context: Any) -> str:
    """Render ``templates/name`` (autoescaped) with ``context`` and extra ``filters``
    (``num`` is :func:`number` unless given)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update({"num": number, **(filters or {})})
    return env.get_template(name).render(**context)


def number(value: Any, digits: int = 4) -> str:
    """A value for a table cell: ``–`` for None, floats to ``digits`` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
