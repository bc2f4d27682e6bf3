"""A real Spark standalone cluster on loopback, started from the installed pyspark (``spark-class``).

A master and N one-core workers, each in its own process group (so that killing a worker takes
its executor and Python workers with it). Used by the cluster test and ``python -m bench batch``.

Example::

    with standalone_cluster(Path("/tmp/spark"), workers=2) as cluster:
        run_job(JobConfig(..., master=cluster.master_url))
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlship.errors import MlshipError
from mlship.local.environment import free_port


class ClusterError(MlshipError):
    """The standalone cluster did not come up (the master's log tail is in the message)."""


@dataclass
class Cluster:
    """A running cluster: its master URL, the master's web UI, the worker processes, their env."""

    master_url: str
    ui: str
    workers: list[subprocess.Popen[bytes]]
    env: dict[str, str]


def spark_class() -> Path:
    """The installed pyspark's ``spark-class`` launcher (``spark-submit`` sits next to it)."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def alive_workers(ui: str) -> int:
    """How many workers the master reports alive (0 while it is not answering)."""
    try:
        with urllib.request.urlopen(f"{ui}/json/", timeout=5) as answer:
            return int(json.loads(answer.read()).get("aliveworkers", 0))
    except OSError:
        return 0


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen([str(spark_class()), *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


@contextmanager
def standalone_cluster(home: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g",
                       timeout_s: float = 120) -> Iterator[Cluster]:
    """Start a master and ``workers`` workers under ``home``; SIGKILL every process on exit."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_MASTER_HOST": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, "SPARK_LOG_DIR": str(home),
           "SPARK_WORKER_DIR": str(home / "work")}
    port, ui_port = free_port(), free_port()
    procs = [_start(["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                     "--webui-port", str(ui_port)], env, home / "master.log")]
    ui = f"http://127.0.0.1:{ui_port}"
    try:
        for i in range(workers):
            procs.append(_start(["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores",
                                 str(cores), "--memory", memory, "--webui-port", str(free_port()), "--work-dir",
                                 str(home / f"work-{i}"), f"spark://127.0.0.1:{port}"], env,
                                home / f"worker-{i}.log"))
        deadline = time.monotonic() + timeout_s
        while alive_workers(ui) < workers:
            if time.monotonic() > deadline:
                raise ClusterError(f"{workers} workers did not register within {timeout_s:.0f} s: "
                                   + (home / "master.log").read_text()[-2000:])
            time.sleep(0.5)
        yield Cluster(f"spark://127.0.0.1:{port}", ui, procs[1:], env)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
