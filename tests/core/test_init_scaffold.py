"""`mlship init` in-process (typer's runner): what it writes and the names it refuses before writing.

The scaffold synthesizing and deploying from a fresh venv is tests/fresh_install's job."""

from __future__ import annotations

import ast
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlship.cli.root import app


def _init(folder: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["init", str(folder), *args])
    return result.exit_code, result.output


def test_the_label_reaches_the_trainer_and_the_retraining_settings(tmp_path: Path):
    code, output = _init(tmp_path / "p", "--model", "fraud", "--label", "is_fraud", "--prefix", "acme")
    assert code == 0, output
    train = (tmp_path / "p" / "train.py").read_text()
    ast.parse(train)
    assert 'LABEL = "is_fraud"' in train and '"fraud"' in train
    common = json.loads((tmp_path / "p" / "cdk.json").read_text())["context"]["mlship"]["common"]
    assert common["retrain"] == {"label": "is_fraud"} and common["prefix"] == "acme"
    ast.parse((tmp_path / "p" / "app.py").read_text())


@settings(max_examples=60, deadline=None)
@given(label=st.text(max_size=20), model=st.sampled_from(["churn", "no spaces!", "x" * 200]))
def test_any_label_and_model_give_a_valid_project_or_exit_2_with_nothing_written(label: str, model: str):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p"
        code, output = _init(folder, f"--model={model}", f"--label={label}")
        if code == 0:
            ast.parse((folder / "train.py").read_text())  # the label is a safe string literal
            assert json.loads((folder / "cdk.json").read_text())["context"]["mlship"]["common"]["retrain"] == {
                "label": label}
        else:
            assert code == 2 and "error:" in output and not folder.exists()
