"""The targets' commands plug into the core CLI through the ``mlship.cli`` entry-point group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("first", ["mlship.batch.cli", "mlship.edge.cli", "mlship.cli.common"])
def test_a_command_module_imports_before_the_app(first):
    """Importing a plugin's command module first (as demos and notebooks do) must not re-enter it
    half-initialised through the app's plugin loading."""
    code = f"import {first}; from mlship.cli import app; print(sorted(c.name for c in app.registered_groups))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "batch" in done.stdout and "edge" in done.stdout


def test_the_plugins_appear_in_help():
    done = subprocess.run([sys.executable, "-m", "mlship", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0
    assert "batch" in done.stdout and "edge" in done.stdout and "export" in done.stdout
