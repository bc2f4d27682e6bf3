"""The batch job's environment: BatchSettings and how batch/score.py applies it (no Spark run)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlship.batch import job, score
from mlship.batch.settings import BatchSettings

from mlship.runtime.settings import SettingsError

ARGS = ["--model", "m", "--input", "in.parquet", "--output", "out", "--run-id", "r1"]


def test_defaults_leave_everything_unset() -> None:
    settings = BatchSettings.from_env({})
    assert settings == BatchSettings()
    assert settings.master(None) == "local[*]"


@pytest.mark.parametrize(("environ", "given", "expected"), [
    ({"MLSHIP_SPARK_MASTER": "spark://h:7077"}, None, "spark://h:7077"),
    ({"MLSHIP_SPARK_MASTER": "spark://h:7077"}, "local[2]", "local[2]"),
    ({"PYSPARK_GATEWAY_PORT": "41234"}, None, None),
    ({"PYSPARK_GATEWAY_PORT": "41234", "MLSHIP_SPARK_MASTER": "yarn"}, None, "yarn"),
    ({}, "local[2]", "local[2]"),
])
def test_master_resolution(environ: dict[str, str], given: str | None, expected: str | None) -> None:
    assert BatchSettings.from_env(environ).master(given) == expected


def test_bad_gateway_port_is_named() -> None:
    with pytest.raises(SettingsError) as caught:
        BatchSettings.from_env({"PYSPARK_GATEWAY_PORT": "later"})
    assert (caught.value.variable, caught.value.value) == ("PYSPARK_GATEWAY_PORT", "later")


def test_describe_lists_every_variable() -> None:
    assert [row.env for row in BatchSettings.describe()] == [
        "MLSHIP_SPARK_MASTER", "PYSPARK_GATEWAY_PORT", "MLSHIP_PUBLIC_KEY", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON"]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    configs: list[Any] = []
    monkeypatch.setattr(job, "run_job", lambda config: configs.append(config) or {"run_id": config.run_id})
    for name in ("MLSHIP_SPARK_MASTER", "PYSPARK_GATEWAY_PORT", "MLSHIP_PUBLIC_KEY"):
        monkeypatch.delenv(name, raising=False)
    return configs


def test_score_takes_master_and_key_from_the_environment(captured: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", "/keys/mlship.pub")
    assert score.main(ARGS) == 0
    assert (captured[0].master, captured[0].public_key) == ("local[2]", "/keys/mlship.pub")


def test_score_arguments_win_over_the_environment(captured: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_SPARK_MASTER", "local[2]")
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", "/keys/env.pub")
    assert score.main([*ARGS, "--master", "local[1]", "--public-key", "/keys/arg.pub"]) == 0
    assert (captured[0].master, captured[0].public_key) == ("local[1]", "/keys/arg.pub")


def test_score_fails_at_start_on_a_bad_variable(captured: list[Any], monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "later")
    assert score.main(ARGS) == 1
    assert captured == []
    assert capsys.readouterr().err.startswith("error: environment variable PYSPARK_GATEWAY_PORT='later'")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=24), max_size=4))
def test_any_conf_option_is_a_spark_setting_or_a_batch_error(items: list[str]) -> None:
    from mlship.batch.job import spark_conf_pairs
    from mlship.batch.storage import BatchError

    try:
        pairs = spark_conf_pairs(items)
    except BatchError as exc:
        assert "expected spark.KEY=VALUE" in str(exc)
    else:
        assert all(key.startswith("spark.") for key in pairs) and len(pairs) <= len(items)


def test_a_malformed_conf_exits_2_with_the_option_named(tmp_path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mlship", "batch", "run", "--model", "m", "--input", "i",
                           "--output", str(tmp_path), "--run-id", "r", "--conf", "maxPartitionBytes"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--conf 'maxPartitionBytes': expected spark.KEY=VALUE" in done.stderr
