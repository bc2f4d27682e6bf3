"""Registry and gate benchmarks: bootstrap confidence intervals (numpy metrics vs scikit-learn's),
and the cost of atomic alias moves and registry URI resolution against a local moto server.

    .venv/bin/python -m bench.registry [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import summary, time_calls, write_results


def _bootstrap_sklearn(y: np.ndarray, labels: np.ndarray, probs: np.ndarray, samples: np.ndarray) -> None:
    from sklearn import metrics as skm

    for idx in samples:
        yt, yl, yp = y[idx], labels[idx], probs[idx]
        skm.accuracy_score(yt, yl)
        skm.precision_score(yt, yl, zero_division=0)
        skm.recall_score(yt, yl, zero_division=0)
        skm.f1_score(yt, yl, zero_division=0)
        skm.roc_auc_score(yt, yp[:, 1])
        skm.average_precision_score(yt, yp[:, 1])
        skm.log_loss(yt, yp, labels=[0, 1])


def bench_bootstrap(rows: int, rounds: int, repeats: int) -> tuple[dict[str, Any], dict[str, Any]]:
    from mlship.evaluation.evaluate import bootstrap_metrics, bootstrap_samples

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.65, rows), 0, 1)
    probs = np.column_stack([1 - p1, p1])
    labels = (p1 > 0.5).astype(np.int64)
    samples = bootstrap_samples(rows, rounds, 0)
    ours = [_timed(lambda: bootstrap_metrics("classification", y, labels, probs, [0, 1], samples))
            for _ in range(repeats)]
    theirs = [_timed(lambda: _bootstrap_sklearn(y, labels, probs, samples)) for _ in range(repeats)]
    mine, base = summary(ours)["median"], summary(theirs)["median"]
    row = {"benchmark": f"bootstrap CIs of 7 metrics, {rounds} resamples x {rows} rows",
           "mlship": round(mine, 3), "baseline": round(base, 3),
           "baseline_name": "scikit-learn metrics per resample", "ratio": round(base / mine, 1),
           "unit": "s (lower is better)"}
    return row, {"bootstrap_mlship_s": summary(ours), "bootstrap_sklearn_s": summary(theirs)}


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_aliases(n: int, bundle: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    from mlship.aws import clients as aws
    from mlship.local.environment import free_port
    from mlship.registry.store import Registry

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="localhost", port=port, verbose=False)
    server.start()
    old = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({"AWS_ENDPOINT_URL": f"http://localhost:{port}", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing"})
    aws.clear_cache()
    try:
        s3 = aws.client("s3")
        bucket = f"bench-registry-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=bucket)
        reg = Registry(bucket, sagemaker=False)
        record, _ = reg.register(bundle)
        version = record.version
        reg.set_alias(record.name, "champion", version)
        body = reg.get_alias(record.name, "champion").body()
        moves = time_calls(lambda: reg.set_alias(record.name, "champion", version, reason="bench"), n, warmup=5)
        plain = time_calls(lambda: s3.put_object(Bucket=bucket, Key="plain/champion.json", Body=body), n, warmup=5)
        uri = f"mlship://{record.name}@champion?bucket={bucket}"
        resolves = time_calls(lambda: reg.resolve(uri), n, warmup=5)
        heads = time_calls(lambda: s3.head_object(Bucket=bucket, Key=f"models/{record.name}/{version}/bundle.tar.gz"),
                           n, warmup=5)
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        aws.clear_cache()
    m, b = summary(moves)["median"] * 1000, summary(plain)["median"] * 1000
    r, h = summary(resolves)["median"] * 1000, summary(heads)["median"] * 1000
    rows = [{"benchmark": "alias move: CAS pointer + audit entry (local moto server)", "mlship": round(m, 1),
             "baseline": round(b, 1), "baseline_name": "one unconditional PutObject (no audit, races lose updates)",
             "ratio": round(b / m, 2), "unit": "ms per move (lower is better; 5 requests vs 1)"},
            {"benchmark": "resolve mlship://NAME@ALIAS to the bundle URI (local moto server)", "mlship": round(r, 1),
             "baseline": round(h, 1), "baseline_name": "HeadObject of a fixed s3:// URI",
             "ratio": round(h / r, 2), "unit": "ms (lower is better; 2 requests vs 1)"}]
    return rows, {"alias_move_s": summary(moves), "plain_put_s": summary(plain), "resolve_s": summary(resolves),
                  "head_s": summary(heads)}


def _bundle(workdir: Path) -> Path:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn
    from mlship.local.train import split, train_pipeline

    train, holdout = split(make_churn(3000, seed=1))
    return export_bundle(train_pipeline(train, "logreg"), holdout, "churned", workdir / "bundle", name="bench",
                         version="1")


def main(quick: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="mlship-bench-registry-"))
    os.environ.setdefault("MLSHIP_CACHE_DIR", str(work / "cache"))
    try:
        rows, raw = [], {}
        row, data = bench_bootstrap(3000, 200, 3 if quick else 7)
        rows.append(row)
        raw.update(data)
        alias_rows, data = bench_aliases(50 if quick else 200, _bundle(work))
        rows += alias_rows
        raw.update(data)
        raw["quick"] = quick
        path = write_results("registry", rows, raw)
        for r in rows:
            print(f"{r['benchmark']}: mlship {r['mlship']} vs {r['baseline_name']} {r['baseline']} {r['unit']}")
        print(f"results: {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
