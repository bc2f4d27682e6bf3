"""Batch benchmark: rows/s of the mlship Spark job on 2M rows at local[2], against raw onnxruntime in
one process and ``mlflow.pyfunc.spark_udf`` on the scikit-learn model, on the same data, same run.

Models, each exported to a bundle, on 20 float features:
* RandomForestClassifier (100 unpruned trees): the worst case for onnxruntime's tree operator at
  one thread per worker (see docs/batch.md, "Where the time goes");
* HistGradientBoostingClassifier (80 iterations): mlship's default model family.
Data: 2,000,000 rows in 8 Parquet files (an id column + 20 features), shared by both models.

* mlship: ``batch.job.run_job`` end to end (read, validate every row, score through the shared
  Predictor in an ``arrow_udf`` with 1 onnxruntime thread per worker, quarantine, write Parquet
  partitioned by status, reconcile counts by reading the output back, drift against the
  baseline, atomic commit), in the configuration ``mlship batch run`` uses.
* raw onnxruntime: one process, the bundle's model.onnx in a plain InferenceSession with 2 threads,
  Parquet read with pyarrow, 65,536-row chunks; no validation, nothing written.
* mlflow spark_udf: ``mlflow.pyfunc.spark_udf`` on the scikit-learn model (saved with
  cloudpickle: the default skops format refuses a RandomForest), same Spark session, same
  read and Parquet write (labels only: pyfunc's predict).
* Spark I/O floor: the same read and write with no model.
* Arrow UDF floor: the same read and write through an ``arrow_udf`` over the 20 features that
  returns zeros (no model): what shipping the features to Python and back costs by itself.
* Cluster: ``run_job`` on a real standalone cluster (master + 2 one-core workers started from the
  installed pyspark, loopback; :mod:`mlship.local.spark_cluster`), after the local rounds.

Run: ``.venv/bin/python -m bench.batch [--quick] [--models rf,hgb] [--no-cluster]`` (quick: 1 round
instead of 3; still 2M rows).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import write_results

N_ROWS = int(os.environ.get("MLSHIP_BENCH_BATCH_ROWS", 2_000_000))  # override only to smoke-test the script
N_FILES = 8
N_FEATURES = 20


def _log(msg: str) -> None:
    print(f"[bench.batch {time.strftime('%H:%M:%S')}] {msg}", flush=True)


MODELS = {"rf": "RF(100)", "hgb": "HGB(80)"}


def _prepare_data(tmp: Path) -> tuple[Any, Path, list[str]]:
    """Training data for the models and the 2M-row Parquet input every variant scores."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlship.local.datasets import make_numeric

    train = make_numeric(20_000, n_features=N_FEATURES, seed=4)
    features = [c for c in train.columns if c != "label"]
    data = tmp / "input"
    data.mkdir()
    rng = np.random.default_rng(11)
    per_file = N_ROWS // N_FILES
    for i in range(N_FILES):
        x = rng.normal(size=(per_file, N_FEATURES))
        cols = {"id": pa.array(np.arange(i * per_file, (i + 1) * per_file, dtype=np.int64))}
        cols.update({name: pa.array(x[:, j]) for j, name in enumerate(features)})
        pq.write_table(pa.table(cols), data / f"part-{i}.parquet")
    return train, data, features


def _prepare_model(kind: str, train: Any, features: list[str], tmp: Path) -> tuple[Path, Path]:
    """Fit ``kind``, export it as an mlship bundle and save it as an MLflow model."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from mlship.evaluation.export import export_bundle
    from mlship.local.train import make_estimator

    estimator = make_estimator(kind)
    if kind == "rf":
        estimator.set_params(n_estimators=100)
    estimator.fit(train.iloc[:16_000][features], train.iloc[:16_000]["label"])
    bundle = export_bundle(estimator, train.iloc[16_000:].reset_index(drop=True), "label", tmp / kind, name=kind,
                           version="1", tarball=True)
    mlflow_model = tmp / f"mlflow-{kind}"
    sample = pd.DataFrame(np.zeros((5, N_FEATURES)), columns=features)
    mlflow.sklearn.save_model(estimator, str(mlflow_model), serialization_format="cloudpickle",
                              signature=infer_signature(sample, estimator.predict(sample)))
    return bundle, mlflow_model


def _raw_onnxruntime(bundle: Path, data: Path, features: list[str]) -> float:
    import numpy as np
    import onnxruntime as ort
    import pyarrow.parquet as pq

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    t0 = time.perf_counter()
    rows = 0
    for path in sorted(data.glob("*.parquet")):
        table = pq.read_table(path, columns=features)
        matrix = np.column_stack([table.column(f).to_numpy() for f in features]).astype(np.float32)
        for start in range(0, len(matrix), 65_536):
            session.run(None, {name: matrix[start:start + 65_536]})
        rows += len(matrix)
    return rows / (time.perf_counter() - t0)


def _rows_for(kind: str, med: dict[str, float]) -> list[dict[str, Any]]:
    """The README table rows of one model."""
    title = f"Spark local[2], {N_ROWS / 1e6:.0f}M rows x {N_FEATURES} features, {MODELS[kind]}"
    unit = "rows/s (higher is better)"
    mlship, score_write = med[f"{kind}:mlship"], med[f"{kind}:mlship_score_write"]
    return [
        {"benchmark": f"{title}: mlship job end to end vs mlflow spark_udf", "mlship": round(mlship),
         "baseline": round(med[f"{kind}:mlflow_spark_udf"]), "baseline_name": "mlflow.pyfunc.spark_udf (scikit-learn)",
         "ratio": round(mlship / med[f"{kind}:mlflow_spark_udf"], 2), "unit": unit},
        {"benchmark": f"{title}: mlship job end to end vs raw onnxruntime in one process",
         "mlship": round(mlship), "baseline": round(med[f"{kind}:raw_onnxruntime"]),
         "baseline_name": "raw onnxruntime, 1 process, 2 threads, no validation/write",
         "ratio": round(mlship / med[f"{kind}:raw_onnxruntime"], 2), "unit": unit},
        {"benchmark": f"{title}: mlship score+write stage vs Spark I/O with no model",
         "mlship": round(score_write), "baseline": round(med["spark_io_floor"]),
         "baseline_name": "Spark Parquet read + write, no model",
         "ratio": round(score_write / med["spark_io_floor"], 2), "unit": unit},
    ]


def _cluster_row(kind: str, med: dict[str, float]) -> dict[str, Any]:
    """The README row of the cluster run of one model, against the same job on ``local[2]``."""
    return {"benchmark": f"Spark standalone cluster (master + 2 one-core workers), {N_ROWS / 1e6:.0f}M rows x "
                         f"{N_FEATURES} features, {MODELS[kind]}: mlship job end to end vs local[2]",
            "mlship": round(med[f"{kind}:cluster"]), "baseline": round(med[f"{kind}:mlship"]),
            "baseline_name": "the same job, Spark local[2]",
            "ratio": round(med[f"{kind}:cluster"] / med[f"{kind}:mlship"], 2), "unit": "rows/s (higher is better)"}


def _arrow_udf_floor(spark: Any, data: Path, features: list[str], out: Path) -> float:
    """Rows/s of read -> an arrow_udf over the features returning zeros -> write (no model)."""
    from collections.abc import Iterator

    import numpy as np
    import pyarrow as pa
    from pyspark.sql.functions import ArrowUDFType, arrow_udf

    def zeros(batches: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
        for arrays in batches:
            yield pa.array(np.zeros(len(arrays[0])))

    with warnings.catch_warnings():  # the same declaration as the job's UDF (mlship.batch.job)
        warnings.filterwarnings("ignore", message=".*type hints for arrow UDF", category=UserWarning)
        udf = arrow_udf(zeros, "double", ArrowUDFType.SCALAR_ITER)
    t0 = time.perf_counter()
    spark.read.parquet(str(data)).withColumn("prediction", udf(*features)).write.mode("overwrite").parquet(str(out))
    return N_ROWS / (time.perf_counter() - t0)


def _run_mlship(bundle: Path, data: Path, out: Path, run_id: str, master: str, spark: Any) -> tuple[float, Any]:
    """(rows/s end to end, summary) of one ``run_job``; the output is removed afterwards."""
    from mlship.batch.job import JobConfig, run_job

    t0 = time.perf_counter()
    summary = run_job(JobConfig(model=str(bundle) + ".tar.gz", input=str(data), output=str(out), run_id=run_id,
                                master=master, progress=False), spark=spark)
    rate = N_ROWS / (time.perf_counter() - t0)
    assert summary["counts"]["scored"] == N_ROWS, summary["counts"]
    shutil.rmtree(out, ignore_errors=True)
    return rate, {k: summary[k] for k in ("counts", "durations_s", "throughput_rows_per_s", "spark")}


def _cluster_rounds(models: dict[str, tuple[Path, Any]], data: Path, tmp: Path, rounds: int,
                    results: dict[str, list[float]], summaries: dict[str, list[dict[str, Any]]]) -> None:
    """Every model's job on a 2-worker standalone cluster, ``rounds`` times (after the local rounds)."""
    from mlship.batch.spark import get_session

    from mlship.local.spark_cluster import standalone_cluster

    with standalone_cluster(tmp / "spark-cluster", workers=2) as cluster:
        spark = get_session(cluster.master_url, app_name="mlship-bench-batch-cluster")
        try:
            for r in range(rounds):
                for kind, (bundle, _) in models.items():
                    _log(f"cluster round {r + 1}/{rounds}, {MODELS[kind]}: mlship job on 2 workers")
                    rate, summary = _run_mlship(bundle, data, tmp / "out", f"cluster-{kind}-{r}",
                                                cluster.master_url, spark)
                    results.setdefault(f"{kind}:cluster", []).append(rate)
                    summaries.setdefault(f"{kind}:cluster", []).append(summary)
        finally:
            spark.stop()


def main(quick: bool = False, kinds: tuple[str, ...] = tuple(MODELS), cluster: bool = True) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    rounds = 1 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="mlship-bench-batch-"))
    os.environ.setdefault("MLSHIP_CACHE_DIR", str(tmp / "cache"))
    os.environ["MLFLOW_TRACKING_URI"] = (tmp / "mlruns").as_uri()
    results: dict[str, list[float]] = {"spark_io_floor": [], "arrow_udf_floor": []}
    summaries: dict[str, list[dict[str, Any]]] = {}
    try:
        _log(f"preparing {N_ROWS:,} rows x {N_FEATURES} features in {N_FILES} Parquet files")
        train, data, features = _prepare_data(tmp)
        import mlflow.pyfunc
        from mlship.batch.spark import get_session

        spark = get_session("local[2]", app_name="mlship-bench-batch")
        models: dict[str, tuple[Path, Any]] = {}
        for kind in kinds:
            _log(f"fitting and exporting {MODELS[kind]}")
            bundle, mlflow_model = _prepare_model(kind, train, features, tmp)
            udf = mlflow.pyfunc.spark_udf(spark, model_uri=str(mlflow_model), result_type="double",
                                          env_manager="local")
            models[kind] = (bundle, udf)
            for variant in ("mlship", "mlship_score_write", "raw_onnxruntime", "mlflow_spark_udf"):
                results[f"{kind}:{variant}"] = []
            summaries[kind] = []
        for r in range(rounds):  # interleaved so that machine noise hits every variant alike
            for kind, (bundle, udf) in models.items():
                _log(f"round {r + 1}/{rounds}, {MODELS[kind]}: mlship job")
                rate, summary = _run_mlship(bundle, data, tmp / "out", f"bench-{kind}-{r}", "local[2]", spark)
                results[f"{kind}:mlship"].append(rate)
                results[f"{kind}:mlship_score_write"].append(summary["throughput_rows_per_s"])
                summaries[kind].append(summary)

                _log(f"round {r + 1}/{rounds}, {MODELS[kind]}: raw onnxruntime (one process)")
                results[f"{kind}:raw_onnxruntime"].append(_raw_onnxruntime(bundle, data, features))

                _log(f"round {r + 1}/{rounds}, {MODELS[kind]}: mlflow spark_udf")
                t0 = time.perf_counter()
                frame = spark.read.parquet(str(data))
                frame.withColumn("prediction", udf(*features)).write.mode("overwrite").parquet(
                    str(tmp / "mlflow-out"))
                results[f"{kind}:mlflow_spark_udf"].append(N_ROWS / (time.perf_counter() - t0))

            _log(f"round {r + 1}/{rounds}: Spark read + write, no model")
            t0 = time.perf_counter()
            spark.read.parquet(str(data)).write.mode("overwrite").parquet(str(tmp / "io-out"))
            results["spark_io_floor"].append(N_ROWS / (time.perf_counter() - t0))
            _log(f"round {r + 1}/{rounds}: Spark read + zero arrow_udf + write, no model")
            results["arrow_udf_floor"].append(_arrow_udf_floor(spark, data, features, tmp / "io-out"))
            _log("rows/s so far: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()))
        spark.stop()
        if cluster:
            _cluster_rounds(models, data, tmp, rounds, results, summaries)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    table = [row for kind in kinds for row in _rows_for(kind, med)]
    table += [_cluster_row(kind, med) for kind in kinds if f"{kind}:cluster" in med]
    raw = {"rounds": rounds, "rows": N_ROWS, "models": {k: MODELS[k] for k in kinds}, "rows_per_s": results,
           "medians": med, "mlship_summaries": summaries}
    path = write_results("batch", table, raw)
    for row in table:
        print(f"{row['benchmark']:<95} mlship {row['mlship']:>9,} vs {row['baseline']:>9,} (x{row['ratio']})")
    print(f"results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round instead of 3 (still 2M rows)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {sorted(MODELS)}")
    parser.add_argument("--no-cluster", action="store_true", help="skip the standalone-cluster rounds")
    args = parser.parse_args()
    chosen = tuple(k.strip() for k in args.models.split(",") if k.strip())
    unknown = [k for k in chosen if k not in MODELS]
    if unknown or not chosen:
        parser.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    main(args.quick, chosen, cluster=not args.no_cluster)
