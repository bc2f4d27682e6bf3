"""Kill the real driver process midway: nothing partial becomes visible, and the rerun is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlship.batch.job import JobConfig, run_job
from mlship.batch.storage import visible_files

# every Spark test on one xdist worker (make test uses --dist loadgroup): one SparkSession
pytestmark = pytest.mark.xdist_group("batch-spark")


def _committed_tasks(out: Path) -> list[Path]:
    """Parquet files of tasks that Spark has committed (FileOutputCommitter: ``_temporary/0/task_*``)
    while the job as a whole is still running."""
    if not (out / "_staging").exists():
        return []
    return [p for p in (out / "_staging").rglob("*.parquet") if any(x.startswith("task_") for x in p.parts)]


def test_driver_killed_midway_leaves_previous_output_intact_and_rerun_is_clean(
        spark: Any, churn_bundle: Path, holdout: pd.DataFrame, tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "out"
    small = tmp_path / "small"
    small.mkdir()
    holdout.iloc[:100].to_parquet(small / "part-0.parquet", index=False)
    committed = run_job(JobConfig(model=str(churn_bundle), input=str(small), output=str(out), run_id="nightly",
                                  master="local[2]", progress=False, id_column="customer_id"), spark=spark)
    before = {p: p.read_bytes() for p in visible_files(out)}
    assert committed["counts"]["input"] == 100 and before

    big = tmp_path / "big"  # 24 files, one partition each, small Arrow batches: many tasks to interrupt
    big.mkdir()
    frame = pd.concat([holdout] * 2, ignore_index=True)
    frame["customer_id"] = [f"k{i:06d}" for i in range(len(frame))]
    for i in range(24):
        frame.iloc[i::24].to_parquet(big / f"part-{i:02d}.parquet", index=False)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    cmd = [sys.executable, "batch/score.py", "--model", str(churn_bundle), "--input", str(big), "--output", str(out),
           "--run-id", "nightly", "--id-column", "customer_id", "--master", "local[2]", "--no-progress",
           "--no-drift", "--batch-rows", "200", "--conf", "spark.sql.files.maxPartitionBytes=65536"]
    proc = subprocess.Popen(cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _committed_tasks(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the job finished before it could be killed"
        assert _committed_tasks(out), "no task committed its output in time"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and Python workers (our own process group)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout is not None and proc.stdout.read() == b""  # no summary: it never committed
    # A reader sees exactly the previously committed run, byte for byte: nothing partial.
    assert {p: p.read_bytes() for p in visible_files(out)} == before
    assert len(pd.read_parquet(out)) == 100

    rerun = run_job(JobConfig(model=str(churn_bundle), input=str(big), output=str(out), run_id="nightly",
                              master="local[2]", progress=False, id_column="customer_id", drift=False), spark=spark)
    assert rerun["counts"] == {**rerun["counts"], "input": len(frame), "scored": len(frame), "quarantined": 0}
    result = pd.read_parquet(out)
    assert len(result) == len(frame) and result["row_id"].is_unique
    assert set(result["row_id"]) == set(frame["customer_id"])
    assert not list((out / "_staging").glob("nightly-*"))  # the killed attempt's staging was cleaned up
