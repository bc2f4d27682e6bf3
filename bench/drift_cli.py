"""``mlship drift`` end to end, as a user runs it, against what they would run instead, same files.

1M reference and 1M current rows x 20 numeric features (5 shifted; ``bench.monitoring.make_data``)
written as Parquet; then, each as its own process (wall time and peak RSS of that process, from
``os.wait4``):

* ``mlship drift ref.parquet cur.parquet --out DIR --json``: the reference profiled one column at
  a time, the current data streamed column by column into the profile's bins, the JSON and HTML
  reports written;
* plain scipy: both files read whole, exact ``ks_2samp`` and a 10-bin PSI per column;
* ``mlship drift BUNDLE cur.parquet``: the other mode, a bundle's stored profile (exported with the
  same reference as its drift baseline, 2,000 bins) against the current file;
* Evidently 0.7 ``DataDriftPreset`` on both files read into pandas (``--no-evidently`` skips it).

The KS statistics of mlship's report are compared with scipy's exact ones (largest absolute
difference, and each against the error bound the report states).

Run: ``.venv/bin/python -m bench.drift_cli [--quick] [--no-evidently]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_results
from bench.monitoring import SHIFTS, make_data

SCIPY = """
import json, sys
import numpy as np, pyarrow.parquet as pq
from scipy import stats
ref, cur = pq.read_table(sys.argv[1]).to_pandas(), pq.read_table(sys.argv[2]).to_pandas()
out = {}
for name in ref.columns:
    r, c = ref[name].to_numpy(), cur[name].to_numpy()
    edges = np.quantile(r, np.linspace(0, 1, 11))
    rp = np.histogram(r, edges)[0] / len(r) + 1e-4
    cp = np.histogram(np.clip(c, edges[0], edges[-1]), edges)[0] / len(c) + 1e-4
    out[name] = {"ks": float(stats.ks_2samp(r, c).statistic), "psi": float(np.sum((cp - rp) * np.log(cp / rp)))}
print(json.dumps(out))
"""

EVIDENTLY = """
import json, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
doc = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref).dict()
drifted = []
for metric in doc["metrics"]:
    cfg = metric.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        value, threshold = metric["value"], cfg.get("threshold")
        if (value < threshold) if "p_value" in cfg.get("method", "") else (value >= threshold):
            drifted.append(cfg["column"])
print(json.dumps({"drifted": sorted(drifted)}))
"""


def _measured(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd`` as a child of this process: its wall time, peak RSS in MB (``os.wait4``) and stdout
    (stderr kept for the error when it fails)."""
    out_path = cwd / f".stdout-{os.getpid()}-{time.monotonic_ns()}"
    err_path = out_path.with_suffix(".err")
    pid = os.fork()
    if pid == 0:  # the child becomes the command, stdout and stderr to files
        os.chdir(cwd)
        os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.dup2(os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
        os.execv(cmd[0], cmd)
    t0 = time.perf_counter()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    stdout, stderr = out_path.read_text(), err_path.read_text()
    out_path.unlink()
    err_path.unlink()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[:3]} exited with {os.waitstatus_to_exitcode(status)}: {stderr[-2000:]}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def _write_inputs(folder: Path, n: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ref, cur = folder / "ref.parquet", folder / "cur.parquet"
    pq.write_table(pa.table(make_data(n, 1, False)), ref)
    pq.write_table(pa.table(make_data(n, 2, True)), cur)
    return ref, cur


def _export_bundle(folder: Path, ref: Path) -> Path:
    """A logistic regression on the reference's features whose drift baseline is the whole reference
    (``folder/bundle``)."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlship.evaluation.export import export_bundle

    reference = pq.read_table(ref).to_pandas()
    rng = np.random.default_rng(3)
    sample = reference.sample(40_000, random_state=3)
    label = (sample["f00"] + sample["f05"] + rng.normal(0, 10, len(sample)) > 100).astype(int)
    train, holdout = sample.iloc[:20_000], sample.iloc[20_000:].assign(label=label.iloc[20_000:].to_numpy())
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(train, label.iloc[:20_000])
    return export_bundle(model, pd.DataFrame(holdout), "label", folder / "bundle", name="drift-bench", version="1",
                         reference=reference, n_bins=2000, tarball=False)


def main(quick: bool = False, evidently: bool = True) -> None:
    n = 100_000 if quick else 1_000_000
    rounds = 3
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ref, cur = _write_inputs(folder, n)
        bundle = folder / "bundle"  # exported by a child: this process stays small for the children it forks
        subprocess.run([sys.executable, "-c", f"from pathlib import Path; from bench.drift_cli import _export_bundle; "
                        f"_export_bundle(Path({str(folder)!r}), Path({str(ref)!r}))"], check=True,
                       cwd=Path(__file__).resolve().parents[1])
        cli = [sys.executable, "-m", "mlship", "drift", str(ref), str(cur), "--out", str(folder / "report")]
        bundle_cli = [sys.executable, "-m", "mlship", "drift", str(bundle), str(cur), "--out", str(folder / "bundled")]
        runs, scipy_runs, bundle_runs = [], [], []
        for _ in range(rounds):  # interleaved: a slow moment of the machine hits all of them
            runs.append(_measured(cli, folder))
            bundle_runs.append(_measured(bundle_cli, folder))
            scipy_runs.append(_measured([sys.executable, "-c", SCIPY, str(ref), str(cur)], folder))
        report = json.loads((folder / "report" / "report.json").read_text())["drift"]
        bundled = json.loads((folder / "bundled" / "report.json").read_text())["drift"]
        exact_ks = {k: v["ks"] for k, v in json.loads(scipy_runs[-1]["stdout"]).items()}
        theirs = None
        if evidently:
            print(f"  Evidently DataDriftPreset on {n:,} x {n:,} rows (minutes)...", flush=True)
            theirs = _measured([sys.executable, "-c", EVIDENTLY, str(ref), str(cur)], folder)
            theirs["drifted"] = json.loads(theirs.pop("stdout"))["drifted"]
    for run in (*runs, *scipy_runs, *bundle_runs):
        run.pop("stdout", None)
    _report(n, {"mlship": runs, "scipy": scipy_runs, "bundle": bundle_runs}, report, bundled, exact_ks, theirs)


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def _report(n: int, rounds: dict[str, list[dict[str, Any]]], report: dict[str, Any], bundled: dict[str, Any],
            exact_ks: dict[str, float], theirs: dict[str, Any] | None) -> None:
    (ours_s, ours_mb), (scipy_s, scipy_mb), (bundle_s, bundle_mb) = (
        (_median([r["wall_s"] for r in runs]), max(r["peak_mb"] for r in runs))
        for runs in (rounds["mlship"], rounds["scipy"], rounds["bundle"]))
    features = report["features"]
    ks_error = {k: abs(features[k]["ks_statistic"] - exact_ks[k]) for k in exact_ks}
    within = all(ks_error[k] <= features[k]["ks_error_bound"] + 1e-12 for k in exact_ks)
    size = f"{n // 1000}k x {n // 1000}k rows x {len(exact_ks)} features"
    table = [
        {"benchmark": f"mlship drift ref.parquet cur.parquet, {size} (wall, end to end)", "mlship": round(ours_s, 2),
         "baseline": round(scipy_s, 2), "baseline_name": "plain scipy: exact ks_2samp + 10-bin PSI, both in memory",
         "ratio": round(scipy_s / ours_s, 1), "unit": "s (lower is better)"},
        {"benchmark": f"mlship drift, {size} (peak RSS)", "mlship": round(ours_mb),
         "baseline": round(scipy_mb), "baseline_name": "plain scipy, both files in memory",
         "ratio": round(scipy_mb / ours_mb, 1), "unit": "MB (lower is better)"},
        {"benchmark": f"mlship drift, {size}: KS vs exact (max |difference|)",
         "mlship": round(max(ks_error.values()), 5), "baseline": 0.0, "baseline_name": "scipy.stats.ks_2samp",
         "ratio": None,
         "unit": f"KS statistic ({'every one within' if within else 'NOT all within'} the report's stated bound)"},
    ]
    if theirs is not None:
        table[0:0] = [{"benchmark": f"mlship drift BUNDLE cur.parquet (the bundle's profile of the reference) vs "
                                    f"Evidently, {size} (wall)", "mlship": round(bundle_s, 2),
                       "baseline": round(theirs["wall_s"], 1), "baseline_name": "Evidently 0.7.23 DataDriftPreset",
                       "ratio": round(theirs["wall_s"] / bundle_s, 1), "unit": "s (lower is better)"},
                      {"benchmark": f"mlship drift BUNDLE cur.parquet vs Evidently, {size} (peak RSS)",
                       "mlship": round(bundle_mb), "baseline": round(theirs["peak_mb"]),
                       "baseline_name": "Evidently 0.7.23 DataDriftPreset",
                       "ratio": round(theirs["peak_mb"] / bundle_mb, 1), "unit": "MB (lower is better)"}]
        table[0:0] = [{"benchmark": f"mlship drift vs Evidently, {size} (wall)", "mlship": round(ours_s, 2),
                       "baseline": round(theirs["wall_s"], 1), "baseline_name": "Evidently 0.7.23 DataDriftPreset",
                       "ratio": round(theirs["wall_s"] / ours_s, 1), "unit": "s (lower is better)"},
                      {"benchmark": f"mlship drift vs Evidently, {size} (peak RSS)", "mlship": round(ours_mb),
                       "baseline": round(theirs["peak_mb"]), "baseline_name": "Evidently 0.7.23 DataDriftPreset",
                       "ratio": round(theirs["peak_mb"] / ours_mb, 1), "unit": "MB (lower is better)"}]
    drifted = sorted(report["drifted_features"])
    raw = {"rows": n, "rounds": rounds, "evidently": theirs, "mlship_drifted": drifted,
           "bundle_drifted": sorted(bundled["drifted_features"]), "shifted": sorted(SHIFTS), "ks_error": ks_error,
           "ks_error_bound": {k: features[k]["ks_error_bound"] for k in exact_ks}}
    path = write_results("drift_cli", table, raw)
    for row in table:
        print(f"{row['benchmark']:<80} mlship {row['mlship']} vs {row['baseline']} (x{row['ratio']})")
    print(f"drifted: {drifted} (bundle mode: {raw['bundle_drifted']}); results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently (minutes at 1M rows)")
    args = parser.parse_args()
    main(args.quick, not args.no_evidently)
