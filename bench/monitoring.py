"""Drift computation: mlship's streaming sketch vs Evidently's DataDriftPreset on the same data.

1. 1M reference x 1M current rows x 20 float features (5 shifted): mlship (profile built once
   from the reference, then one pass over the current data) vs Evidently 0.7.23
   ``DataDriftPreset`` (pandas DataFrames): wall time, peak RSS and both verdicts.
2. Streaming: 10M current rows in 500k-row batches into a ``DriftAccumulator`` vs exact scipy
   (``ks_2samp`` + ``wasserstein_distance`` on the full 10M-row columns, one column at a time).

Every contender runs in its own fresh process (spawn) so peak RSS is its own; a "data only"
process measures what generating the data costs. ``--quick``: 100k rows and 1M streaming rows.

Run: ``.venv/bin/python -m bench.monitoring [--quick]`` (needs the ``bench`` extra: evidently).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from typing import Any

import numpy as np

from bench.common import write_results

N_FEATURES = 20
SHIFTS = {  # feature -> (mean shift in sd, scale factor)
    "f00": (0.5, 1.0), "f01": (0.25, 1.0), "f02": (0.1, 1.0), "f03": (0.0, 1.5), "f04": (0.05, 1.0),
}
CHUNK = 500_000


def _names() -> list[str]:
    return [f"f{i:02d}" for i in range(N_FEATURES)]


def make_data(n: int, seed: int, shifted: bool) -> dict[str, np.ndarray]:
    """Columns of float features; integer-valued and skewed ones too, to be realistic."""
    rng = np.random.default_rng(seed)
    cols = {}
    for i, name in enumerate(_names()):
        if i % 4 == 3:
            x = rng.lognormal(0, 0.6, n)
        elif i % 4 == 2:
            x = rng.poisson(6, n).astype(np.float64)
        else:
            x = rng.normal(50, 10, n)
        if shifted and name in SHIFTS:
            mean_shift, scale = SHIFTS[name]
            sd = float(x.std())
            x = (x - x.mean()) * scale + x.mean() + mean_shift * sd
        cols[name] = x
    return cols


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_data_only(n: int) -> dict[str, Any]:
    ref, cur = make_data(n, 1, False), make_data(n, 2, True)
    return {"rows": len(ref["f00"]) + len(cur["f00"]), "peak_mb": _peak_mb()}


def job_mlship(n: int) -> dict[str, Any]:
    from mlship.stats.drift import DriftAccumulator
    from mlship.stats.profile import build_profile

    ref, cur = make_data(n, 1, False), make_data(n, 2, True)
    t0 = time.perf_counter()
    profile = build_profile(ref, dict.fromkeys(ref, True))
    t1 = time.perf_counter()
    report = DriftAccumulator(profile).update(cur).result()
    t2 = time.perf_counter()
    return {"profile_s": t1 - t0, "drift_s": t2 - t1, "total_s": t2 - t0, "peak_mb": _peak_mb(),
            "drifted": report.drifted_features, "dataset_drift": report.dataset_drift, "share": report.share,
            "scores": {k: v["score"] for k, v in report.to_dict()["features"].items()}}


def job_evidently(n: int) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref, cur = pd.DataFrame(make_data(n, 1, False)), pd.DataFrame(make_data(n, 2, True))
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    doc = snapshot.dict()
    elapsed = time.perf_counter() - t0
    drifted, methods, share, count = [], set(), None, None
    for metric in doc["metrics"]:
        cfg = metric.get("config", {})
        if cfg.get("type", "").endswith("DriftedColumnsCount"):
            share, count = metric["value"]["share"], metric["value"]["count"]
        elif cfg.get("type", "").endswith("ValueDrift"):
            method, value, threshold = cfg.get("method", ""), metric["value"], cfg.get("threshold")
            methods.add(method)
            is_p = "p_value" in method
            if (value < threshold) if is_p else (value >= threshold):
                drifted.append(cfg["column"])
    return {"total_s": elapsed, "peak_mb": _peak_mb(), "drifted": sorted(drifted), "share": share,
            "count": count, "dataset_drift": bool(share is not None and share >= 0.5), "methods": sorted(methods)}


def _chunk(k: int, shifted: bool) -> dict[str, np.ndarray]:
    return make_data(CHUNK, 1000 + k, shifted)


def job_stream_mlship(n_current: int, n_ref: int) -> dict[str, Any]:
    from mlship.stats.drift import DriftAccumulator
    from mlship.stats.profile import build_profile

    ref = make_data(n_ref, 1, False)
    profile = build_profile(ref, dict.fromkeys(ref, True))
    del ref
    acc = DriftAccumulator(profile)
    update_s, gen_s = 0.0, 0.0
    t_all = time.perf_counter()
    for k in range(n_current // CHUNK):
        t0 = time.perf_counter()
        batch = _chunk(k, True)
        t1 = time.perf_counter()
        acc.update(batch)
        update_s += time.perf_counter() - t1
        gen_s += t1 - t0
    t0 = time.perf_counter()
    report = acc.result()
    result_s = time.perf_counter() - t0
    return {"rows": acc.rows, "update_s": update_s, "result_s": result_s, "drift_s": update_s + result_s,
            "generate_s": gen_s, "wall_s": time.perf_counter() - t_all, "peak_mb": _peak_mb(),
            "rows_per_s": acc.rows / (update_s + result_s), "drifted": report.drifted_features,
            "ks": {k: v["ks_statistic"] for k, v in report.features.items()},
            "w": {k: v["wasserstein"] for k, v in report.features.items()},
            "ref_std": {k: v["reference"]["std"] for k, v in report.features.items()}}


def job_stream_scipy(n_current: int, n_ref: int) -> dict[str, Any]:
    from scipy import stats

    ref = make_data(n_ref, 1, False)
    n_chunks = n_current // CHUNK
    compute_s, gen_s = 0.0, 0.0
    ks, w = {}, {}
    for name in _names():  # one full 10M-row column at a time keeps this baseline's memory sane
        t0 = time.perf_counter()
        col = np.concatenate([_chunk(k, True)[name] for k in range(n_chunks)])
        t1 = time.perf_counter()
        ks[name] = float(stats.ks_2samp(ref[name], col).statistic)
        w[name] = float(stats.wasserstein_distance(ref[name], col))
        compute_s += time.perf_counter() - t1
        gen_s += t1 - t0
    return {"rows": n_chunks * CHUNK, "drift_s": compute_s, "generate_s": gen_s, "peak_mb": _peak_mb(),
            "rows_per_s": n_chunks * CHUNK / compute_s, "ks": ks, "w": w}


def _run(fn: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(fn, args)


def main(quick: bool = False) -> None:
    n = 100_000 if quick else 1_000_000
    n_stream = 1_000_000 if quick else 10_000_000
    print(f"drift bench: {n:,} x {n:,} rows x {N_FEATURES} features; streaming {n_stream:,} rows", flush=True)
    data = _run(job_data_only, n)
    print(f"  data only: peak {data['peak_mb']:.0f} MB", flush=True)
    ours = _run(job_mlship, n)
    print(f"  mlship: profile {ours['profile_s']:.2f}s + drift {ours['drift_s']:.2f}s, peak {ours['peak_mb']:.0f} MB, "
          f"drifted {ours['drifted']}", flush=True)
    try:
        theirs = _run(job_evidently, n)
        print(f"  evidently: {theirs['total_s']:.1f}s, peak {theirs['peak_mb']:.0f} MB, drifted {theirs['drifted']} "
              f"({theirs['methods']})", flush=True)
    except ImportError as exc:  # the bench extra is not installed
        theirs = None
        print(f"  evidently not installed ({exc}); pip install '.[bench]'", flush=True)
    stream = _run(job_stream_mlship, n_stream, n)
    print(f"  streaming mlship: {stream['rows']:,} rows, drift {stream['drift_s']:.2f}s "
          f"({stream['rows_per_s']:,.0f} rows/s), peak {stream['peak_mb']:.0f} MB", flush=True)
    exact = _run(job_stream_scipy, n_stream, n)
    print(f"  streaming scipy exact: drift {exact['drift_s']:.1f}s, peak {exact['peak_mb']:.0f} MB", flush=True)
    ks_err = max(abs(stream["ks"][k] - exact["ks"][k]) for k in exact["ks"])
    w_err = max(abs(stream["w"][k] - exact["w"][k]) / max(exact["w"][k], 1e-12) for k in exact["w"])
    w_err_std = max(abs(stream["w"][k] - exact["w"][k]) / stream["ref_std"][k] for k in exact["w"])
    shifted = sorted(SHIFTS)
    table = [
        {"benchmark": f"drift {n // 1000}k x {n // 1000}k rows x {N_FEATURES} features (time)",
         "mlship": round(ours["total_s"], 2), "baseline": round(theirs["total_s"], 1) if theirs else None,
         "baseline_name": "Evidently 0.7.23 DataDriftPreset",
         "ratio": round(theirs["total_s"] / ours["total_s"], 1) if theirs else None, "unit": "s (lower is better)"},
        {"benchmark": f"drift {n // 1000}k x {n // 1000}k rows x {N_FEATURES} features (peak RSS)",
         "mlship": round(ours["peak_mb"]), "baseline": round(theirs["peak_mb"]) if theirs else None,
         "baseline_name": "Evidently 0.7.23 DataDriftPreset",
         "ratio": round(theirs["peak_mb"] / ours["peak_mb"], 1) if theirs else None,
         "unit": f"MB (data alone: {data['peak_mb']:.0f} MB)"},
        {"benchmark": f"drift verdict: shifted features found of {len(shifted)} (unshifted flagged)",
         "mlship": f"{len(set(ours['drifted']) & set(shifted))} ({len(set(ours['drifted']) - set(shifted))})",
         "baseline": (f"{len(set(theirs['drifted']) & set(shifted))} ({len(set(theirs['drifted']) - set(shifted))})"
                      if theirs else None),
         "baseline_name": "Evidently 0.7.23 DataDriftPreset", "ratio": None, "unit": "features"},
        {"benchmark": f"streaming drift, {n_stream // 1_000_000}M current rows x {N_FEATURES} features",
         "mlship": round(stream["rows_per_s"]), "baseline": round(exact["rows_per_s"]),
         "baseline_name": "scipy ks_2samp + wasserstein_distance (exact, in memory)",
         "ratio": round(stream["rows_per_s"] / exact["rows_per_s"], 1), "unit": "rows/s (higher is better)"},
        {"benchmark": f"streaming drift, {n_stream // 1_000_000}M rows (peak RSS)",
         "mlship": round(stream["peak_mb"]), "baseline": round(exact["peak_mb"]),
         "baseline_name": "scipy exact, one column at a time",
         "ratio": round(exact["peak_mb"] / stream["peak_mb"], 1), "unit": "MB"},
    ]
    raw = {"rows": n, "stream_rows": n_stream, "shifts": SHIFTS, "data_only": data, "mlship": ours,
           "evidently": theirs, "stream_mlship": stream, "stream_scipy": exact,
           "stream_max_ks_abs_error": ks_err, "stream_max_wasserstein_rel_error": w_err,
           "stream_max_wasserstein_abs_error_in_ref_std": w_err_std,
           "note": "single run per contender (each takes seconds to minutes); each in a fresh spawned process"}
    path = write_results("monitoring", table, raw)
    print(f"  KS max abs error vs exact {ks_err:.2e}; Wasserstein max error {w_err:.2e} relative "
          f"(on near-zero distances), {w_err_std:.2e} reference standard deviations")
    print(f"results written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
