"""Load-test benchmark: the knee of ``mlship serve`` on this machine, measured by ``mlship loadtest``.

An open-model stairs search (requests scheduled at the offered rate whatever is outstanding,
latency from the intended send time) for the highest rate at which ``mlship serve`` (one worker per
CPU, the churn ColumnTransformer + HistGradientBoosting bundle, one record per request) keeps
p99 <= 50 ms and errors <= 0.1 %, then a stress step beyond it and a recovery step; a closed loop at
the knee rate shows what coordinated omission would have reported. The load generator (Python,
aiohttp) shares the machine's cores with the server: ``client_limited`` in the raw results says
whether the generator, not the server, fell behind first.

Run: ``.venv/bin/python -m bench.loadtest [--quick]`` (three stairs runs, one with ``--quick``; writes
bench/results/loadtest.json; the HTML reports go to build/bench/loadtest/).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import write_results

REPO = Path(__file__).resolve().parents[1]
REPORT_DIR = REPO / "build" / "bench" / "loadtest"
P99_MS, ERROR_RATE = 50.0, 0.001


def _bundle(tmp: Path) -> Path:
    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn
    from mlship.local.train import split, train_pipeline

    train, holdout = split(make_churn(8000, seed=5))
    return export_bundle(train_pipeline(train, "hgb"), holdout, "churned", tmp / "churn", name="churn", version="1",
                         tarball=False)


def _serve(bundle: Path) -> tuple[subprocess.Popen[bytes], str]:
    from mlship.local.environment import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlship.serving", "serve", "--model", str(bundle), "--host",
                             "127.0.0.1", "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("mlship serve exited before answering /ping")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:  # noqa: S310 - loopback
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("mlship serve did not become ready")


def _run(url: str, bundle: Path, quick: bool) -> tuple[list[Any], Any, Any]:
    """The stairs ``repeats`` times (the machine is shared: one run's knee is noisy), then a closed
    loop at the median run's knee rate; returns (every run, the median run, the closed-loop run)."""
    from mlship.loadtest.bodies import from_bundle
    from mlship.loadtest.plan import Plan
    from mlship.loadtest.run import CostBasis, loadtest
    from mlship.loadtest.summary import Slo

    rates = [100.0, 200.0, 400.0, 600.0, 800.0, 1000.0, 1200.0, 1400.0, 1700.0, 2000.0, 2500.0]
    slo = Slo(p99_ms=P99_MS, error_rate=ERROR_RATE)
    bodies = from_bundle(str(bundle), count=200)
    step = 3.0 if quick else 6.0
    runs = [loadtest(url, bodies, Plan(slo=slo, rates=rates, step_duration=step, warmup=2.0, max_duration=180.0),
                     REPORT_DIR / f"run-{i + 1}", cost=CostBasis(instance_type="ml.c5.large"))
            for i in range(1 if quick else 3)]
    ranked = sorted(runs, key=lambda r: (r.report["knee"] or {}).get("achieved_rps") or 0.0)
    median = ranked[len(ranked) // 2]
    knee, closed = median.report["knee"], None
    if knee is not None:  # the same rate measured the closed-loop way, for the coordinated-omission contrast
        closed = loadtest(url, bodies, Plan(slo=slo, rate=knee["target_rps"], step_duration=step, warmup=0.0,
                                            closed_loop=True, closed_concurrency=4, max_duration=60.0),
                          REPORT_DIR / "closed")
    return runs, median, closed


def _table(knee: dict[str, Any] | None, knees: list[float | None], client_limited: bool) -> list[dict[str, Any]]:
    if knee is None:
        return []
    slo_text = f"p99 <= {P99_MS:g} ms, errors <= {ERROR_RATE:.1%}"
    limited = "; the load generator on the same cores fell behind first" if client_limited else ""
    spread = f", median of {len(knees)} runs: {', '.join(f'{k:.0f}' for k in knees if k)}" if len(knees) > 1 else ""
    return [{"benchmark": f"mlship serve knee: highest offered rate meeting {slo_text} (open model, "
                          f"{os.cpu_count()} workers, 1 record/request{limited}{spread})",
             "mlship": round(knee["achieved_rps"], 1), "unit": "requests/s (higher is better)"},
            {"benchmark": "mlship serve p99 at the knee, from the intended send time",
             "mlship": round(knee["latency_ms"]["p99"], 2), "unit": "ms"}]


def main(quick: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _bundle(Path(tmp))
        proc, url = _serve(bundle)
        try:
            runs, median, closed = _run(url, bundle, quick)
        finally:
            proc.terminate()
            proc.wait(30)
    report = median.report
    knee, failing = report["knee"], next((s for s in report["steps"] if not s["meets_slo"]), None)
    client_limited = bool(failing and failing["sent_rps"] < 0.95 * failing["target_rps"])
    knees = [(r.report["knee"] or {}).get("achieved_rps") for r in runs]
    table = _table(knee, knees, client_limited)
    raw = {"knees_rps": knees, "steps": report["steps"], "knee": knee, "stress": report.get("stress"),
           "recovery": report.get("recovery"), "closed_loop_at_knee": closed.report.get("closed_loop") if closed
           else None, "open_loop_at_knee_rerun": closed.report["steps"][0] if closed else None,
           "client_limited": client_limited, "cost": report.get("cost"), "stopped_by": report.get("stopped_by"),
           "settings": {"quick": quick, "slo": report["slo"], "rates": report["plan"]["rates"],
                        "step_duration_s": report["plan"]["step_duration"], "workers": os.cpu_count()},
           "notes": ["load generator: mlship loadtest (asyncio + aiohttp, open model) in the same machine as the "
                     "server: the two share the cores, and other work on the machine moves the knee (the runs' "
                     "knees are in knees_rps; the table shows the median run)",
                     "client_limited: the generator sent less than 95% of the offered rate at the first failing "
                     "step (then the knee is the generator's as much as the server's)",
                     "cost: ml.c5.large list price (mlship/loadtest/prices.py) at the knee rate; this machine "
                     "is not a c5.large, so it is an illustration of the calculation"]}
    path = write_results("loadtest", table, raw)
    for row in table:
        print(f"{row['benchmark']}: {row['mlship']} {row['unit']}")
    print(f"client limited: {client_limited}; HTML reports: {REPORT_DIR}; results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
