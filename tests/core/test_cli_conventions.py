"""CLI conventions: reports go to timestamped folders with a ``latest`` pointer unless ``--out``
names one; tables written to a pipe fold long values instead of cutting them at 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _mlship(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, cwd=cwd,
                          env={**env, "PYTHONPATH": str(REPO)}, timeout=300)


def test_two_evaluations_keep_both_reports_and_latest_is_the_second(tmp_path: Path, churn_bundle: Path,
                                                                    churn_split: tuple[Any, Any]):
    churn_split[1].head(400).to_csv(tmp_path / "holdout.csv", index=False)
    runs = [_mlship(tmp_path, "evaluate", str(churn_bundle), "--data", "holdout.csv", "--bootstrap", "0")
            for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    base = tmp_path / "reports" / "evaluation"
    folders = sorted(p for p in base.iterdir() if p.name != "latest")
    assert len(folders) == 2 and all((f / "evaluation.json").is_file() for f in folders), list(base.iterdir())
    second = next(f for f in folders if f.name in runs[1].stdout)  # its report paths are printed
    assert (base / "latest").is_symlink() and (base / "latest").resolve() == second.resolve()
    named = _mlship(tmp_path, "evaluate", str(churn_bundle), "--data", "holdout.csv", "--bootstrap", "0",
                    "--out", "mine")
    assert named.returncode == 0 and (tmp_path / "mine" / "evaluation.json").is_file()
    assert not (tmp_path / "mine" / "latest").exists()


def test_a_table_on_a_pipe_folds_long_values(tmp_path: Path):
    code = ("from mlship.cli.common import console, table\n"
            "t = table('run', 'detail', title='runs'); t.add_column('more')\n"
            "t.add_row('r-1', 'x' * 150 + 'END', 'y' * 40 + 'TAIL'); console().print(t)\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    text = done.stdout
    assert "…" not in text and "END" in text and "TAIL" in text
    assert "".join(line.strip("│ ") for line in text.splitlines()).count("x") == 150


def test_reporting_commands_print_one_json_document(tmp_path: Path, churn_bundle: Path,
                                                     churn_split: tuple[Any, Any], churn_model: Any):
    import json

    import joblib

    from mlship.local.datasets import make_churn

    churn_split[1].head(400).to_csv(tmp_path / "holdout.csv", index=False)
    make_churn(1500, seed=4, shift=1.0).to_csv(tmp_path / "traffic.csv", index=False)
    joblib.dump(churn_model, tmp_path / "model.joblib")
    commands = {
        "export": ["export", "model.joblib", "holdout.csv", "--out", "b", "--name", "churn", "--version", "9",
                   "--label", "churned"],
        "verify": ["verify", str(churn_bundle)],
        "evaluate": ["evaluate", str(churn_bundle), "--data", "holdout.csv", "--bootstrap", "0"],
        "drift": ["drift", str(churn_bundle), "traffic.csv", "--exclude", "churned"],
    }
    for name, args in commands.items():
        done = _mlship(tmp_path, *args, "--json")
        assert done.returncode == 0, (name, done.stderr)
        doc = json.loads(done.stdout)  # the whole stdout is the document
        assert isinstance(doc, dict) and doc, name
    assert json.loads(_mlship(tmp_path, "verify", str(churn_bundle), "--json").stdout)["golden_checked"] == 5
