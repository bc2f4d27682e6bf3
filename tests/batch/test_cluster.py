"""Batch scoring on a real Spark standalone cluster: a master and two 1-core workers started from the
installed pyspark (``spark-class``), loopback only.

A clean run through ``spark-submit batch/score.py``, then ``mlship batch run --master spark://…``
with one worker's JVM (its executor and Python workers with it: the worker's own process group)
SIGKILLed once tasks have committed: the job completes on the survivor, input = scored +
quarantined exactly, no row is written twice, and the drift statistics equal the clean run's
(the accumulators are keyed by partition, ``mlship.batch.accumulators``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlship.local.spark_cluster import Cluster, spark_class, standalone_cluster

pytestmark = [pytest.mark.xdist_group("spark-cluster"), pytest.mark.timeout(900),
              pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed: Spark needs it")]
ROWS, BAD, FILES = 48_000, 240, 16


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster"), workers=2) as running:
        yield running


@pytest.fixture(scope="module")
def batch_input(tmp_path_factory: pytest.TempPathFactory, holdout: pd.DataFrame) -> tuple[Path, set[str]]:
    """ROWS rows in FILES files (one task each), BAD of them with a null tenure (quarantined)."""
    folder = tmp_path_factory.mktemp("cluster-input")
    reps = -(-ROWS // len(holdout))
    frame = pd.concat([holdout] * reps, ignore_index=True).iloc[:ROWS].drop(columns=["churned"])
    frame["customer_id"] = [f"k{i:07d}" for i in range(len(frame))]
    bad = np.random.default_rng(7).choice(len(frame), BAD, replace=False)
    frame.loc[bad, "tenure_months"] = np.nan
    for i in range(FILES):
        frame.iloc[i::FILES].to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder, set(frame["customer_id"])


def _committed_tasks(out: Path) -> list[Path]:
    """Parquet files of tasks Spark has committed while the job is still running."""
    staging = out / "_staging"
    return [p for p in staging.rglob("*.parquet") if any(x.startswith("task_") for x in p.parts)] \
        if staging.exists() else []


ARGS = ["--run-id", "nightly", "--id-column", "customer_id", "--batch-rows", "1000"]
CONF = ["spark.sql.files.maxPartitionBytes=65536", "spark.task.maxFailures=4"]


def test_spark_submit_then_a_worker_killed_mid_run(cluster: Cluster, churn_bundle: Path, repo_root: Path,
                                                   batch_input: tuple[Path, set[str]], tmp_path: Path) -> None:
    folder, input_ids = batch_input
    clean_out, clean_summary = tmp_path / "clean", tmp_path / "clean.json"
    submit = [str(spark_class().with_name("spark-submit")), "--master", cluster.master_url, "batch/score.py",
              "--model", str(churn_bundle), "--input", str(folder), "--output", str(clean_out), *ARGS,
              "--no-progress", "--summary", str(clean_summary), *(a for c in CONF for a in ("--conf", c))]
    done = subprocess.run(submit, cwd=repo_root, env=cluster.env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    clean = json.loads(clean_summary.read_text())
    _check_output(clean, clean_out, input_ids)

    killed_out, killed_summary = tmp_path / "killed", tmp_path / "killed.json"
    events = tmp_path / "events"
    events.mkdir()
    conf = [*CONF, "spark.eventLog.enabled=true", f"spark.eventLog.dir=file://{events}",
            "spark.eventLog.compress=false", "spark.eventLog.rolling.enabled=false"]
    run = [sys.executable, "-m", "mlship", "batch", "run", "--model", str(churn_bundle), "--input", str(folder),
           "--output", str(killed_out), "--master", cluster.master_url, *ARGS, "--no-progress",
           "--summary", str(killed_summary), *(a for c in conf for a in ("--conf", c))]
    proc = subprocess.Popen(run, cwd=repo_root, env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while len(_committed_tasks(killed_out)) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before a worker could be killed"
        os.killpg(cluster.workers[0].pid, signal.SIGKILL)  # the worker JVM, its executor and Python workers
        _, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert _tasks_lost_with_the_executor(events) > 0  # the kill really hit running tasks, which ran again
    assert cluster.workers[0].wait(timeout=30) == -signal.SIGKILL
    killed = json.loads(killed_summary.read_text())
    _check_output(killed, killed_out, input_ids)
    assert killed["counts"] == clean["counts"]
    assert killed["drift"]["rows"] == clean["drift"]["rows"] == len(input_ids) - BAD
    assert killed["drift"] == clean["drift"]  # exact: per-partition partials, merged in partition order
    assert killed["spark"]["input_partitions"] == clean["spark"]["input_partitions"] >= FILES // 2


def _tasks_lost_with_the_executor(events: Path) -> int:
    """Tasks that ended with ``ExecutorLostFailure`` in the run's Spark event log."""
    lost = 0
    for log in (p for p in events.rglob("*") if p.is_file()):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event.get("Event") == "SparkListenerTaskEnd":
                lost += event.get("Task End Reason", {}).get("Reason") == "ExecutorLostFailure"
    return lost


def _check_output(summary: dict[str, Any], out: Path, input_ids: set[str]) -> None:
    """input = scored + quarantined, exactly the input's rows, none twice, the bad ones quarantined."""
    counts = summary["counts"]
    assert counts["input"] == len(input_ids) == counts["scored"] + counts["quarantined"]
    assert counts["quarantined"] == BAD and counts["reconciled"] is True
    scored = pd.read_parquet(out / "run_id=nightly")  # readers skip _quarantine and _staging
    quarantined = pd.read_parquet(Path(summary["output"]["quarantine_path"]))
    assert (len(scored), len(quarantined)) == (len(input_ids) - BAD, BAD)
    ids = pd.concat([scored["row_id"], quarantined["row_id"]])
    assert ids.is_unique and set(ids) == input_ids  # no row twice, none lost
    assert set(quarantined["error_kinds"]) == {"null_not_allowed"}
    assert not list((out / "_staging").glob("nightly-*"))
