"""Edge benchmark: size and latency of every edge variant against the fp32 ONNX model of the
bundle and the original scikit-learn model, measured in the same run.

Models: the churn pipeline with an MLP (quantizable), a 20-feature MLP with wider layers
(where int8 matters more), and the churn HistGradientBoosting pipeline (tree ensemble: no
int8 variants). Latency: one record end to end through the shared predictor (validation
included) and a 1,000-row batch; scikit-learn gets a one-row DataFrame and a 1,000-row
DataFrame. Medians (ms), p99 in the raw section.

Run: ``.venv/bin/python -m bench.edge [--quick]``
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path
from typing import Any

from bench.common import summary, time_calls, write_results


def _models(tmp: Path, quick: bool) -> list[tuple[str, Any, Path, Any, str]]:
    from sklearn.neural_network import MLPClassifier

    from mlship.evaluation.export import ParityPolicy, export_bundle
    from mlship.local.datasets import make_churn, make_numeric
    from mlship.local.train import churn_pipeline, make_estimator, split

    churn = make_churn(4000 if quick else 10_000, seed=5)
    train, holdout = split(churn)
    x, y = train.drop(columns="churned"), train["churned"]
    out = []
    mlp = (
        churn_pipeline("mlp")
        .set_params(
            model=MLPClassifier(
                hidden_layer_sizes=(64, 32), alpha=1e-2, max_iter=300, early_stopping=True, random_state=0
            )
        )
        .fit(x, y)
    )
    out.append(("churn MLP 64x32", mlp, holdout, "churned"))
    hgb = churn_pipeline("hgb").fit(x, y)
    out.append(("churn HGB (tree ensemble)", hgb, holdout, "churned"))
    num = make_numeric(6000 if quick else 12_000, n_features=20, seed=4)
    wide = make_estimator("mlp").set_params(hidden_layer_sizes=(256, 128), max_iter=200, early_stopping=True)
    wide.fit(num.iloc[:4000].drop(columns="label"), num.iloc[:4000]["label"])
    out.append(("numeric MLP 256x128", wide, num.iloc[4000:].reset_index(drop=True), "label"))
    models = []
    for name, est, hold, label in out:
        slug = name.split()[0] + "-" + name.split()[1].lower()
        bundle = export_bundle(
            est,
            hold,
            label,
            tmp / slug,
            name=slug,
            version="1",
            tarball=False,
            parity=ParityPolicy(max_share_over=0.01),
        )
        models.append((name, est, bundle, hold, label))
    return models


def interleaved(fns: dict[str, Any], n: int, rounds: int = 5, warmup: int = 10) -> dict[str, dict[str, float]]:
    """Time every candidate in alternating rounds (load changes hit all alike); ms summaries."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            times[key] += time_calls(fn, max(1, n // rounds), warmup=warmup)
    return {k: {m: (v * 1e3 if m != "n" else v) for m, v in summary(t).items()} for k, t in times.items()}


def _row(benchmark: str, mine: float, base: float, base_name: str, unit: str) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "mlship": round(mine, 4),
        "baseline": round(base, 4),
        "baseline_name": base_name,
        "ratio": round(mine / base, 3) if base else None,
        "unit": unit,
    }


def table_rows(name: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """README rows: fp32 vs scikit-learn; every other variant's size and latency vs fp32 ONNX."""
    sk, base, variants = entry["sklearn"], entry["fp32_onnx"], entry["variants"]
    rows = []
    if variants.get("fp32", {}).get("status") == "packaged":
        fp32 = variants["fp32"]
        rows.append(
            _row(
                f"{name}: edge fp32 one-row latency",
                fp32["one_row_ms"]["median"],
                sk["one_row_ms"]["median"],
                "scikit-learn predict_proba",
                "ms",
            )
        )
        rows.append(
            _row(
                f"{name}: edge fp32 1000-row batch",
                fp32["batch_1000_ms"]["median"],
                sk["batch_1000_ms"]["median"],
                "scikit-learn predict_proba",
                "ms",
            )
        )
    not_packaged: dict[str, list[str]] = {}
    for variant, v in variants.items():
        if variant == "fp32":
            continue
        if v["status"] != "packaged":
            not_packaged.setdefault(v["status"], []).append(variant)
            continue
        rows.append(_row(f"{name}: {variant} model size", v["size_bytes"], base["size_bytes"], "fp32 ONNX", "bytes"))
        rows.append(
            _row(
                f"{name}: {variant} one-row latency",
                v["one_row_ms"]["median"],
                base["one_row_ms"]["median"],
                "fp32 ONNX",
                "ms",
            )
        )
    for status, names in not_packaged.items():
        reason = variants[names[0]].get("reason") or ""
        rows.append(
            {
                "benchmark": f"{name}: {', '.join(names)}",
                "mlship": status,
                "baseline": None,
                "baseline_name": "fp32 ONNX",
                "ratio": None,
                "unit": "-",
                "note": reason[:200],
            }
        )
    return rows


def _sklearn_size(est: Any) -> int:
    import joblib

    buf = io.BytesIO()
    joblib.dump(est, buf)
    return len(buf.getvalue())


def main(quick: bool = False) -> None:
    from mlship.edge.build import build_edge
    from rich.console import Console
    from rich.table import Table

    from mlship.runtime.predictor import Predictor
    from mlship.runtime.signing import generate_keypair
    from mlship.runtime.sources import open_bundle

    console = Console()
    n_one = 300 if quick else 2000
    n_batch = 20 if quick else 100
    table: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        key, _ = generate_keypair(tmp / "keys")
        for name, est, bundle_dir, hold, label in _models(tmp, quick):
            console.log(f"{name}: building variants")
            results = build_edge(
                bundle_dir,
                tmp / "pkg" / bundle_dir.name,
                private_key=key,
                holdout=hold,
                label=label,
                latency_repeats=20,
            )
            features = hold.drop(columns=label)
            one_df, batch_df = features.head(1), features.head(1000)
            record = one_df.to_dict(orient="records")
            source = open_bundle(bundle_dir)
            fp32_size = source.file(source.manifest["model"]["file"]).stat().st_size
            packaged = [r for r in results if r.status == "packaged"]
            predictors = {"fp32 ONNX": Predictor.load(bundle_dir)}
            predictors.update({r.variant: Predictor.load(r.package) for r in packaged})
            one_fns = {"scikit-learn": lambda e=est, d=one_df: e.predict_proba(d)}
            batch_fns = {"scikit-learn": lambda e=est, d=batch_df: e.predict_proba(d)}
            for label_, pred in predictors.items():
                cols = pred.schema.validate(batch_df).columns
                one_fns[label_] = lambda p=pred, r=record: p.predict(r)
                batch_fns[label_] = lambda p=pred, c=cols: p.predict_columns(c)
            console.log(f"{name}: timing {len(one_fns)} candidates, interleaved")
            ones = interleaved(one_fns, n_one)
            batches = interleaved(batch_fns, n_batch, warmup=3)
            sk_one, sk_batch = ones["scikit-learn"], batches["scikit-learn"]
            base_one, base_batch = ones["fp32 ONNX"], batches["fp32 ONNX"]
            entry: dict[str, Any] = {
                "sklearn": {"size_bytes": _sklearn_size(est), "one_row_ms": sk_one, "batch_1000_ms": sk_batch},
                "fp32_onnx": {"size_bytes": fp32_size, "one_row_ms": base_one, "batch_1000_ms": base_batch},
                "variants": {},
            }
            for r in results:
                if r.status != "packaged":
                    entry["variants"][r.variant] = {"status": r.status, "reason": r.reason}
                    continue
                entry["variants"][r.variant] = {
                    "status": r.status,
                    "size_bytes": r.size_bytes,
                    "package_bytes": Path(r.package).stat().st_size,
                    "one_row_ms": ones[r.variant],
                    "batch_1000_ms": batches[r.variant],
                    "holdout_check": (r.checks or {}).get("holdout"),
                    "metric": (r.checks or {}).get("metric"),
                }
            table += table_rows(name, entry)
            raw[name] = entry
    path = write_results("edge", table, {"quick": quick, "models": raw})
    view = Table(title="edge variants vs baselines (medians)")
    for col in ("benchmark", "mlship", "baseline", "baseline_name", "ratio", "unit"):
        view.add_column(col)
    for row in table:
        view.add_row(*(str(row.get(c)) for c in ("benchmark", "mlship", "baseline", "baseline_name", "ratio", "unit")))
    console.print(view)
    console.print(f"written {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(parser.parse_args().quick)
