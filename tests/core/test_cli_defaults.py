"""Project defaults (``mlship.toml`` / ``[tool.mlship]``): found upwards from the working
directory, paths relative to the file, unknown keys refused by name, never over an environment
variable or a flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlship.cli.defaults import DefaultsError, apply_defaults, load_defaults


def test_mlship_toml_in_a_parent_fills_unset_variables_only(tmp_path: Path):
    (tmp_path / "mlship.toml").write_text('registry_bucket = "team-registry"\nsigning_key = "keys/mlship.key"\n'
                                          'thresholds = "gate.yaml"\n')
    work = tmp_path / "notebooks" / "exp1"
    work.mkdir(parents=True)
    env = {"MLSHIP_REGISTRY_BUCKET": "from-the-environment"}
    applied = apply_defaults(env, start=work)
    assert env["MLSHIP_REGISTRY_BUCKET"] == "from-the-environment"  # the environment wins
    assert env["MLSHIP_SIGNING_KEY"] == str(tmp_path / "keys" / "mlship.key")  # relative to the file
    assert env["MLSHIP_GATE_THRESHOLDS"] == str(tmp_path / "gate.yaml")
    assert set(applied) == {"MLSHIP_SIGNING_KEY", "MLSHIP_GATE_THRESHOLDS"}


def test_tool_mlship_in_pyproject_and_no_file_at_all(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.mlship]\nregistry_bucket = "b"\n')
    assert load_defaults(tmp_path)[1].registry_bucket == "b"
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "pyproject.toml").write_text('[project]\nname = "y"\n')  # no [tool.mlship]: keep looking up
    assert load_defaults(bare)[0] == tmp_path / "pyproject.toml"
    assert apply_defaults({}, start=Path("/")) == {}


def test_an_unknown_key_is_named_with_the_known_ones(tmp_path: Path):
    (tmp_path / "mlship.toml").write_text('registry_bukcet = "typo"\n')
    with pytest.raises(DefaultsError, match="registry_bukcet.*keys: registry_bucket"):
        load_defaults(tmp_path)


@given(st.text(max_size=200))
def test_any_file_content_is_defaults_or_one_defaults_error(content: str):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "mlship.toml").write_text(content, encoding="utf-8")
        try:
            load_defaults(Path(folder))
        except DefaultsError as exc:
            assert "mlship.toml" in str(exc)


def test_the_cli_reads_mlship_toml_from_the_working_directory(tmp_path: Path, churn_bundle: Path,
                                                              signing_keys: Path):
    import os
    import subprocess
    import sys

    (tmp_path / "mlship.toml").write_text(f'public_key = "{signing_keys / "mlship.pub"}"\n')
    env = {k: v for k, v in os.environ.items() if k != "MLSHIP_PUBLIC_KEY"}
    done = subprocess.run([sys.executable, "-m", "mlship", "verify", str(churn_bundle), "--json"], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and '"signature_checked": true' in done.stdout, done.stderr
    (tmp_path / "mlship.toml").write_text('bucket = "typo"\n')
    bad = subprocess.run([sys.executable, "-m", "mlship", "verify", str(churn_bundle)], cwd=tmp_path,
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "bucket" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
