"""Predictor benchmark: single-record latency and 10k-row throughput of the mlship predictor
(onnxruntime) against scikit-learn ``predict_proba`` on the same model, in the same run.

Run: ``.venv/bin/python -m bench.predictor [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import summary, time_calls, write_results


def _models(tmp: Path, quick: bool) -> list[tuple[str, object, object, object]]:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn, make_numeric
    from mlship.local.train import make_estimator, split, train_pipeline
    from mlship.runtime.predictor import Predictor

    out = []
    churn = make_churn(12_000, seed=3)
    train, holdout = split(churn)
    pipe = train_pipeline(train, "hgb")
    bundle = export_bundle(pipe, holdout, "churned", tmp / "churn", name="churn", version="1", tarball=False)
    features = holdout.drop(columns="churned")
    out.append(("churn pipeline (ColumnTransformer + HGB)", pipe, Predictor.load(bundle), features))
    num = make_numeric(12_000, n_features=20, seed=4)
    rf = make_estimator("rf").set_params(n_estimators=100).fit(num.iloc[:8000].drop(columns="label"),
                                                              num.iloc[:8000]["label"])
    hold = num.iloc[8000:].reset_index(drop=True)
    bundle = export_bundle(rf, hold, "label", tmp / "rf", name="rf", version="1", tarball=False)
    out.append(("random forest, 100 trees, 20 features", rf, Predictor.load(bundle), hold.drop(columns="label")))
    return out


def main(quick: bool = False) -> None:
    import pandas as pd

    n_single = 300 if quick else 2000
    rounds = 3 if quick else 7
    table, raw = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for title, sk_model, predictor, frame in _models(Path(tmp), quick):
            record = frame.iloc[0].to_dict()
            one_row = pd.DataFrame([record])
            ort_single = summary(time_calls(lambda: predictor.predict(record), n_single))  # noqa: B023
            sk_single = summary(time_calls(lambda: sk_model.predict_proba(one_row), n_single))  # noqa: B023
            batch = pd.concat([frame] * (10_000 // len(frame) + 1)).head(10_000).reset_index(drop=True)
            ort_tp, sk_tp = [], []
            for _ in range(rounds):  # interleave so that machine noise hits both alike
                t0 = time.perf_counter()
                predictor.predict(batch)
                ort_tp.append(len(batch) / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                sk_model.predict_proba(batch)
                sk_tp.append(len(batch) / (time.perf_counter() - t0))
            raw[title] = {"single_record_s": {"mlship": ort_single, "sklearn": sk_single},
                          "batch_10k_rows_per_s": {"mlship": ort_tp, "sklearn": sk_tp}}
            table += [
                {"benchmark": f"{title}: 1 record, p50", "mlship": round(ort_single["p50"] * 1e3, 3),
                 "baseline": round(sk_single["p50"] * 1e3, 3), "baseline_name": "scikit-learn predict_proba",
                 "ratio": round(sk_single["p50"] / ort_single["p50"], 1), "unit": "ms (lower is better)"},
                {"benchmark": f"{title}: 1 record, p99", "mlship": round(ort_single["p99"] * 1e3, 3),
                 "baseline": round(sk_single["p99"] * 1e3, 3), "baseline_name": "scikit-learn predict_proba",
                 "ratio": round(sk_single["p99"] / ort_single["p99"], 1), "unit": "ms (lower is better)"},
                {"benchmark": f"{title}: 10k-row batch", "mlship": round(statistics.median(ort_tp)),
                 "baseline": round(statistics.median(sk_tp)), "baseline_name": "scikit-learn predict_proba",
                 "ratio": round(statistics.median(ort_tp) / statistics.median(sk_tp), 2),
                 "unit": "rows/s (higher is better)"},
            ]
    path = write_results("predictor", table, raw)
    for row in table:
        print(f"{row['benchmark']:<70} mlship {row['mlship']:>10} vs {row['baseline']:>10} {row['unit']} "
              f"(x{row['ratio']})")
    print(f"results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    main(parser.parse_args().quick)
