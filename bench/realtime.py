"""Real-time benchmark: the prediction Lambda as deployed and ``mlship serve``, against baselines.

Measured in one run on the same model (the churn ColumnTransformer + HistGradientBoosting
pipeline):

* warm handler latency (p50/p99) for one record in an API Gateway event, **from the built asset**
  (``build/lambda/predict``, python3.12) **in the deployed environment** (capture as the API stack
  configures it: one log line per request by default; :mod:`bench.deployed`), against raw
  ``session.run`` in the same process and a scikit-learn handler (json -> DataFrame ->
  ``predict_proba``); the same asset with ``CAPTURE_MODE=off`` shows what capture costs;
* cold start, fresh process to first answer (model already local): the built asset with its
  ``.pyc``, the same asset without them, and the scikit-learn handler (dev venv);
* Lambda package size (zipped/unzipped): the mlship asset vs a scikit-learn package built the
  same way (pip ``--platform manylinux`` for Python 3.12, tests and caches removed);
* ``mlship serve`` requests/s and p99 under load vs a naive single-process scikit-learn
  server (``http.server``), with a bounded Python load generator (keep-alive connections,
  loopback only, bounded in time and count); ``BENCH_LOAD_TOOL=wrk`` switches to wrk.

Run: ``.venv/bin/python -m bench.realtime [--quick]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import summary, time_calls, write_results
from bench.deployed import cold_starts, deployed_environment, warm_asset, without_pyc

REPO = Path(__file__).resolve().parents[1]

SKLEARN_HANDLER = '''
import json, os
import joblib
import pandas as pd

MODEL = joblib.load(os.environ["SKLEARN_MODEL"])


def handler(event, context):
    body = json.loads(event["body"])
    rows = body.get("instances", [body]) if isinstance(body, dict) else body
    frame = pd.DataFrame(rows)
    proba = MODEL.predict_proba(frame)
    labels = MODEL.classes_[proba.argmax(axis=1)]
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"predictions": labels.tolist(), "probabilities": proba.tolist()})}
'''

SKLEARN_SERVER = '''
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
import joblib
import pandas as pd

MODEL = joblib.load(os.environ["SKLEARN_MODEL"])


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        rows = body.get("instances", [body]) if isinstance(body, dict) else body
        proba = MODEL.predict_proba(pd.DataFrame(rows))
        out = json.dumps({"predictions": MODEL.classes_[proba.argmax(axis=1)].tolist(),
                          "probabilities": proba.tolist()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(out)


HTTPServer.request_queue_size = 128  # the default (5) drops SYNs under 8 connections: 1 s retries
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''


class _Ctx:
    aws_request_id = "bench"
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"


def _event(record: dict[str, Any]) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/predict", "headers": {"Content-Type": "application/json"},
            "requestContext": {"requestId": "bench-1"}, "body": json.dumps(record), "isBase64Encoded": False}


def _setup(tmp: Path) -> dict[str, Any]:
    import joblib

    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import make_churn
    from mlship.local.train import split, train_pipeline

    train, holdout = split(make_churn(8000, seed=5))
    pipe = train_pipeline(train, "hgb")
    bundle = export_bundle(pipe, holdout, "churned", tmp / "churn", name="churn", version="1", tarball=False)
    joblib.dump(pipe, tmp / "model.joblib")
    features = holdout.drop(columns="churned")
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in features.iloc[0].to_dict().items()}
    (tmp / "sk").mkdir()
    (tmp / "sk" / "sk_handler.py").write_text(SKLEARN_HANDLER)
    (tmp / "sk" / "sk_server.py").write_text(SKLEARN_SERVER)
    return {"bundle": bundle, "model": tmp / "model.joblib", "record": record, "pipe": pipe, "sk_dir": tmp / "sk"}


# ---------------------------------------------------------------------------- the deployed asset
def _asset(env: dict[str, Any]) -> dict[str, Any]:
    """The built asset (``mlship package predict``), the runtime's Python and the deployed environment."""
    from mlship.deploy.lambda_asset import asset_info, build_lambda_asset, runtime_python, runtime_stand_in

    python = runtime_python()
    if python is None:
        raise RuntimeError("no Python 3.12 here (set $MLSHIP_RUNTIME_PYTHON): the asset cannot run")
    asset = build_lambda_asset("predict")
    return {"python": python, "asset": asset, "provided": runtime_stand_in(), "info": asset_info("predict") or {},
            "env": deployed_environment(env["bundle"]), "event": _event(env["record"])}


# ---------------------------------------------------------------------------- warm latency
def _sklearn_warm(env: dict[str, Any], n: int) -> dict[str, Any]:
    os.environ["SKLEARN_MODEL"] = str(env["model"])
    sys.path.insert(0, str(env["sk_dir"]))
    import sk_handler  # noqa: PLC0415 - written by _setup
    from threadpoolctl import threadpool_limits

    event, ctx = _event(env["record"]), _Ctx()
    with threadpool_limits(limits=1):  # OpenMP spinning under contention makes sklearn 10x slower
        return summary(time_calls(lambda: sk_handler.handler(event, ctx), n, warmup=20))


def warm_latency(env: dict[str, Any], deployed: dict[str, Any], n: int) -> dict[str, Any]:
    """The asset's handler in the deployed configuration (capture on), and with capture off, each with
    raw ``session.run`` in the same process; then the scikit-learn handler in this one."""
    import numpy as np
    import pandas as pd

    modes = {"capture_on": {}, "capture_off": {"CAPTURE_MODE": "off"}}
    asset = warm_asset(deployed["python"], deployed["asset"], deployed["provided"], deployed["env"],
                       deployed["event"], n, modes)
    sk = _sklearn_warm(env, max(200, n // 5))
    expected = env["pipe"].predict_proba(pd.DataFrame([env["record"]]))
    agree = float(np.abs(np.asarray(asset["answers"]["capture_on"]["probabilities"]) - expected).max())
    return {**{k: v for k, v in asset.items() if k != "answers"}, "sklearn_handler": sk, "max_prob_diff": agree,
            "capture_mode": deployed["env"].get("CAPTURE_MODE"),
            "sampling_percentage": deployed["env"].get("CAPTURE_SAMPLING_PERCENTAGE")}


# ---------------------------------------------------------------------------- cold start
def cold_start(env: dict[str, Any], deployed: dict[str, Any], runs: int) -> dict[str, Any]:
    """Fresh process to first answer: the asset (python3.12, .pyc), the asset without .pyc, and the
    scikit-learn handler (dev venv, compiled .pyc present)."""
    event = json.dumps(_event(env["record"]))
    sk_code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(env["sk_dir"])!r})
        import sk_handler
        r = sk_handler.handler(json.loads({event!r}), None)
        assert r["statusCode"] == 200, r
    """)
    sk_env = {**os.environ, "SKLEARN_MODEL": str(env["model"]), "OMP_NUM_THREADS": "1"}
    bare = without_pyc(deployed["asset"], REPO / "build" / "bench" / "predict-without-pyc")
    try:
        return cold_starts(deployed["python"], {"asset": deployed["asset"], "asset_without_pyc": bare},
                           deployed["provided"], deployed["env"], deployed["event"], runs,
                           extra={"sklearn": [sys.executable, "-c", sk_code]}, extra_env=sk_env)
    finally:
        shutil.rmtree(bare, ignore_errors=True)


# ---------------------------------------------------------------------------- package size
def package_sizes() -> dict[str, Any]:
    from mlship.deploy import lambda_asset as packaging

    asset = packaging.build_lambda_asset("predict")
    info = packaging.asset_info("predict") or {}
    sk_dir = REPO / "build" / "bench" / "sklearn-lambda"
    marker = sk_dir / ".complete"
    if not marker.is_file():
        shutil.rmtree(sk_dir, ignore_errors=True)
        sk_dir.mkdir(parents=True)
        req = sk_dir.parent / "sklearn-requirements.txt"
        req.write_text("scikit-learn==1.9.1\nscipy\npandas\nnumpy\njoblib\n")
        packaging._pip_install(req, sk_dir, packaging.PYTHON_VERSION, packaging.PLATFORMS["x86_64"])
        packaging._prune(sk_dir)
        marker.write_text("ok")
    sk_unzipped = packaging.dir_size(sk_dir)
    return {"mlship": {"unzipped": info.get("unzipped_bytes") or packaging.dir_size(asset),
                       "zipped": info.get("zipped_bytes") or packaging.zipped_size(asset)},
            "sklearn": {"unzipped": sk_unzipped, "zipped": packaging.zipped_size(sk_dir)}}


# ---------------------------------------------------------------------------- load
def _wrk(url: str, body: str, seconds: int, connections: int, threads: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                              "-s", script.name, url], capture_output=True, text=True, check=True,
                             timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def to_s(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    p50 = to_s(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = to_s(re.search(r"99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"tool": "wrk", "rps": rps, "p50": p50, "p99": p99, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else None, "connections": connections}


def _python_load(url: str, body: str, seconds: int, connections: int) -> dict[str, Any]:
    """A bounded keep-alive load generator (threads; loopback only; stops after ``seconds``)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname in ("127.0.0.1", "localhost"), "the load generator only targets loopback"
    deadline = time.perf_counter() + seconds
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    data = body.encode()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine = []
        while time.perf_counter() < deadline and len(mine) < 200_000:
            t0 = time.perf_counter()
            try:
                conn.request("POST", parts.path, body=data, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[0] += 1
                if resp.getheader("Connection", "").lower() == "close" or resp.version == 10:
                    conn.close()
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            except OSError:
                errors[0] += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    s = summary(lat)
    return {"tool": "python", "rps": len(lat) / elapsed, "p50": s["p50"], "p99": s["p99"], "non_2xx": errors[0],
            "connections": connections}


def _load(url: str, body: str, seconds: int, connections: int) -> dict[str, Any]:
    """The bounded Python generator by default; ``BENCH_LOAD_TOOL=wrk`` uses wrk (``apt-get install -y
    wrk``). wrk completed 0 requests against the naive baseline (close-per-request ``http.server``)
    on this machine, so both servers are measured with the Python generator unless asked."""
    if os.environ.get("BENCH_LOAD_TOOL") == "wrk" and shutil.which("wrk"):
        return _wrk(url, body, seconds, connections, threads=2)
    return _python_load(url, body, seconds, connections)


def _wait(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200 (bounded)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", parts.path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def serve_load(env: dict[str, Any], seconds: int, connections: int) -> dict[str, Any]:
    from mlship.local.environment import free_port

    body = json.dumps(env["record"])
    child_env = {**os.environ, "SKLEARN_MODEL": str(env["model"]), "OMP_NUM_THREADS": "1"}
    out: dict[str, Any] = {}
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlship.serving", "serve", "--model", str(env["bundle"]), "--host",
                             "127.0.0.1", "--port", str(port)], env=child_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc)
        _load(f"http://127.0.0.1:{port}/invocations", body, 2, connections)  # warm-up
        out["mlship_serve"] = _load(f"http://127.0.0.1:{port}/invocations", body, seconds, connections)
        out["mlship_serve"]["workers"] = os.cpu_count()
    finally:
        proc.terminate()
        proc.wait(30)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(env["sk_dir"] / "sk_server.py"), str(port)], env=child_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc)
        _load(f"http://127.0.0.1:{port}/invocations", body, 2, connections)
        out["sklearn_server"] = _load(f"http://127.0.0.1:{port}/invocations", body, seconds, connections)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def _row(benchmark: str, ours: float, theirs: float, baseline_name: str, unit: str, scale: float = 1.0,
         digits: int = 3) -> dict[str, Any]:
    return {"benchmark": benchmark, "mlship": round(ours * scale, digits), "baseline": round(theirs * scale, digits),
            "baseline_name": baseline_name, "ratio": round(theirs / ours, 2), "unit": unit}


def _table(warm: dict[str, Any], cold: dict[str, Any], sizes: dict[str, Any], load: dict[str, Any],
           connections: int) -> list[dict[str, Any]]:
    """The README rows: every comparison against a baseline measured in this run."""
    us, ms = 1e6, 1e3
    on, off, raw, sk = warm["capture_on"], warm["capture_off"], warm["raw_session_run"], warm["sklearn_handler"]
    deployed = f"Lambda handler, built asset, deployed config (capture {warm['capture_mode']}), warm, 1 record"
    asset, bare = cold["asset"]["first_answer"], cold["asset_without_pyc"]["first_answer"]
    serve, naive = load["mlship_serve"], load["sklearn_server"]
    return [
        _row(f"{deployed}, p50", on["p50"], sk["p50"], "scikit-learn handler", "us", us, 1),
        _row(f"{deployed}, p99", on["p99"], sk["p99"], "scikit-learn handler", "us", us, 1),
        _row(f"{deployed}, p50 vs raw session.run", on["p50"], raw["p50"],
             "raw onnxruntime session.run, same process", "us", us, 1),
        _row(f"{deployed}, p99 vs raw session.run", on["p99"], raw["p99"],
             "raw onnxruntime session.run, same process", "us", us, 1),
        _row("Lambda handler, built asset, warm p50: capture on vs capture off (the old rows' configuration)",
             on["p50"], off["p50"], "same handler, CAPTURE_MODE=off, same process", "us", us, 1),
        _row("Lambda handler, built asset, warm p99: capture on vs capture off (the old rows' configuration)",
             on["p99"], off["p99"], "same handler, CAPTURE_MODE=off, same process", "us", us, 1),
        _row("cold start, built asset (python3.12, .pyc), fresh process to first answer, median", asset["median"],
             bare["median"], "same asset without .pyc", "s"),
        _row("cold start, built asset, fresh process to first answer, median", asset["median"],
             cold["sklearn"]["first_answer"]["median"], "scikit-learn handler (dev venv, .pyc)", "s"),
        _row("Lambda package, zipped", sizes["mlship"]["zipped"], sizes["sklearn"]["zipped"], "scikit-learn package",
             "MB", 1e-6, 1),
        _row("Lambda package, unzipped (limit 262 MB)", sizes["mlship"]["unzipped"], sizes["sklearn"]["unzipped"],
             "scikit-learn package", "MB", 1e-6, 1),
        {**_row(f"mlship serve throughput, 1 record/request, {connections} connections ({serve['tool']})",
                serve["rps"], naive["rps"], "single-process scikit-learn http.server", "requests/s", 1.0, 1),
         "ratio": round(serve["rps"] / naive["rps"], 1)},
        _row(f"mlship serve p99 latency under load ({serve['tool']})", serve["p99"], naive["p99"],
             "single-process scikit-learn http.server", "ms", ms, 2),
    ]


def main(quick: bool = False) -> None:
    n_warm = 1000 if quick else 5000
    cold_runs = 5 if quick else 11
    load_seconds = 5 if quick else 15
    connections = 8
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        deployed = _asset(env)
        print("warm handler latency (built asset, deployed environment) ...", flush=True)
        warm = warm_latency(env, deployed, n_warm)
        print("cold start (built asset) ...", flush=True)
        cold = cold_start(env, deployed, cold_runs)
        print("package sizes ...", flush=True)
        sizes = package_sizes()
        print("mlship serve under load ...", flush=True)
        load = serve_load(env, load_seconds, connections)
    table = _table(warm, cold, sizes, load, connections)
    environment = {k: v for k, v in deployed["env"].items() if k != "MLSHIP_PUBLIC_KEY"}
    raw = {"warm": warm, "cold_start": cold, "package_bytes": sizes, "load": load,
           "deployed": {"python": deployed["python"], "asset": str(deployed["asset"]),
                        "pyc_compiled": deployed["info"].get("pyc_compiled"), "environment": environment},
           "settings": {"quick": quick, "n_warm": n_warm, "cold_runs": cold_runs, "load_seconds": load_seconds,
                        "connections": connections, "model": "churn ColumnTransformer + HistGradientBoosting"},
           "notes": ["warm and cold: build/lambda/predict run by python3.12 with sys.path as Lambda's (the asset, "
                     "then boto3 as /var/runtime has it) and the environment the API stack sets (bench/deployed.py); "
                     "MODEL_URI is a local bundle: the model already in /tmp",
                     "warm: handler and raw session.run interleaved in blocks in one process; stdout (capture "
                     "lines, EMF) to /dev/null; scikit-learn handler in the dev venv (Python 3.11)",
                     "cold start: process start to first answer; the asset without .pyc is run with "
                     "PYTHONDONTWRITEBYTECODE (Lambda's /var/task is read-only: it recompiles on every cold start)",
                     "scikit-learn baselines run with OMP_NUM_THREADS=1 (threadpool_limits(1) in process): "
                     "with OpenMP threads on a loaded 2-core machine they were ~10x slower",
                     "package sizes: pip --platform manylinux_2_28/2014 x86_64 for Python 3.12, tests removed",
                     f"load generator: {load['mlship_serve']['tool']} (the client shares the 2 cores with the server)"]}
    path = write_results("realtime", table, raw)
    for row in table:
        print(f"{row['benchmark']}: mlship {row['mlship']} {row['unit']} vs {row['baseline_name']} "
              f"{row['baseline']} (ratio {row['ratio']})")
    print(f"results: {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    main(quick=parser.parse_args().quick)
