"""The local AWS: a moto server on ``localhost`` that the same boto3 code talks to.

``mlship local up`` starts it as a detached process and records its pid and URL in
``.mlship/local.json``; ``status`` and ``down`` read that file. Use
``eval "$(mlship local env)"`` to point boto3 (and the CDK CLI) at it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

DEFAULT_PORT = 5000
STATE_DIR = Path(os.environ.get("MLSHIP_STATE_DIR", ".mlship"))


def state_file() -> Path:
    return STATE_DIR / "local.json"


def free_port() -> int:
    """An unused TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers (any HTTP status) or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - local URL only
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


def start_moto_server(port: int | None = None, log_path: Path | None = None) -> dict[str, Any]:
    """Start ``moto_server`` on localhost in a new session; return ``{pid, port, url}``."""
    port = port or DEFAULT_PORT
    url = f"http://localhost:{port}"
    pid = _spawn_until_answering([sys.executable, "-m", "moto.server", "-H", "localhost", "-p", str(port)],
                                 f"{url}/moto-api/", log_path or Path(os.devnull))
    return {"pid": pid, "port": port, "url": url}


def _spawn_until_answering(command: list[str], probe_url: str, log_path: Path,
                           env: dict[str, str] | None = None) -> int:
    """Start ``command`` in a new session (output appended to ``log_path``) and wait until ``probe_url``
    answers; return its pid. A child that never answers is killed."""
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(probe_url)
    except TimeoutError:
        proc.kill()
        raise
    return proc.pid


def read_state() -> dict[str, Any] | None:
    path = state_file()
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def up(port: int | None = None, gateway_port: int | None = 0) -> dict[str, Any]:
    """Start the local AWS (and the sagemaker-runtime gateway unless ``gateway_port`` is None)
    unless it is already running; return its state."""
    state = read_state()
    if state and is_alive(state["moto"]["pid"]):
        return state
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    moto = start_moto_server(port, STATE_DIR / "moto.log")
    state = {"moto": moto, "endpoint_url": moto["url"], "started_at": time.time(), "services": {}}
    if gateway_port is not None:
        state["services"]["gateway"] = start_gateway(moto["url"], gateway_port, STATE_DIR)
    write_state(state)
    return state


def start_gateway(aws_url: str, port: int = 0, log_dir: Path | None = None) -> dict[str, Any]:
    """Start the local sagemaker-runtime gateway (``mlship.serving.gateway``) against ``aws_url``.

    It answers ``invoke_endpoint`` with real predictions from local ``mlship serve`` processes,
    which it starts in its own process group (so ``down`` stops them with it).
    """
    port = port or free_port()
    url = f"http://localhost:{port}"
    log_dir = log_dir or STATE_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AWS_ENDPOINT_URL": aws_url,
           "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
           "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")}
    env.pop("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", None)
    pid = _spawn_until_answering([sys.executable, "-m", "mlship.serving.gateway", "--host", "localhost",
                                  "--port", str(port), "--log-dir", str(log_dir.resolve())],
                                 f"{url}/ping", log_dir / "gateway.log", env)
    return {"pid": pid, "port": port, "url": url}


def write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, state_file())


def down() -> bool:
    """Stop every process recorded in the state file; return True if something was running."""
    state = read_state()
    if not state:
        return False
    pids = [state["moto"]["pid"]] + [s["pid"] for s in state.get("services", {}).values() if "pid" in s]
    for pid in pids:
        if is_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                os.kill(pid, signal.SIGTERM)
    state_file().unlink(missing_ok=True)
    return True


def env_exports(state: dict[str, Any]) -> dict[str, str]:
    """Environment variables that point boto3 and the CDK CLI at the local AWS."""
    exports = {"AWS_ENDPOINT_URL": state["endpoint_url"], "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
               "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", "us-east-1")}
    gateway = state.get("services", {}).get("gateway")
    if gateway:  # sagemaker-runtime calls go to the local gateway (real predictions)
        exports["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = gateway["url"]
    return exports
