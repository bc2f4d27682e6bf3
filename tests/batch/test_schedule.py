"""Scheduled runs score one logical date's partition as run DATE; backfill runs the missed dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlship.batch import schedule, score
from mlship.batch.job import JobConfig
from mlship.batch.storage import BatchError

pytestmark = pytest.mark.xdist_group("batch-spark")


@pytest.mark.parametrize(("time", "zone", "offset", "expected"), [
    ("2026-12-01T03:00:00Z", "UTC", 1, date(2026, 11, 30)),
    ("2026-12-01T03:00:00+00:00", "UTC", 0, date(2026, 12, 1)),
    ("2026-11-30T23:30:00Z", "Europe/Berlin", 0, date(2026, 12, 1)),  # already the 1st in Berlin
    ("2026-12-01T02:00:00Z", "America/New_York", 1, date(2026, 11, 29)),  # still the 30th in New York
])
def test_the_logical_date_is_the_scheduled_time_in_the_zone_minus_the_offset(time, zone, offset, expected):
    assert schedule.logical_date(time, zone, offset) == expected
    assert schedule.partition_uri("s3://b/batch/input/", expected) == f"s3://b/batch/input/date={expected}/"


@pytest.mark.parametrize(("time", "zone", "offset", "problem"), [
    ("yesterday", "UTC", 1, "expected an ISO 8601 time"),
    ("2026-12-01T03:00:00", "UTC", 1, "give a time zone"),
    ("2026-12-01T03:00:00Z", "Mars/Olympus", 1, "not an IANA time zone"),
    ("2026-12-01T03:00:00Z", "UTC", 40, "between 0 and 31"),
])
def test_bad_logical_times_are_refused_with_the_option_named(time, zone, offset, problem):
    with pytest.raises(BatchError, match=problem):
        schedule.logical_date(time, zone, offset)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["UTC", "Europe/Berlin", "", "../etc", "Not/AZone"]),
       st.integers(-5, 40))
def test_any_logical_time_is_a_date_or_a_batch_error(time: str, zone: str, offset: int):
    try:
        day = schedule.logical_date(time, zone, offset)
    except BatchError:
        return
    assert isinstance(day, date)


def test_backfill_ranges_are_bounded_and_ordered():
    assert schedule.dates(date(2026, 11, 28), date(2026, 11, 30)) == [date(2026, 11, d) for d in (28, 29, 30)]
    with pytest.raises(BatchError, match="before --from"):
        schedule.dates(date(2026, 11, 30), date(2026, 11, 28))
    with pytest.raises(BatchError, match="at most 366"):
        schedule.dates(date(2024, 1, 1), date(2026, 1, 1))
    with pytest.raises(BatchError, match="--from 'Nov 3': expected a date"):
        schedule.parse_day("Nov 3", "--from")


@pytest.fixture
def partitioned(tmp_path: Path, holdout: pd.DataFrame) -> Path:
    """INPUT/date=2026-11-29/ (40 rows) and INPUT/date=2026-11-30/ (60 rows); no 2026-11-28."""
    root = tmp_path / "input"
    for day, rows in (("2026-11-29", holdout.iloc[:40]), ("2026-11-30", holdout.iloc[40:100])):
        (root / f"date={day}").mkdir(parents=True)
        rows.to_parquet(root / f"date={day}" / "part-0.parquet", index=False)
    return root


def test_a_scheduled_run_scores_only_its_logical_dates_partition(spark: Any, churn_bundle: Path,
                                                                  partitioned: Path, tmp_path: Path):
    out = tmp_path / "out"
    args = ["--model", str(churn_bundle), "--input", str(partitioned), "--output", str(out), "--master", "local[2]",
            "--id-column", "customer_id", "--no-progress", "--no-drift"]
    assert score.main([*args, "--logical-time", "2026-12-01T03:00:00Z"]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("_")) == ["run_id=2026-11-30"]
    assert len(pd.read_parquet(out / "run_id=2026-11-30")) == 60  # that date's rows, not the history
    assert score.main([*args, "--logical-time", "2026-12-01T03:00:00Z"]) == 0  # a retried tick replaces it
    assert len(pd.read_parquet(out / "run_id=2026-11-30")) == 60
    assert score.main([*args, "--logical-time", "2026-12-01T03:00:00Z", "--run-id", "x"]) == 1
    assert score.main(args) == 1  # neither a run id nor a logical time


def test_backfill_runs_missed_dates_skips_committed_ones_and_reports_failures(spark: Any, churn_bundle: Path,
                                                                               partitioned: Path, tmp_path: Path):
    out = tmp_path / "out"
    base = JobConfig(model=str(churn_bundle), input=str(partitioned), output=str(out), run_id="backfill",
                     master="local[2]", id_column="customer_id", progress=False, drift=False)
    days = schedule.dates(date(2026, 11, 28), date(2026, 11, 30))
    first = schedule.backfill(days[2:], base)
    assert [o.status for o in first] == ["scored"] and first[0].counts["input"] == 60
    seen: list[str] = []
    outcomes = schedule.backfill(days, base, on_day=lambda o: seen.append(o.status))
    assert [o.status for o in outcomes] == seen == ["failed", "scored", "skipped"]
    assert "2026-11-28" in outcomes[0].detail  # the missing partition is named
    assert outcomes[1].counts["input"] == 40 and schedule.run_committed(str(out), "2026-11-29")
    forced = schedule.backfill(days[1:], base, force=True)
    assert [o.status for o in forced] == ["scored", "scored"]


def test_backfill_refuses_bad_dates_before_starting_spark(tmp_path: Path):
    import subprocess
    import sys

    base = [sys.executable, "-m", "mlship", "batch", "backfill", "--model", "m", "--input", "i", "--output",
            str(tmp_path / "out")]
    for dates, problem in ((["--from", "2026-11-30", "--to", "2026-11-01"], "--to 2026-11-01 is before --from"),
                           (["--from", "30.11.2026", "--to", "2026-12-01"], "--from '30.11.2026': expected a date")):
        done = subprocess.run([*base, *dates], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and problem in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("zone", ["America", "x" * 300, "Europe/"])
def test_zone_names_the_os_refuses_are_batch_errors(zone: str):
    with pytest.raises(BatchError, match="not an IANA time zone"):
        schedule.logical_date("2026-12-01T03:00:00Z", zone, 1)


def test_the_configuration_refuses_an_unknown_schedule_zone():
    from mlship.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="batch.schedule_timezone: 'America' is not an IANA time zone"):
        build_config("prod", {"batch": {"schedule_timezone": "America"}})


def test_a_date_whose_run_raises_anything_fails_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    # stands in for a Py4J/AnalysisException from Spark (a real one needs a broken input on a live session)
    from mlship.batch import job

    calls: list[str] = []

    def run_job(config: JobConfig) -> dict[str, Any]:
        calls.append(config.run_id)
        if config.run_id == "2026-11-28":
            raise RuntimeError("An error occurred while calling o123.parquet.\nstack trace ...")
        return {"output": {"run_path": f"{config.output}/run_id={config.run_id}"}, "counts": {"input": 1}}

    monkeypatch.setattr(job, "run_job", run_job)
    base = JobConfig(model="m", input=str(tmp_path / "in"), output=str(tmp_path / "out"), run_id="backfill")
    outcomes = schedule.backfill(schedule.dates(date(2026, 11, 28), date(2026, 11, 29)), base)
    assert [o.status for o in outcomes] == ["failed", "scored"] and calls == ["2026-11-28", "2026-11-29"]
    assert outcomes[0].detail == "RuntimeError: An error occurred while calling o123.parquet."
