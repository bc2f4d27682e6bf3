"""SIGKILL the agent at random points of an update: the device must always keep a valid,
verifiable model that passes its golden examples.

Each update runs the agent's real entry point (``edge.agent.__main__.main``) in its own process,
killed with SIGKILL at a random delay. To fit 50+ kills in the test budget, the processes are
forked from a pre-imported parent (a "zygote", like Android's) instead of paying interpreter
start-up for each; the last update of the test is a fresh ``python -m mlship.edge.agent`` process that
must recover whatever the kills left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mlship.edge.agent.device import Device
from mlship.edge.package import verify_package

from mlship.runtime.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]
KILLS = 50

ZYGOTE = r"""
import json, os, sys
from mlship.edge.agent.__main__ import main
import mlship.runtime.predictor, mlship.runtime.signing, onnxruntime  # what the agent loads anyway
out = sys.stdout
out.write("ready\n"); out.flush()
for line in sys.stdin:
    argv = json.loads(line)
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1); os.dup2(null, 2)
        try:
            code = main(argv)
        except BaseException:
            code = 3
        os._exit(code)
    out.write(f"{pid}\n"); out.flush()
    sys.stdin.readline()  # "reap": until then an exited child stays a zombie, so its pid cannot be reused
    _, status = os.waitpid(pid, 0)
    out.write(f"{status}\n"); out.flush()
"""


def _assert_valid(device: Device) -> str:
    current = device.current_dir()
    assert current is not None, "no current model after a kill"
    bundle = verify_package(current, device.trusted_keys())  # hashes + signature by a trusted key
    Predictor.load(current, public_key=next(iter(device.trusted_keys().values())), check_golden=True)
    return bundle.version


def test_sigkill_during_updates_never_bricks(tmp_path: Path, signing_keys: Path, versioned) -> None:
    packages = {"1.0.0": versioned("1.0.0"), "1.1.0": versioned("1.1.0")}
    root = tmp_path / "dev"
    device = Device.init(root, [signing_keys / "mlship.pub"], device_id="crash")
    assert device.install(packages["1.0.0"]).outcome == "installed"

    def other(version: str) -> str:
        return str(packages["1.1.0" if version == "1.0.0" else "1.0.0"])

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    zygote = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    rng = random.Random(1234)
    kills, completed, mid_update, seen = 0, 0, 0, Counter()
    durations: list[float] = []
    try:
        assert zygote.stdout.readline().strip() == "ready"

        def update(version: str, delay: float | None) -> int:
            started = time.monotonic()
            zygote.stdin.write(
                json.dumps(["--device", str(root), "install", other(version), "--allow-downgrade"]) + "\n"
            )
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            if delay is not None:
                time.sleep(delay)
                os.kill(pid, signal.SIGKILL)  # our own grandchild, by pid (not yet reaped: a zombie at worst)
            zygote.stdin.write("reap\n")
            zygote.stdin.flush()
            status = int(zygote.stdout.readline())
            if os.WIFEXITED(status):
                assert os.WEXITSTATUS(status) == 0, f"agent exited with {os.WEXITSTATUS(status)}"
                durations.append(time.monotonic() - started)
            return status

        for _ in range(3):  # calibrate: how long one update takes on this machine right now
            update(_assert_valid(device), None)
        for _ in range(KILLS * 4):
            version = _assert_valid(device)
            status = update(version, rng.uniform(0, statistics.median(durations[-5:])))
            if os.WIFSIGNALED(status):
                kills += 1
                state, phase = device.status().get("state"), device._journal().get("phase")
                seen[f"{state}/{phase}"] += 1
                mid_update += state not in ("idle", None) or phase not in ("idle", None)
            else:
                completed += 1
            _assert_valid(device)
            if kills >= KILLS:
                break
    finally:
        zygote.stdin.close()
        zygote.wait(60)
    assert kills >= KILLS, f"only {kills} kills landed ({completed} updates finished first)"
    assert mid_update > 0, f"no kill landed during an update: {seen}"
    # a fresh agent process recovers from whatever the last kill left and completes an update
    version = _assert_valid(device)
    fresh = subprocess.run(
        [sys.executable, "-m", "mlship.edge.agent", "--device", str(root), "install", other(version),
         "--allow-downgrade"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert _assert_valid(device) != version
    kept = {p.name for p in (root / "versions").iterdir()}
    assert kept <= {device.current_dir().name, device.previous_dir().name}, kept
    print(f"{kills} kills, {completed} updates finished first; state/journal at kill: {dict(seen)}")
