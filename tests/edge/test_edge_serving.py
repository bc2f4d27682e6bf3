"""The agent as a process: only device-safe imports, local HTTP serving, offline watch directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mlship.local.environment import free_port, wait_http

REPO = Path(__file__).resolve().parents[2]
BLOCKED = (
    "boto3",
    "botocore",
    "pandas",
    "sklearn",
    "scipy",
    "pydantic",
    "pyarrow",
    "skl2onnx",
    "onnx",
    "typer",
    "rich",
    "matplotlib",
    "pyspark",
    "sagemaker",
    "aws_cdk",
)
ALLOWED_TOP = {"numpy", "onnxruntime", "cryptography", "mlship", "edge"}

SITECUSTOMIZE = f"""
import sys
BLOCKED = {BLOCKED!r}

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"device agent must not import {{name}}")
        return None

sys.meta_path.insert(0, _Blocker())
"""

REPORT = """
import atexit, json, os, sys
def _dump():
    with open(os.environ["EDGE_IMPORT_REPORT"], "w") as fh:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), fh)
atexit.register(_dump)
"""


def _env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE + REPORT)
    return {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}", "EDGE_IMPORT_REPORT": str(tmp_path / "mods.json")}


def _agent(env: dict[str, str], device: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlship.edge.agent", "--device", str(device), *args],
        cwd=tmp_cwd(env),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def tmp_cwd(env: dict[str, str]) -> str:
    return str(Path(env["EDGE_IMPORT_REPORT"]).parent)  # not the repo: nothing importable by accident


def test_agent_runs_with_heavy_libraries_blocked(tmp_path, signing_keys, versioned, golden_inputs) -> None:
    env = _env(tmp_path)
    probe = subprocess.run(
        [sys.executable, "-c", "import boto3"], env=env, capture_output=True, text=True, cwd=tmp_cwd(env)
    )
    assert probe.returncode != 0 and "device agent must not import boto3" in probe.stderr  # the blocker works
    device = tmp_path / "dev"
    assert _agent(env, device, "init", "--key", str(signing_keys / "mlship.pub")).returncode == 0
    run = _agent(env, device, "install", str(versioned("1.0.0")))
    assert run.returncode == 0, run.stderr
    usb = tmp_path / "usb"
    usb.mkdir()
    shutil.copy(versioned("1.1.0"), usb)
    watched = _agent(env, device, "run", "--watch", str(usb), "--once")
    assert watched.returncode == 0, watched.stderr
    pred = _agent(env, device, "predict", json.dumps(golden_inputs[:2]))
    assert pred.returncode == 0, pred.stderr
    body = json.loads(pred.stdout)
    assert body["model"]["version"] == "1.1.0" and len(body["predictions"]) == 2
    loaded = set(json.loads((tmp_path / "mods.json").read_text()))
    assert not loaded & set(BLOCKED)
    assert {"numpy", "onnxruntime", "cryptography"} <= loaded
    refused = _agent(env, device, "install", str(versioned("1.0.0")))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: update rejected: refusing downgrade")


def test_local_http_endpoint_serves_and_picks_up_updates(tmp_path, signing_keys, versioned, golden_inputs) -> None:
    env = _env(tmp_path)
    device = tmp_path / "dev"
    usb = tmp_path / "usb"
    usb.mkdir()
    assert _agent(env, device, "init", "--key", str(signing_keys / "mlship.pub")).returncode == 0
    shutil.copy(versioned("1.0.0"), usb)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.agent",
            "--device",
            str(device),
            "run",
            "--watch",
            str(usb),
            "--port",
            str(port),
            "--poll",
            "0.2",
        ],
        cwd=tmp_cwd(env),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/status", timeout=60)

        def get(path: str) -> tuple[int, dict]:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        def post(body: bytes, ctype: str = "application/json") -> tuple[int, dict]:
            req = urllib.request.Request(f"{base}/predict", data=body, headers={"Content-Type": ctype})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        def wait_version(version: str) -> dict:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                code, body = get("/health")
                status = get("/status")[1]  # the switch is visible before the update is committed
                if (
                    code == 200
                    and body["model"]["version"] == version
                    and status.get("state") == "idle"
                    and (status.get("current") or {}).get("version") == version
                ):
                    return body
                time.sleep(0.1)
            raise AssertionError(f"agent never served {version}: {get('/status')}")

        wait_version("1.0.0")
        code, body = post(json.dumps({"instances": golden_inputs}).encode())
        assert code == 200 and len(body["predictions"]) == len(golden_inputs)
        assert body["model"]["version"] == "1.0.0"
        code, body = post(json.dumps([{**golden_inputs[0], "tenure_months": "abc"}]).encode())
        assert code == 400 and body["errors"][0]["field"] == "tenure_months"
        shutil.copy(versioned("1.1.0"), usb)
        wait_version("1.1.0")
        code, body = post(json.dumps(golden_inputs[:1]).encode())
        assert code == 200 and body["model"]["version"] == "1.1.0"
        code, status = get("/status")
        assert status["current"]["version"] == "1.1.0" and status["previous"]["version"] == "1.0.0"
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, proc.stderr.read()
