"""No function over 60 lines in the product code (mlship/, batch/, edge/, functions/).

A function's length runs from its ``def`` line to the last line of its body, docstring and
nested functions included (decorators excluded). The functions over the limit when the rule
came in are listed in ``ALLOWED`` with a reason; a new long function fails the test, and an
allowed one that has been split must leave the list, so it only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("mlship", "batch", "edge", "functions")
MAX_LINES = 60

# "path/to/module.py::Qualified.name": why it is still long
ALLOWED: dict[str, str] = {}


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method in ``tree`` with its qualified name (``Class.method``, ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def function_lengths() -> dict[str, int]:
    """``{"path::qualified.name": lines}`` for every function in the scanned folders."""
    lengths: dict[str, int] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
            for name, node in _functions(tree):
                lengths[f"{rel}::{name}"] = (node.end_lineno or node.lineno) - node.lineno + 1
    return lengths


def test_the_scan_finds_functions_methods_and_nested_functions() -> None:
    tree = ast.parse("class A:\n    def m(self):\n        def inner():\n            pass\n\n"
                     "async def f():\n    '''doc'''\n    return 1\n")
    found = {name: node.end_lineno - node.lineno + 1 for name, node in _functions(tree)}  # type: ignore[operator]
    assert found == {"A.m": 3, "A.m.inner": 2, "f": 3}
    assert function_lengths()["mlship/evaluation/export.py::export_bundle"] <= MAX_LINES


def test_no_new_function_over_the_limit() -> None:
    too_long = {name: n for name, n in function_lengths().items() if n > MAX_LINES and name not in ALLOWED}
    assert not too_long, (
        f"functions over {MAX_LINES} lines (split them into steps; see CONTRIBUTING.md): "
        + ", ".join(f"{name} ({n} lines)" for name, n in sorted(too_long.items()))
    )


def test_the_allowlist_holds_only_functions_still_over_the_limit() -> None:
    lengths = function_lengths()
    stale = sorted(name for name in ALLOWED if lengths.get(name, 0) <= MAX_LINES)
    assert not stale, f"split or removed, take them off ALLOWED: {stale}"
