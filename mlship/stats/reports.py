"""What every HTML report page shares: one Jinja2 environment setup (autoescaped, whitespace
trimmed), the base page and its CSS (``templates/base.html.j2``, ``macros.html.j2`` here) and the
way numbers are shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlship.stats.plots import compact

SHARED_TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_page(templates: Path, name: str, filters: dict[str, Callable[..., str]] | None = None,
                **context: Any) -> str:
    """Render ``templates/name`` (autoescaped) with ``context`` and extra ``filters``
    (``num`` is :func:`number` and ``compact`` :func:`~mlship.stats.plots.compact` unless given).
    A template may extend ``base.html.j2`` and import ``macros.html.j2`` (the shared page)."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=ChoiceLoader([FileSystemLoader(templates), FileSystemLoader(SHARED_TEMPLATES)]),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters.update({"num": number, "compact": compact, **(filters or {})})
    return env.get_template(name).render(**context)


def number(value: Any, digits: int = 4) -> str:
    """A value for a table cell: ``–`` for None, yes/no for booleans, floats to ``digits`` significant
    digits (from ten thousand up with an SI suffix, ``65.08k``, rather than an exponent)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return compact(value, digits) if abs(value) >= 1e4 else f"{value:.{digits}g}"
    return str(value)
