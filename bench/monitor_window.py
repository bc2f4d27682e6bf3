"""The monitor on a large window: 10M inference records on a local S3, read by the monitor.

N records (default 10M; ``--quick`` 1M) of the churn model are written to a moto server's S3 in
the mlship layout (``model=/version=/date=/hour=``), gzip'd JSON Lines objects of
``--object-rows`` records each, as Firehose would deliver them. Generating them is vectorised:
a pool of base rows is predicted once and its ``inputs``/``outputs`` JSON encoded once; each record
is that text with its own request id and time. Then, each in its own process (wall time and peak
RSS from ``os.wait4``):

* the in-process path: ``run_monitor`` lists the window, reads the objects with ``read_workers``
  threads and streams them through the drift accumulator, the group counts and the attribution
  sample, then publishes (reports to S3, metrics and events off);
* the Spark path (``--spark``): ``mlship.batch.monitor_window.run_window_job`` on ``local[2]``,
  each partition reading its keys with boto3, the partials merged on the driver and finished by
  the same code.

Both runs' drift statistics are compared (they must agree).

Run: ``.venv/bin/python -m bench.monitor_window [--quick] [--spark]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_results

MODEL, VERSION = "churn", "1"
BUCKET = "bench-monitor-window"
BASE_ROWS = 50_000
NOW = datetime(2026, 12, 1, 11, 0, tzinfo=UTC)  # the run's time: the window is the hour 10:00-11:00


def prepare_bundle(folder: Path) -> Path:
    """The churn pipeline (HistGradientBoosting) exported with gender as the sensitive attribute."""
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn
    from mlship.local.train import split, train_pipeline

    train, holdout = split(make_churn(12_000, seed=3))
    pipe = train_pipeline(train, "hgb")
    return export_bundle(pipe, holdout, "churned", folder / "churn", name=MODEL, version=VERSION,
                         sensitive="gender", tarball=False)


def base_bodies(bundle: Path, n: int = BASE_ROWS) -> list[str]:
    """``"inputs":{...},"outputs":{...}`` of ``n`` shifted churn rows, predicted once, JSON once per row."""
    from mlship.local.datasets import make_churn
    from mlship.runtime.jsonutil import jsonable
    from mlship.runtime.predictor import Predictor

    predictor = Predictor.load(str(bundle))
    frame = make_churn(n, seed=11, shift=0.3)[predictor.schema.names]
    inputs = jsonable(frame.to_dict("records"))
    outputs = predictor.predict(frame.to_dict("records")).records()
    head = f'"source":"lambda","model":{{"name":"{MODEL}","version":"{VERSION}"}}'
    return [f'{head},"inputs":{json.dumps(i, separators=(",", ":"))},"outputs":'
            f'{json.dumps(jsonable(o), separators=(",", ":"))}}}' for i, o in zip(inputs, outputs, strict=True)]


def object_body(bodies: list[str], first: int, rows: int, total: int) -> bytes:
    """Records ``first .. first + rows`` of ``total`` as gzip'd JSON Lines: a base row's text with its
    own request id and a time spread evenly over the window's hour (one string format per record;
    the times formatted by numpy in one call)."""
    index = np.arange(first, first + rows)
    micros = (index * (3_600_000_000 // max(1, total))).astype("timedelta64[us]")
    stamps = np.datetime_as_string(np.datetime64(NOW.replace(tzinfo=None) - timedelta(hours=1), "us") + micros,
                                   unit="us").tolist()
    run = uuid.uuid4().hex[:16]
    n_base = len(bodies)
    lines = [f'{{"request_id":"{run}-{i}","row":0,"time":"{t}Z",{bodies[i % n_base]}'
             for i, t in zip(index.tolist(), stamps, strict=True)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)


def _prefix() -> str:
    hour = NOW - timedelta(hours=1)
    return f"inference-records/model={MODEL}/version={VERSION}/date={hour:%Y-%m-%d}/hour={hour:%H}/"


_BODIES: list[str] = []


def _init_writer(bodies: list[str]) -> None:
    from mlship.aws.clients import clear_cache

    clear_cache()  # clients made before the fork are not the child's to use
    _BODIES[:] = bodies


def _write_object(job: tuple[int, int, int]) -> int:
    from mlship.aws.clients import client

    k, first, rows = job
    total = int(os.environ["BENCH_TOTAL_ROWS"])
    body = object_body(_BODIES, first, rows, total)
    client("s3").put_object(Bucket=BUCKET, Key=f"{_prefix()}{k:05d}.jsonl.gz", Body=body)
    return len(body)


def write_window(bodies: list[str], n: int, object_rows: int) -> dict[str, Any]:
    """The window's objects on the local S3, generated and uploaded by two processes."""
    from mlship.aws.clients import client

    client("s3").create_bucket(Bucket=BUCKET)
    jobs = [(k, first, min(object_rows, n - first)) for k, first in enumerate(range(0, n, object_rows))]
    os.environ["BENCH_TOTAL_ROWS"] = str(n)
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(2, initializer=_init_writer, initargs=(bodies,)) as pool:
        sizes = pool.map(_write_object, jobs, chunksize=1)
    return {"objects": len(jobs), "stored_bytes": sum(sizes), "seconds": time.perf_counter() - t0}


IN_PROCESS = """
import json, sys, time
from datetime import datetime
from mlship.monitoring import MonitorConfig, run_monitor
config = MonitorConfig(**json.loads(sys.argv[1]))
t0 = time.perf_counter()
result = run_monitor(config, now=datetime.fromisoformat(sys.argv[2]), progress=lambda m: None)
print(json.dumps({"seconds": time.perf_counter() - t0, "drift": result.report["drift"],
                  "input": result.report["input"]}))
"""

SPARK = """
import json, sys, time
from datetime import datetime
from mlship.batch.monitor_window import run_window_job
from mlship.batch.spark import get_session
from mlship.monitoring import MonitorConfig
spark = get_session("local[2]", app_name="bench-monitor-window")
config = MonitorConfig(**json.loads(sys.argv[1]))
t0 = time.perf_counter()
result = run_window_job(config, datetime.fromisoformat(sys.argv[2]), spark=spark, progress=lambda m: None)
print(json.dumps({"seconds": time.perf_counter() - t0, "drift": result.report["drift"],
                  "input": result.report["input"]}))
spark.stop()
"""


def _largest_difference(a: Any, b: Any) -> float:
    """The largest |difference| between two reports' numbers (0.0 when every number is equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max([_largest_difference(a[k], b.get(k)) for k in a] or [0.0])
    if isinstance(a, list) and isinstance(b, list):
        return max([_largest_difference(x, y) for x, y in zip(a, b, strict=False)] or [0.0])
    if isinstance(a, float) and isinstance(b, float):
        return 0.0 if a == b or (a != a and b != b) else abs(a - b)
    return 0.0 if a == b else float("inf")


def _run(script: str, config: dict[str, Any], folder: Path) -> dict[str, Any]:
    from bench.drift_cli import _measured

    run = _measured([sys.executable, "-c", script, json.dumps(config), NOW.isoformat()], folder)
    out = json.loads(run["stdout"].strip().splitlines()[-1])
    rows = int(out["drift"]["rows"])
    return {"wall_s": round(run["wall_s"], 2), "run_s": round(out["seconds"], 2), "peak_mb": round(run["peak_mb"]),
            "rows": rows, "rows_per_s": round(rows / out["seconds"]), "drift": out["drift"], "input": out["input"]}


def _row(label: str, n: int, ours: dict[str, Any], theirs: dict[str, Any], baseline_name: str,
         unit: str) -> dict[str, Any]:
    key = "rows_per_s" if unit.startswith("rows") else "peak_mb"
    return {"benchmark": f"monitor, {n / 1e6:g}M-record window: {label}", "mlship": ours[key],
            "baseline": theirs[key], "baseline_name": baseline_name,
            "ratio": round(ours[key] / theirs[key], 2) if theirs[key] else None, "unit": unit}


def main(quick: bool = False, spark: bool = False, object_rows: int = 100_000, records: int | None = None) -> None:
    from mlship.local.environment import free_port, start_moto_server

    n = records or (1_000_000 if quick else 10_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        moto = start_moto_server(free_port())
        os.environ["AWS_ENDPOINT_URL"] = moto["url"]
        try:
            bundle = prepare_bundle(folder)
            written = write_window(base_bodies(bundle), n, object_rows)
            print(f"wrote {n:,} records in {written['objects']} objects, {written['stored_bytes'] / 1e6:,.0f} MB "
                  f"stored, in {written['seconds']:.0f} s", file=sys.stderr)
            config = {"model_uri": str(bundle), "records_bucket": BUCKET, "reports_bucket": BUCKET,
                      "metrics_mode": "none", "emit_events": False, "spark_above_bytes": None}
            runs = {"in_process": _run(IN_PROCESS, config, folder),
                    "sequential": _run(IN_PROCESS, {**config, "read_workers": 1}, folder)}
            for name in runs:
                print(f"{name}: {runs[name]['rows_per_s']:,} rows/s, {runs[name]['peak_mb']} MB", file=sys.stderr)
            if spark:
                runs["spark_local2"] = _run(SPARK, config, folder)
                print(f"spark local[2]: {runs['spark_local2']['rows_per_s']:,} rows/s", file=sys.stderr)
        finally:
            os.killpg(moto["pid"], signal.SIGTERM)
    _results(n, object_rows, written, runs)


def _results(n: int, object_rows: int, written: dict[str, Any], runs: dict[str, dict[str, Any]]) -> None:
    here, one = runs["in_process"], runs["sequential"]
    sequential = "the same run reading one object at a time (read_workers=1)"
    table = [_row("in process, 8 read threads", n, here, one, sequential, "rows/s (higher is better)"),
             _row("in process, 8 read threads, peak RSS", n, here, one, sequential, "MB (lower is better)")]
    raw: dict[str, Any] = {"records": n, "object_rows": object_rows, "written": written,
                           "runs": {k: {x: y for x, y in v.items() if x != "drift"} for k, v in runs.items()},
                           "drift_summary": {"rows": here["drift"]["rows"],
                                             "drifted_features": here["drift"]["drifted_features"]}}
    if "spark_local2" in runs:
        there = runs["spark_local2"]
        table.append(_row("Spark path, local[2]", n, there, here, "the in-process path (8 read threads)",
                          "rows/s (higher is better)"))
        raw["spark_vs_in_process_largest_difference"] = _largest_difference(there["drift"], here["drift"])
    path = write_results("monitor_window", table, raw)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M records instead of 10M")
    parser.add_argument("--spark", action="store_true", help="also run the Spark path (local[2])")
    parser.add_argument("--object-rows", type=int, default=100_000, help="records per stored object")
    parser.add_argument("--records", type=int, default=None, help="records in the window (a smoke run)")
    args = parser.parse_args()
    main(quick=args.quick, spark=args.spark, object_rows=args.object_rows, records=args.records)
