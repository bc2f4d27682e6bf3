"""Batch benchmark: rows/s of the mlship Spark job on 2M rows at local[2], against raw onnxruntime in
one process and ``mlflow.pyfunc.spark_udf`` on the scikit-learn model, on the same data, same run.

Model: RandomForestClassifier (100 trees) on 20 float features, exported to a bundle.
Data: 2,000,000 rows in 8 Parquet files (an id column + 20 features).

* mlship: ``batch.job.run_job`` end to end (read, validate every row, score through the shared
  Predictor in ``mapInPandas`` with 1 onnxruntime thread per worker, quarantine, write Parquet,
  reconcile counts by reading the output back, drift against the baseline, atomic commit).
* raw onnxruntime: one process, the bundle's model.onnx in a plain InferenceSession with 2 threads,
  Parquet read with pyarrow, 65,536-row chunks; no validation, nothing written.
* mlflow spark_udf: ``mlflow.pyfunc.spark_udf`` on the scikit-learn model (saved with
  cloudpickle: the default skops format refuses a RandomForest), same Spark session, same
  read and Parquet write (labels only: pyfunc's predict).
* Spark I/O floor: the same read and write with no model.

Run: ``.venv/bin/python -m bench.batch [--quick]`` (quick: 1 round instead of 3; still 2M rows).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_results

N_ROWS = int(os.environ.get("MLSHIP_BENCH_BATCH_ROWS", 2_000_000))  # override only to smoke-test the script
N_FILES = 8
N_FEATURES = 20


def _log(msg: str) -> None:
    print(f"[bench.batch {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _prepare(tmp: Path) -> tuple[Path, Path, Any, list[str]]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlship.datasets import make_numeric
    from mlship.export import export_bundle
    from mlship.train import make_estimator

    train = make_numeric(20_000, n_features=N_FEATURES, seed=4)
    features = [c for c in train.columns if c != "label"]
    rf = make_estimator("rf").set_params(n_estimators=100).fit(train.iloc[:16_000][features],
                                                              train.iloc[:16_000]["label"])
    bundle = export_bundle(rf, train.iloc[16_000:].reset_index(drop=True), "label", tmp / "rf", name="rf",
                           version="1", tarball=True)
    data = tmp / "input"
    data.mkdir()
    rng = np.random.default_rng(11)
    per_file = N_ROWS // N_FILES
    for i in range(N_FILES):
        x = rng.normal(size=(per_file, N_FEATURES))
        cols = {"id": pa.array(np.arange(i * per_file, (i + 1) * per_file, dtype=np.int64))}
        cols.update({name: pa.array(x[:, j]) for j, name in enumerate(features)})
        pq.write_table(pa.table(cols), data / f"part-{i}.parquet")
    return bundle, data, rf, features


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


def main(quick: bool = False) -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    rounds = 1 if quick else 3
    tmp = Path(tempfile.mkdtemp(prefix="mlship-bench-batch-"))
    os.environ.setdefault("MLSHIP_CACHE_DIR", str(tmp / "cache"))
    os.environ["MLFLOW_TRACKING_URI"] = (tmp / "mlruns").as_uri()
    try:
        _log(f"preparing {N_ROWS:,} rows x {N_FEATURES} features in {N_FILES} Parquet files + RF(100) bundle")
        bundle, data, rf, features = _prepare(tmp)
        import mlflow.pyfunc
        import mlflow.sklearn
        import numpy as np

        mlflow_model = tmp / "mlflow-rf"
        import pandas as pd
        from mlflow.models import infer_signature

        sample = pd.DataFrame(np.zeros((5, N_FEATURES)), columns=features)
        mlflow.sklearn.save_model(rf, str(mlflow_model), serialization_format="cloudpickle",
                                  signature=infer_signature(sample, rf.predict(sample)))

        from batch.job import JobConfig, run_job
        from batch.spark import get_session

        spark = get_session("local[2]", app_name="mlship-bench-batch")
        udf = mlflow.pyfunc.spark_udf(spark, model_uri=str(mlflow_model), result_type="double",
                                      env_manager="local")
        results: dict[str, list[float]] = {"mlship": [], "mlship_score_write": [], "raw_onnxruntime": [],
                                           "mlflow_spark_udf": [], "spark_io_floor": []}
        summaries = []
        for r in range(rounds):  # interleaved so that machine noise hits every variant alike
            _log(f"round {r + 1}/{rounds}: mlship job")
            t0 = time.perf_counter()
            summary = run_job(JobConfig(model=str(bundle) + ".tar.gz", input=str(data), output=str(tmp / "out"),
                                        run_id=f"bench-{r}", master="local[2]", progress=False), spark=spark)
            results["mlship"].append(N_ROWS / (time.perf_counter() - t0))
            results["mlship_score_write"].append(summary["throughput_rows_per_s"])
            assert summary["counts"]["scored"] == N_ROWS, summary["counts"]
            summaries.append({k: summary[k] for k in ("counts", "durations_s", "throughput_rows_per_s", "spark")})
            shutil.rmtree(tmp / "out", ignore_errors=True)

            _log(f"round {r + 1}/{rounds}: raw onnxruntime (one process)")
            results["raw_onnxruntime"].append(_raw_onnxruntime(bundle, data, features))

            _log(f"round {r + 1}/{rounds}: mlflow spark_udf")
            t0 = time.perf_counter()
            frame = spark.read.parquet(str(data))
            frame.withColumn("prediction", udf(*features)).write.mode("overwrite").parquet(str(tmp / "mlflow-out"))
            results["mlflow_spark_udf"].append(N_ROWS / (time.perf_counter() - t0))

            _log(f"round {r + 1}/{rounds}: Spark read + write, no model")
            t0 = time.perf_counter()
            spark.read.parquet(str(data)).write.mode("overwrite").parquet(str(tmp / "io-out"))
            results["spark_io_floor"].append(N_ROWS / (time.perf_counter() - t0))
            _log("rows/s so far: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in results.items()))
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    title = f"Spark local[2], {N_ROWS / 1e6:.0f}M rows x {N_FEATURES} features, RF(100)"
    unit = "rows/s (higher is better)"
    table = [
        {"benchmark": f"{title}: mlship job end to end vs mlflow spark_udf", "mlship": round(med["mlship"]),
         "baseline": round(med["mlflow_spark_udf"]), "baseline_name": "mlflow.pyfunc.spark_udf (scikit-learn)",
         "ratio": round(med["mlship"] / med["mlflow_spark_udf"], 2), "unit": unit},
        {"benchmark": f"{title}: mlship job end to end vs raw onnxruntime in one process",
         "mlship": round(med["mlship"]), "baseline": round(med["raw_onnxruntime"]),
         "baseline_name": "raw onnxruntime, 1 process, 2 threads, no validation/write",
         "ratio": round(med["mlship"] / med["raw_onnxruntime"], 2), "unit": unit},
        {"benchmark": f"{title}: mlship score+write stage vs Spark I/O with no model",
         "mlship": round(med["mlship_score_write"]), "baseline": round(med["spark_io_floor"]),
         "baseline_name": "Spark Parquet read + write, no model",
         "ratio": round(med["mlship_score_write"] / med["spark_io_floor"], 2), "unit": unit},
    ]
    raw = {"rounds": rounds, "rows": N_ROWS, "rows_per_s": results, "medians": med, "mlship_summaries": summaries}
    path = write_results("batch", table, raw)
    for row in table:
        print(f"{row['benchmark']:<95} mlship {row['mlship']:>9,} vs {row['baseline']:>9,} (x{row['ratio']})")
    print(f"results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round instead of 3 (still 2M rows)")
    main(parser.parse_args().quick)
