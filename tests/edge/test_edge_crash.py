"""SIGKILL the real agent process at random points of an update: the device must always keep a
valid, verifiable model that passes its golden examples."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from edge.agent.device import Device
from edge.package import verify_package
from mlship.predictor import Predictor

REPO = Path(__file__).resolve().parents[2]
KILLS = 50


def _agent(device: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "edge.agent", "--device", str(device), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _assert_valid(device: Device) -> str:
    current = device.current_dir()
    assert current is not None, "no current model after a kill"
    bundle = verify_package(current, device.trusted_keys())  # hashes + signature by a trusted key
    Predictor.load(current, public_key=next(iter(device.trusted_keys().values())), check_golden=True)
    return bundle.version


def test_sigkill_during_updates_never_bricks(tmp_path: Path, signing_keys: Path, versioned) -> None:
    packages = {"1.0.0": versioned("1.0.0"), "1.1.0": versioned("1.1.0")}
    device = Device.init(tmp_path / "dev", [signing_keys / "mlship.pub"], device_id="crash")
    assert device.install(packages["1.0.0"]).outcome == "installed"

    def other(version: str) -> Path:
        return packages["1.1.0" if version == "1.0.0" else "1.0.0"]

    # calibrate the kill window on this machine: interpreter start-up and one full update
    t0 = time.monotonic()
    assert _agent(tmp_path / "dev", "status").wait(60) == 0
    startup = time.monotonic() - t0
    t0 = time.monotonic()
    assert _agent(tmp_path / "dev", "install", str(other("1.0.0")), "--allow-downgrade").wait(60) == 0
    full = time.monotonic() - t0
    rng = random.Random(1234)
    kills, mid_update, seen = 0, 0, Counter()
    for _ in range(KILLS * 3):
        version = _assert_valid(device)
        proc = _agent(tmp_path / "dev", "install", str(other(version)), "--allow-downgrade")
        time.sleep(rng.uniform(startup * 0.8, full * 1.1))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills += 1
            state = device.status().get("state")
            phase = device._journal().get("phase")
            seen[f"{state}/{phase}"] += 1
            mid_update += state not in ("idle", None) or phase not in ("idle", None)
        else:
            assert proc.returncode == 0
        _assert_valid(device)
        if kills >= KILLS:
            break
    assert kills >= KILLS, f"only {kills} kills landed (calibration: startup {startup:.2f}s, update {full:.2f}s)"
    assert mid_update > 0, f"no kill landed during an update: {seen}"
    # a clean run afterwards recovers: one update completes and leftovers are gone
    version = _assert_valid(device)
    assert _agent(tmp_path / "dev", "install", str(other(version)), "--allow-downgrade").wait(60) == 0
    assert _assert_valid(device) != version
    kept = {p.name for p in (tmp_path / "dev" / "versions").iterdir()}
    assert kept <= {device.current_dir().name, device.previous_dir().name}, kept
    print(f"{kills} kills; states at kill: {dict(seen)}")
