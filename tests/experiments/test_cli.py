"""``mlship abtest analyze`` end to end in a real process, and bad input (fuzzed) refused with one
``error:`` line and exit code 2, never a decision or a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fuzzing import LEAK_MARKERS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mlship.cli import app

REPO = Path(__file__).resolve().parents[2]
NAMES = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A, whitelist_categories=("L", "N")),
                min_size=1, max_size=12)


def _mlship(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlship", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.svgs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        self.svgs += tag == "svg"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _units(path: Path, n: int, p_c: float, p_t: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < 0.5, "challenger", "champion")
    pd.DataFrame({"arm": arm, "converted": (rng.random(n) < np.where(arm == "challenger", p_t, p_c)).astype(int),
                  "latency": rng.gamma(2.0, 15.0, n), "failed": (rng.random(n) < 0.002).astype(int)}).to_csv(
        path, index=False)
    return path


def _one_error_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not any(marker in stderr for marker in LEAK_MARKERS), stderr


def test_analyze_a_table_end_to_end(tmp_path: Path) -> None:
    data = _units(tmp_path / "units.csv", 20_000, 0.10, 0.13)
    proc = _mlship("abtest", "analyze", "--data", str(data), "--variant-column", "arm", "--outcome-column",
                   "converted", "--control", "champion", "--treatment", "challenger", "--mde", "0.2",
                   "--latency-column", "latency", "--max-latency-p99-increase", "0.25", "--error-column", "failed",
                   "--max-error-rate", "0.01", "--sequential", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "decision: ship" in proc.stdout
    doc = json.loads((tmp_path / "out" / "abtest.json").read_text())
    assert doc["format"] == "mlship-abtest/1" and doc["decision"] == "ship" and doc["sequential"]
    assert doc["control"]["name"] == "champion" and doc["treatment"]["units"] > 9000
    assert [g["name"] for g in doc["guardrails"]] == ["latency p99", "error rate"]
    assert len(doc["timeline"]) > 20
    page = _Images()
    page.feed((tmp_path / "out" / "abtest.html").read_text())
    plots = [src for src in page.images if src.startswith("data:image/png;base64,")]
    assert len(plots) + page.svgs >= 3  # cumulative lift, distributions, sample ratio
    text = " ".join(page.text)
    assert "Decision:" in text and "ship" in text and "Sample ratio" in text and "Guardrails" in text


def test_a_continuing_test_prints_the_remaining_sample(tmp_path: Path) -> None:
    data = _units(tmp_path / "units.csv", 2000, 0.10, 0.105, seed=1)
    res = CliRunner().invoke(app, ["abtest", "analyze", "--data", str(data), "--variant-column", "arm",
                                   "--outcome-column", "converted", "--control", "champion", "--treatment",
                                   "challenger", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "decision: continue" in res.stdout and "more units" in res.stdout


@pytest.mark.parametrize("args", [
    ["--treatment", "ghost"],  # an unknown variant (the other classes run in-process below, fuzzed)
    ["--outcome-column", "latency"],  # not a binary outcome
])
def test_bad_input_in_a_real_process(tmp_path: Path, args: list[str]) -> None:
    data = _units(tmp_path / "units.csv", 500, 0.1, 0.1)
    proc = _mlship("abtest", "analyze", "--data", str(data), "--variant-column", "arm", "--outcome-column",
                   "converted", "--control", "champion", "--treatment", "challenger", *args,
                   "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _one_error_line(proc.stderr)
    assert "decision" not in proc.stdout and not (tmp_path / "o").exists()


def _invoke(path: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["abtest", "analyze", "--data", str(path), *args])
    return res.exit_code, res.stdout, res.stderr


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(columns=st.lists(NAMES, min_size=1, max_size=4, unique=True), variant=NAMES, outcome=NAMES)
def test_fuzzed_missing_columns(tmp_path: Path, columns: list[str], variant: str, outcome: str) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({c: [0, 1] * 40 for c in columns}).to_csv(path, index=False)
    code, out, err = _invoke(path, "--variant-column", variant, "--outcome-column", outcome)
    if variant in columns and outcome in columns:
        return  # both exist: another test's class of input
    assert code == 2 and "decision" not in out
    _one_error_line(err)
    assert "no column" in err


@SETTINGS
@given(present=st.lists(NAMES, min_size=1, max_size=3, unique=True), control=NAMES, treatment=NAMES)
def test_fuzzed_unknown_variants(tmp_path: Path, present: list[str], control: str, treatment: str) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"variant": [present[i % len(present)] for i in range(200)], "outcome": [0, 1] * 100}).to_csv(
        path, index=False)
    code, out, err = _invoke(path, "--control", control, "--treatment", treatment)
    if control in present and treatment in present and control != treatment:
        return
    assert code == 2 and "decision" not in out
    _one_error_line(err)
    assert "variant" in err


@SETTINGS
@given(n_control=st.integers(0, 60), n_treatment=st.integers(0, 60), min_units=st.integers(2, 60))
def test_fuzzed_too_few_rows(tmp_path: Path, n_control: int, n_treatment: int, min_units: int) -> None:
    if min(n_control, n_treatment) >= min_units:
        return
    path = tmp_path / "t.csv"
    variants = ["control"] * n_control + ["treatment"] * n_treatment
    pd.DataFrame({"variant": variants, "outcome": [i % 2 for i in range(len(variants))]}, dtype=object).to_csv(
        path, index=False)
    code, out, err = _invoke(path, "--min-units", str(min_units))
    assert code == 2 and "decision" not in out
    _one_error_line(err)


@SETTINGS
@given(content=st.binary(max_size=300))
def test_fuzzed_unreadable_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    code, out, err = _invoke(path)
    assert code == 2 and "decision" not in out
    _one_error_line(err)


def test_data_and_bucket_are_exclusive_and_settings_checked(tmp_path: Path) -> None:
    path = _units(tmp_path / "u.csv", 100, 0.1, 0.1)
    for args in (["--data", str(path), "--bucket", "b"], [], ["--data", str(path), "--metric", "ratio"],
                 ["--data", str(path), "--alpha", "2"], ["--data", str(path), "--max-latency-p99-ms", "100"]):
        res = CliRunner().invoke(app, ["abtest", "analyze", *args])
        assert res.exit_code == 2
        _one_error_line(res.stderr)
