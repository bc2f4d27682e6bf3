"""`mlship export` refuses untrusted-looking input with one error line (issue 11, item 12 and item 6)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _export(model: Path, holdout: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlship", "export", str(model), str(holdout), "--label", "churned",
                           "--name", "churn", "--out", str(out), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def holdout_file(churn_split, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "holdout.csv"
    churn_split[1].head(200).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("payload", [{"not": "a model"}, [1, 2, 3], "text"], ids=["dict", "list", "str"])
def test_a_pickle_that_is_not_an_estimator_is_one_error_line(payload, holdout_file, tmp_path):
    model = tmp_path / "model.pkl"
    model.write_bytes(pickle.dumps(payload))
    done = _export(model, holdout_file, tmp_path / "out")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "not a fitted scikit-learn estimator" in lines[0], done.stderr


def test_a_corrupt_pickle_is_one_error_line(holdout_file, tmp_path):
    model = tmp_path / "model.joblib"
    model.write_bytes(b"\x80\x05not really a pickle")
    done = _export(model, holdout_file, tmp_path / "out")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "error: cannot load an estimator" in done.stderr


@pytest.mark.parametrize("version", ["one", "1.2.3-beta_x!", "v1..2", ""])
def test_unparseable_versions_are_refused_at_export(churn_model, churn_split, tmp_path, version):
    from mlship.evaluation.export import export_bundle
    from mlship.runtime.versions import InvalidVersionError

    with pytest.raises(InvalidVersionError):
        export_bundle(churn_model, churn_split[1], "churned", tmp_path / "b", name="churn", version=version)
    assert not (tmp_path / "b").exists()  # refused before anything is written


def test_help_says_the_model_file_must_be_trusted():
    done = subprocess.run([sys.executable, "-m", "mlship", "export", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert "trust" in done.stdout and "unpickling" in done.stdout
