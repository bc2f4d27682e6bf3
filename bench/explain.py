"""Explanation benchmark: explained rows/s of mlship's exact TreeSHAP from the bundle (numpy, what
``explain=true`` runs) against ``shap.TreeExplainer`` on the scikit-learn model and against Kernel
SHAP on the same ONNX model, in the same run.

* churn pipeline (ColumnTransformer + HistGradientBoosting, 100 iterations): ``Predictor.explain``
  of 1,000 raw records (validation, the features subgraph, TreeSHAP, the sum per field) vs
  ``shap.TreeExplainer(model).shap_values`` of the same rows already transformed (its C++ path,
  no validation, no aggregation);
* random forest (100 unpruned trees, 20 numeric features): the same on 200 rows; and Kernel SHAP
  (``shap.KernelExplainer``, ``nsamples="auto"`` = 2 x 20 + 2048, a 50-row k-means background) on
  the bundle's onnxruntime session for 3 rows: the approximate method a serving path without tree
  statistics would need, counted in model evaluations per explained row.

* neural network (MLP, 20 numeric features, no exact explainer): mlship's sampling explainer
  (``Predictor.explain``: antithetic permutations over the bundle's 16-row background, at most
  1,024 model evaluations per row) vs Kernel SHAP on the same ONNX session with the same weighted
  background (``nsamples="auto"``), both scored by their mean absolute error against the converged
  value (mlship's sampler with 64x the budget: the same target, interventional Shapley values over
  that background).

Run: ``.venv/bin/python -m bench.explain [--quick]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import write_results


def _rate(fn: Any, rows: int, rounds: int) -> list[float]:
    fn()  # warm: session creation, first-call allocations
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(rows / (time.perf_counter() - t0))
    return out


def _churn(tmp: Path) -> tuple[Any, Any, Any]:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn
    from mlship.local.train import split, train_pipeline
    from mlship.runtime.predictor import Predictor

    train, holdout = split(make_churn(12_000, seed=3))
    pipe = train_pipeline(train, "hgb")
    bundle = export_bundle(pipe, holdout, "churned", tmp / "churn", name="churn", version="1", tarball=False)
    return pipe, Predictor.load(bundle), holdout.drop(columns="churned")


def _forest(tmp: Path) -> tuple[Any, Any, Any]:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_numeric
    from mlship.local.train import make_estimator
    from mlship.runtime.predictor import Predictor

    num = make_numeric(12_000, n_features=20, seed=4)
    rf = make_estimator("rf").set_params(n_estimators=100).fit(num.iloc[:8000].drop(columns="label"),
                                                              num.iloc[:8000]["label"])
    hold = num.iloc[8000:].reset_index(drop=True)
    bundle = export_bundle(rf, hold, "label", tmp / "rf", name="rf", version="1", tarball=False)
    return rf, Predictor.load(bundle), hold.drop(columns="label")


def _tree_rows(title: str, sk_model: Any, predictor: Any, frame: Any, n: int, rounds: int) -> dict[str, Any]:
    import numpy as np
    import shap

    rows = frame.head(n)
    final = sk_model[-1] if hasattr(sk_model, "steps") else sk_model
    matrix = np.asarray(sk_model[:-1].transform(rows) if hasattr(sk_model, "steps") else rows, dtype=np.float64)
    reference = shap.TreeExplainer(final)
    ours = _rate(lambda: predictor.explain(rows), n, rounds)
    theirs = _rate(lambda: reference.shap_values(matrix), n, rounds)
    return {"benchmark": f"{title}: exact TreeSHAP, {n} rows", "mlship": round(statistics.median(ours), 1),
            "baseline": round(statistics.median(theirs), 1),
            "baseline_name": "shap.TreeExplainer on the scikit-learn model (C++, transformed rows)",
            "ratio": round(statistics.median(ours) / statistics.median(theirs), 3),
            "unit": "explained rows/s (higher is better)", "rounds": {"mlship": ours, "shap": theirs}}


def _kernel_row(predictor: Any, frame: Any, n: int) -> dict[str, Any]:
    import numpy as np
    import shap

    session, name = predictor.session, predictor.session.get_inputs()[0].name
    calls = {"rows": 0}

    def positive(x: np.ndarray) -> np.ndarray:
        calls["rows"] += len(x)
        return session.run(None, {name: x.astype(np.float32)})[1][:, 1]

    matrix = frame.to_numpy(dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = shap.KernelExplainer(positive, shap.kmeans(matrix[:2000], 50))
        t0 = time.perf_counter()
        kernel.shap_values(matrix[:n], nsamples="auto", silent=True)
    kernel_rate = n / (time.perf_counter() - t0)
    rows = frame.head(200)
    ours = statistics.median(_rate(lambda: predictor.explain(rows), 200, 3))
    return {"benchmark": "random forest, 100 trees, 20 features: exact TreeSHAP vs Kernel SHAP on the ONNX model",
            "mlship": round(ours, 1), "baseline": round(kernel_rate, 2),
            "baseline_name": f"shap.KernelExplainer, nsamples auto, 50-row background "
                             f"({calls['rows'] // n:,} model rows per explained row; mlship: none)",
            "ratio": round(ours / kernel_rate, 1), "unit": "explained rows/s (higher is better)",
            "kernel_model_rows_per_explained_row": calls["rows"] // n}


def _mlp(tmp: Path) -> tuple[Any, Any]:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_numeric
    from mlship.local.train import make_estimator
    from mlship.runtime.predictor import Predictor

    num = make_numeric(6_000, n_features=20, seed=5)
    mlp = make_estimator("mlp").fit(num.iloc[:4000].drop(columns="label"), num.iloc[:4000]["label"])
    hold = num.iloc[4000:].reset_index(drop=True)
    bundle = export_bundle(mlp, hold, "label", tmp / "mlp", name="mlp", version="1", tarball=False)
    return Predictor.load(bundle), hold.drop(columns="label")


def _sampling_row(predictor: Any, frame: Any, n: int) -> dict[str, Any]:
    import numpy as np
    import shap
    from shap.utils._legacy import DenseData

    from mlship.runtime.explain import SamplingExplainer

    explainer = predictor.explainer()
    rows = frame.head(n)
    columns = predictor.schema.validate(rows).columns
    converged = SamplingExplainer(predictor, {**predictor.bundle.manifest["explain"], "budget": 64 * 1024})
    truth = converged.explain_columns(columns).contributions[:, :, 0]
    ours = statistics.median(_rate(lambda: predictor.explain(rows), n, 3))
    estimate = explainer.explain_columns(columns).contributions[:, :, 0]
    session, name = predictor.session, predictor.session.get_inputs()[0].name
    calls = {"rows": 0}

    def positive(x: np.ndarray) -> np.ndarray:
        calls["rows"] += len(x)
        return session.run(None, {name: x.astype(np.float32)})[1][:, 1]

    fields = explainer.fields
    background = np.column_stack([explainer.plan.background[f] for f in fields]).astype(np.float64)
    matrix = np.column_stack([columns[f] for f in fields]).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel = shap.KernelExplainer(positive, DenseData(background, fields, None, explainer.plan.weights.copy()))
        t0 = time.perf_counter()
        kernel_values = np.asarray(kernel.shap_values(matrix, nsamples="auto", silent=True)).reshape(truth.shape)
    kernel_rate = n / (time.perf_counter() - t0)
    return {"benchmark": f"MLP, 20 features: sampling explainer vs Kernel SHAP on the ONNX model, {n} rows",
            "mlship": round(ours, 1), "baseline": round(kernel_rate, 2),
            "baseline_name": f"shap.KernelExplainer, nsamples auto, the same 16-row background "
                             f"({calls['rows'] // n:,} model rows per explained row; mlship: "
                             f"{explainer.model_calls:,})",
            "ratio": round(ours / kernel_rate, 1), "unit": "explained rows/s (higher is better)",
            "mlship_model_rows_per_explained_row": explainer.model_calls,
            "kernel_model_rows_per_explained_row": calls["rows"] // n,
            "mean_abs_error": {"mlship": float(np.abs(estimate - truth).mean()),
                               "kernel_shap": float(np.abs(kernel_values - truth).mean()),
                               "mean_abs_contribution": float(np.abs(truth).mean())}}


def main(quick: bool = False) -> None:
    rounds = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        pipe, churn, churn_rows = _churn(Path(tmp))
        rf, forest, forest_rows = _forest(Path(tmp))
        table = [_tree_rows("churn pipeline (ColumnTransformer + HGB)", pipe, churn, churn_rows, 1000, rounds),
                 _tree_rows("random forest, 100 trees, 20 features", rf, forest, forest_rows, 200, rounds),
                 _kernel_row(forest, forest_rows, 2 if quick else 3),
                 _sampling_row(*_mlp(Path(tmp)), 10 if quick else 40)]
    raw = {row["benchmark"]: row.pop("rounds", None) for row in table}
    path = write_results("explain", table, raw)
    for row in table:
        print(f"{row['benchmark']:<95} mlship {row['mlship']:>10} vs {row['baseline']:>10} (x{row['ratio']})")
    print(f"results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    main(parser.parse_args().quick)
