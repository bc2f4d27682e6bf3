"""Build hook: the wheel ships the repository files a command needs at run time as package data.

``pyproject.toml`` holds the project's metadata; this file only adds a ``build_py`` step that
copies ``mlship.resources.SHIPPED`` (the serving Dockerfile, constraints.txt, the Lambda handler
sources) into ``mlship/_data/`` of the build. An editable install skips it: the package then runs
from the checkout, where :func:`mlship.resources.data_path` finds the files in place.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _literals(path: Path, *names: str) -> dict[str, object]:
    """Module-level literal assignments of ``path`` (read from source: nothing is installed yet)."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text("utf-8")).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(node.value)
    return found


class BuildWithData(build_py):
    """``build_py`` that also copies the shipped repository files into ``mlship/_data``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        spec = _literals(HERE / "mlship" / "resources.py", "SHIPPED", "DATA_DIR", "SKIPPED_NAMES",
                         "SKIPPED_SUFFIXES")
        skipped_names, skipped_suffixes = tuple(spec["SKIPPED_NAMES"]), tuple(spec["SKIPPED_SUFFIXES"])
        target = Path(self.build_lib) / "mlship" / str(spec["DATA_DIR"])
        shutil.rmtree(target, ignore_errors=True)
        for rel in spec["SHIPPED"]:
            src, dest = HERE / rel, target / rel
            if src.is_dir():
                shutil.copytree(src, dest, ignore=lambda _dir, names: [
                    n for n in names if n in skipped_names or n.endswith(skipped_suffixes)])
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


setup(cmdclass={"build_py": BuildWithData})
