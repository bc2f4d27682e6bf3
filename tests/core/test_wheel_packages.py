"""The wheel's package list (pyproject ``[tool.setuptools] packages``) names every package of the tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tree_packages() -> set[str]:
    found = set()
    for root, prefix in ((REPO / "mlship", "mlship"), (REPO / "batch", "mlship.batch"), (REPO / "edge", "mlship.edge")):
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *rel)))
    return found


def test_every_package_ships_in_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _tree_packages()
    assert config["package-dir"] == {"mlship.batch": "batch", "mlship.edge": "edge"}
