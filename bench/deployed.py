"""The prediction Lambda measured as it is deployed: the built asset, its runtime's Python, its environment.

* :func:`deployed_environment`: the variables ``mlship/cdk/predict.py`` gives the function for
  the project's config (capture as ``api.capture`` configures it: one log line per request by
  default), plus the ones Lambda itself sets; only ``MODEL_URI`` differs, a local bundle, which is
  the state of a warm sandbox whose model is already in ``/tmp``.
* :func:`cold_starts`: fresh ``python3.12`` processes running ``build/lambda/predict`` with
  ``sys.path`` as Lambda builds it (the asset, then boto3 as ``/var/runtime`` provides it), from
  the process start to the first answer; the same asset without its ``.pyc`` (Lambda's read-only
  ``/var/task`` then compiles every module on every cold start) as the baseline of what they gain.
* :func:`warm_asset`: one such process answering ``n`` warm requests through ``handler.handler`` in
  each mode (capture as deployed, capture off: the environment read again between blocks),
  interleaved in blocks with raw ``session.run`` calls of the same loaded model (inputs prebuilt),
  so that machine noise hits every mode and the lower bound alike.

The processes write the capture lines and EMF metrics to a real file descriptor (/dev/null),
as Lambda's stdout is, not to an in-memory buffer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.common import summary

METRICS_NAMESPACE = "mlship"  # mlship/cdk/names.py (importing it loads aws_cdk)
RECORDS_PREFIX = "inference-records"
CONTEXT = ('type("Context", (), {"aws_request_id": "bench", "function_name": FUNCTION, '
           '"memory_limit_in_mb": 1024, "invoked_function_arn": ARN})()')


def deployed_environment(bundle: Path) -> dict[str, str]:
    """The predict function's variables as the API stack sets them (project config), Lambda's own
    variables, and ``MODEL_URI`` pointing at a local bundle (the model already downloaded)."""
    from mlship.config import load_project_config

    cfg = load_project_config()
    names, api = cfg.names, cfg.api
    env = {"MODEL_URI": str(bundle), "MLSHIP_MODEL_NAME": cfg.model.name,
           "MLSHIP_REGISTRY_BUCKET": names.bucket("123456789012", "us-east-1"),
           "RECORDS_BUCKET": names.bucket("123456789012", "us-east-1"), "RECORDS_PREFIX": RECORDS_PREFIX,
           "PREDICT_BACKEND": api.backend, "MAX_BODY_BYTES": str(api.max_body_bytes),
           "POWERTOOLS_SERVICE_NAME": "mlship-predict", "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
           **api.capture.environment(), **api.environment}
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": names.function_name, "AWS_LAMBDA_FUNCTION_VERSION": "7",
                  "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(api.memory_mb), "AWS_REGION": "us-east-1",
                  "AWS_DEFAULT_REGION": "us-east-1", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                  "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
                  "_X_AMZN_TRACE_ID": "Root=1-00000000-000000000000000000000000;Sampled=1",
                  "LANG": "en_US.UTF-8", "TZ": ":UTC", "PATH": "/usr/local/bin:/usr/bin:/bin",
                  "HOME": tempfile.gettempdir()}
    return {**lambda_env, **env}


def _prelude(asset: Path, provided: Path, env: dict[str, str]) -> str:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{env['AWS_LAMBDA_FUNCTION_NAME']}:live"
    return textwrap.dedent(f"""
        import sys, time
        sys.path[:0] = [{str(asset)!r}, {str(provided)!r}]  # /var/task, then /var/runtime
        FUNCTION, ARN = {env['AWS_LAMBDA_FUNCTION_NAME']!r}, {arn!r}
    """)


def _cold_code(asset: Path, provided: Path, env: dict[str, str], event: dict[str, Any], out: Path) -> str:
    return _prelude(asset, provided, env) + textwrap.dedent(f"""
        import handler  # the init phase: imports and, with AWS_LAMBDA_FUNCTION_NAME set, the model load
        imported = time.time()
        import json
        response = handler.handler(json.loads({json.dumps(event)!r}), {CONTEXT})
        answered = time.time()
        assert response["statusCode"] == 200, response
        with open({str(out)!r}, "w") as f:
            json.dump({{"imported": imported, "answered": answered,
                        "xray": "aws_xray_sdk" in sys.modules, "boto3": "boto3" in sys.modules}}, f)
    """)


def without_pyc(asset: Path, into: Path) -> Path:
    """A copy of ``asset`` (hard links) without its ``__pycache__`` directories."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(asset, into, copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def _cold_once(python: str, code: str, env: dict[str, str], out: Path) -> dict[str, float | bool]:
    started = time.time()
    subprocess.run([python, "-c", code], env=env, check=True, capture_output=True, cwd="/", timeout=120)
    doc = json.loads(out.read_text())
    return {"init": doc["imported"] - started, "first_answer": doc["answered"] - started, "xray": doc["xray"],
            "boto3": doc["boto3"]}


def cold_starts(python: str, variants: dict[str, Path], provided: Path, env: dict[str, str],
                event: dict[str, Any], runs: int, extra: dict[str, list[str]] | None = None,
                extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Median cold starts of each asset variant (interleaved runs); ``extra`` adds other commands
    (a baseline handler, run with ``extra_env``), timed from the process start to its exit."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in [*variants, *(extra or {})]}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cold.json"
        for _ in range(runs):
            for name, asset in variants.items():
                no_pyc = {"PYTHONDONTWRITEBYTECODE": "1"}  # /var/task is read-only: nothing is cached
                results[name].append(_cold_once(python, _cold_code(asset, provided, env, event, out),
                                                {**env, **no_pyc}, out))
            for name, cmd in (extra or {}).items():
                started = time.perf_counter()
                subprocess.run(cmd, env=extra_env, check=True, capture_output=True, cwd="/", timeout=300)
                results[name].append({"first_answer": time.perf_counter() - started})
    summaries: dict[str, Any] = {}
    for name, runs_of in results.items():
        summaries[name] = {"first_answer": summary([r["first_answer"] for r in runs_of])}
        if "init" in runs_of[0]:
            summaries[name]["init"] = summary([r["init"] for r in runs_of])
            summaries[name]["imports_xray"] = any(r["xray"] for r in runs_of)
            summaries[name]["imports_boto3"] = any(r["boto3"] for r in runs_of)
    return summaries


def _warm_code(asset: Path, provided: Path, env: dict[str, str], event: dict[str, Any], n: int,
               modes: dict[str, dict[str, str]], out: Path) -> str:
    return _prelude(asset, provided, env) + textwrap.dedent(f"""
        import json, os
        import handler
        event, context = json.loads({json.dumps(event)!r}), {CONTEXT}
        modes = {modes!r}

        def configure(mode):  # the environment of a mode, read again (handler.reset), loaded as init does
            os.environ.update({env!r})
            os.environ.update(modes[mode])
            handler.reset()
            handler._load_during_init()  # the init phase: the model loaded, what init built frozen for the GC
            predictor = handler.load_backend().predictor
            record = json.loads(event["body"])
            feeds = predictor.onnx_feeds(predictor.schema.validate([record]).columns)
            for _ in range(200):  # warm-up: the first calls of each allocate
                handler.handler(event, context)
                predictor.session.run(predictor._fetch, feeds)
            return lambda: predictor.session.run(predictor._fetch, feeds)

        def timed(fn, bucket, count):
            for _ in range(count):
                t0 = time.perf_counter()
                fn()
                bucket.append(time.perf_counter() - t0)

        times = {{name: [] for name in [*modes, "raw_session_run"]}}
        answers = {{}}
        block = 250
        for _ in range(max(1, {n} // block)):  # interleaved blocks: noise hits every mode and raw alike
            for mode in modes:
                raw = configure(mode)
                timed(lambda: handler.handler(event, context), times[mode], block)
                timed(raw, times["raw_session_run"], block // len(modes))
                answers[mode] = json.loads(handler.handler(event, context)["body"])
        with open({str(out)!r}, "w") as f:
            json.dump({{"times": times, "answers": answers, "xray": "aws_xray_sdk" in sys.modules,
                        "boto3": "boto3" in sys.modules}}, f)
    """)


def warm_asset(python: str, asset: Path, provided: Path, env: dict[str, str], event: dict[str, Any],
               n: int, modes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Warm handler latency (p50/p99) of each mode (variables over ``env``) and of raw ``session.run``,
    in one process running the asset, in interleaved blocks."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "warm.json"
        subprocess.run([python, "-c", _warm_code(asset, provided, env, event, n, modes, out)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/", timeout=900)
        doc = json.loads(out.read_text())
    return {**{name: summary(values) for name, values in doc["times"].items()}, "answers": doc["answers"],
            "imports_xray": doc["xray"], "imports_boto3": doc["boto3"]}
