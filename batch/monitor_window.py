"""The monitor's Spark job: a window too large for one process, read in Spark partitions.

``spark-submit batch/monitor_window.py --config JSON --now ISO`` is what the monitor submits to
EMR Serverless above ``SPARK_ABOVE_BYTES`` (``mlship.monitoring.submit``; ``mlship batch
monitor-artifacts`` uploads this file with the code and dependencies). It does what
``run_monitor`` does in process, with the reading spread over Spark tasks:

1. list the window's objects once on the driver (``mlship.monitoring.run.plan_window``);
2. split the listing into contiguous slices, one per partition; each task fetches its keys with
   boto3 and streams them into a ``WindowPartial`` (drift sketches, group counts, the attribution
   sample, read counters), returned with its partition id;
3. merge the partials on the driver in partition order (``mlship.batch.accumulators``): Spark
   takes one result per partition however often a task ran, and a rerun partition reads the
   same keys, so retries neither double count nor change the result;
4. join the late labels the same way (labels broadcast, each partition keeps its labelled rows);
5. ``mlship.monitoring.run.finish``: the same drift result, metrics, events and reports as the
   in-process path.

Metrics go through PutMetricData (``metrics_mode`` ``emf`` becomes ``api``): nothing extracts EMF
lines from a Spark driver's stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

# stored bytes per partition: a Lambda-sized share of the window per task (one object at least)
PARTITION_BYTES = 256 << 20
# what a Python worker needs to reach the driver's S3: a local endpoint override is set on the
# driver's process (tests, moto), and Spark's workers may have started before it was
WORKER_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")


def run_window_job(config: Any, now: datetime, *, spark: Any = None, partitions: int | None = None,
                   progress: Callable[[str], None] | None = None) -> Any:
    """One monitor run with the window read by Spark; returns the ``MonitorResult`` (published)."""
    from mlship.monitoring import run

    say = progress or (lambda msg: print(msg, file=sys.stderr))
    if config.metrics_mode == "emf":
        config = replace(config, metrics_mode="api")
    target = run.load_target(config)
    plan = run.plan_window(config, target, now, say)
    session = spark or _session()
    spec = run.scan_spec(config, target, plan.window)
    partial_state = window_partial(session, config.records_bucket, spec, plan.objects,
                                   read_workers=config.read_workers, partitions=partitions)
    say(f"{partial_state.rows:,} rows read by Spark from {len(plan.objects):,} object(s)")
    joiner = partial(_spark_join, session, config.records_bucket, config.read_workers, partitions)
    return run.finish(config, target, plan, partial_state, now, say=say, join=joiner)


def _session() -> Any:
    from mlship.batch.settings import BatchSettings
    from mlship.batch.spark import get_session

    return get_session(BatchSettings.from_env().master(None), app_name="mlship-monitor")


def window_partial(spark: Any, bucket: str, spec: Any, objects: list[Any], *, read_workers: int = 8,
                   partitions: int | None = None) -> Any:
    """The merged ``WindowPartial`` of the listed objects, each partition scanning a slice of them."""
    from mlship.batch.accumulators import merged_partials

    if not objects:
        return spec.new_partial()
    body = partial(_scan_partition, bucket=bucket, spec=spec, workers=read_workers, env=_worker_env())
    per_partition = _collect(spark, objects, body, partitions)
    return merged_partials(per_partition) or spec.new_partial()


def _collect(spark: Any, objects: list[Any], body: Any, partitions: int | None) -> dict[int, Any]:
    """``{partition id: body's result}`` over contiguous slices of the listing (its order kept)."""
    sc = spark.sparkContext
    n = partitions or partition_count(objects, sc.defaultParallelism)
    rdd = sc.parallelize(objects, max(1, min(n, len(objects))))
    return dict(rdd.mapPartitionsWithIndex(body).collect())


def partition_count(objects: list[Any], parallelism: int) -> int:
    """At least one partition per core, more when the window is over ``PARTITION_BYTES`` per core."""
    stored = sum(o.size for o in objects)
    return max(1, min(len(objects), max(parallelism, math.ceil(stored / PARTITION_BYTES))))


def _worker_env() -> dict[str, str]:
    return {name: os.environ[name] for name in WORKER_ENV if os.environ.get(name)}


def _use_env(env: dict[str, str]) -> None:
    """Point a worker at the driver's endpoint (no-op on EMR, where there is none)."""
    for name, value in env.items():
        os.environ[name] = value


def _scan_partition(index: int, objects: Iterator[Any], *, bucket: str, spec: Any, workers: int,
                    env: dict[str, str]) -> Iterator[tuple[int, Any]]:
    """One task: this partition's objects read and scanned into a ``WindowPartial``."""
    from mlship.monitoring.window import iter_object_records

    _use_env(env)
    state = spec.new_partial()
    records = iter_object_records(bucket, list(objects), spec.window, spec.features, state.stats, workers=workers)
    state.scan(records, spec)
    yield index, state


def _spark_join(spark: Any, bucket: str, read_workers: int, partitions: int | None,
                labels: dict[tuple[str, int], Any], plan: Any, target: Any) -> Any:
    """The labelled rows of the label window, joined in Spark partitions (labels broadcast)."""
    from mlship.monitoring.performance import LabelledWindow

    out = LabelledWindow()
    if not plan.objects:
        return out
    shared = spark.sparkContext.broadcast(labels)
    body = partial(_join_partition, bucket=bucket, window=plan.window, features=target.features,
                   sensitive=target.sensitive, labels=shared, workers=read_workers, env=_worker_env())
    try:
        per_partition = _collect(spark, plan.objects, body, partitions)
    finally:
        shared.unpersist()
    for index in sorted(per_partition):
        out.extend(per_partition[index])
    return out


def _join_partition(index: int, objects: Iterator[Any], *, bucket: str, window: Any, features: list[str],
                    sensitive: str | None, labels: Any, workers: int,
                    env: dict[str, str]) -> Iterator[tuple[int, Any]]:
    """One task: this partition's labelled records."""
    from mlship.monitoring.performance import join
    from mlship.monitoring.window import iter_object_records

    _use_env(env)
    records = iter_object_records(bucket, list(objects), window, features, workers=workers)
    yield index, join(records, labels.value, sensitive)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch/monitor_window.py",
                                     description="One monitor run over a large window, read by Spark.")
    parser.add_argument("--config", required=True, help="the run's MonitorConfig as a JSON object")
    parser.add_argument("--now", required=True, help="the run's time (ISO 8601): the window ends there")
    parser.add_argument("--partitions", type=int, default=None, help="Spark partitions of the listing")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment of the submitting monitor (MLSHIP_REGISTRY_BUCKET, MLSHIP_PUBLIC_KEY)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if __package__ in (None, ""):  # run as a script: make the repo (or the code zip) importable
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mlship.batch.monitor_window import run_window_job

    from mlship.errors import MlshipError
    from mlship.monitoring.config import MonitorConfig
    from mlship.monitoring.window import parse_time

    now = parse_time(args.now)
    if now is None:
        print(f"error: --now {args.now!r} is not an ISO 8601 time", file=sys.stderr)
        return 1
    for pair in args.env:  # before anything opens the bundle: mlship:// URIs and signatures read them
        name, _, value = pair.partition("=")
        os.environ[name] = value
    try:
        result = run_window_job(MonitorConfig(**json.loads(args.config)), now, partitions=args.partitions)
    except MlshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.summary(), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
