"""Device agent: install, verification failures, downgrade, rollback, status, local serving."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import repack
from mlship.edge.agent.device import Device

from mlship.runtime.bundle import Bundle


def serving_version(device: Device, inputs: list[dict[str, Any]]) -> str:
    """The version that answers a real prediction (proves the model still serves)."""
    return device.predict(inputs).model_version


def test_install_switches_atomically_and_keeps_previous(device: Device, versioned, golden_inputs) -> None:
    first = device.current_dir()
    result = device.install(versioned("1.1.0"))
    assert result.outcome == "installed" and result.version == "1.1.0"
    assert Bundle(device.current_dir()).version == "1.1.0"
    assert device.previous_dir() == first
    assert (device.root / "current").is_symlink()
    assert serving_version(device, golden_inputs) == "1.1.0"
    status = json.loads((device.root / "status.json").read_text())
    assert status["state"] == "idle"
    assert status["current"]["version"] == "1.1.0" and status["previous"]["version"] == "1.0.0"
    assert status["last_update"]["outcome"] == "installed"
    # same package again: nothing changes
    assert device.install(versioned("1.1.0")).outcome == "unchanged"


def _flip_byte(name: str):
    def mutate(work: Path) -> None:
        data = bytearray((work / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (work / name).write_bytes(bytes(data))

    return mutate


@pytest.mark.parametrize("target", ["model.onnx", "golden.json"])
def test_tampered_file_is_rejected_and_old_model_serves(
    device: Device, versioned, golden_inputs, tmp_path, target: str
) -> None:
    bad = repack(versioned("2.0.0"), tmp_path / "bad.edge.tar.gz", mutate=_flip_byte(target))
    result = device.install(bad)
    assert result.outcome == "rejected"
    assert f"{target}: sha256 does not match" in result.reason
    assert serving_version(device, golden_inputs) == "1.0.0"
    assert device.status()["last_update"]["outcome"] == "rejected"
    assert [p.name for p in device.versions.iterdir()] == [device.current_dir().name]  # staging cleaned


def test_tampered_manifest_field_is_named(device: Device, versioned, tmp_path) -> None:
    def mutate(work: Path) -> None:
        manifest = json.loads((work / "manifest.json").read_text())
        manifest["edge"]["constraints"]["architectures"] = ["any", "riscv64"]
        (work / "manifest.json").write_text(json.dumps(manifest))

    bad = repack(versioned("2.0.0"), tmp_path / "bad.edge.tar.gz", mutate=mutate)
    result = device.install(bad)
    assert result.outcome == "rejected"
    assert "manifest.json field 'edge' does not match its signature" in result.reason


def test_wrong_key_is_rejected(device: Device, versioned, tmp_path, golden_inputs) -> None:
    from mlship.runtime.signing import generate_keypair

    other_key, _ = generate_keypair(tmp_path / "other")
    bad = repack(versioned("2.0.0"), tmp_path / "other.edge.tar.gz", key=other_key)
    result = device.install(bad)
    assert result.outcome == "rejected"
    assert "not trusted on this device" in result.reason
    assert serving_version(device, golden_inputs) == "1.0.0"


def test_unsigned_package_is_rejected(device: Device, versioned, tmp_path) -> None:
    bad = repack(
        versioned("2.0.0"), tmp_path / "unsigned.edge.tar.gz", mutate=lambda work: (work / "signature.json").unlink()
    )
    result = device.install(bad)
    assert result.outcome == "rejected" and "not signed" in result.reason


def test_downgrade_is_refused_unless_allowed(device: Device, versioned, golden_inputs) -> None:
    assert device.install(versioned("1.2.0")).outcome == "installed"
    refused = device.install(versioned("1.0.1"))
    assert refused.outcome == "rejected" and "refusing downgrade" in refused.reason
    assert serving_version(device, golden_inputs) == "1.2.0"
    allowed = device.install(versioned("1.0.1"), allow_downgrade=True)
    assert allowed.outcome == "installed" and serving_version(device, golden_inputs) == "1.0.1"


def test_announced_downgrade_is_refused_before_download(device: Device) -> None:
    result = device.install(
        "http://127.0.0.1:9/never-downloaded.tar.gz", announced_version="0.9.0", announced_name="churn-mlp"
    )
    assert result.outcome == "rejected" and "refusing downgrade" in result.reason


class _RangeServer:
    """A file server that honours Range requests and cuts the first full response short.

    Stands in for any HTTPS file host (S3 presigned URLs are exercised in test_edge_iot.py).
    """

    def __init__(self, payload: bytes, truncate_first: int | None):
        self.payload, self.truncate_first, self.requests = payload, truncate_first, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = outer.payload[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.truncate_first is not None and len(outer.requests) == 1:
                    self.wfile.write(body[: outer.truncate_first])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/pkg.edge.tar.gz"

    def close(self) -> None:
        self.httpd.shutdown()


def test_truncated_download_is_rejected_then_resumed(device: Device, versioned, golden_inputs) -> None:
    from mlship.runtime.hashing import sha256_file

    pkg = versioned("2.0.0")
    payload = pkg.read_bytes()
    server = _RangeServer(payload, truncate_first=len(payload) // 3)
    try:
        first = device.install(server.url, sha256=sha256_file(pkg))
        assert first.outcome == "rejected" and "truncated" in first.reason
        assert serving_version(device, golden_inputs) == "1.0.0"
        parts = list((device.root / "downloads").glob("*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == len(payload) // 3
        second = device.install(server.url, sha256=sha256_file(pkg))
        assert second.outcome == "installed", second.reason
        assert server.requests[1] == f"bytes={len(payload) // 3}-"  # resumed, not restarted
        assert serving_version(device, golden_inputs) == "2.0.0"
    finally:
        server.close()


def test_wrong_sha256_is_rejected(device: Device, versioned, golden_inputs) -> None:
    pkg = versioned("2.0.0")
    server = _RangeServer(pkg.read_bytes(), truncate_first=None)
    try:
        result = device.install(server.url, sha256="0" * 64)
        assert result.outcome == "rejected" and "sha256 of the download" in result.reason
        assert serving_version(device, golden_inputs) == "1.0.0"
    finally:
        server.close()


@pytest.fixture(scope="session")
def extra_feature_package(tmp_path_factory, churn_split, signing_keys) -> Path:
    """A model that needs a feature ('sensor_b') this device's inputs do not have: it passes its own
    golden examples, so only the device's health check can catch it."""
    import numpy as np
    from mlship.edge.build import build_edge

    from mlship.evaluation.export import export_bundle
    from mlship.local.train import train_pipeline

    train, holdout = (df.assign(sensor_b=np.arange(len(df)) % 7) for df in churn_split)
    model = train_pipeline(train, "logreg")
    root = tmp_path_factory.mktemp("extra")
    bundle = export_bundle(
        model,
        holdout,
        "churned",
        root / "b",
        name="churn-mlp",
        version="3.0.0",
        private_key=signing_keys / "mlship.key",
        tarball=False,
    )
    (result,) = build_edge(
        bundle, root / "pkg", private_key=signing_keys / "mlship.key", variants=["fp32"], latency_repeats=5
    )
    return Path(result.package)


def test_failed_health_check_rolls_back(
    tmp_path, signing_keys, versioned, golden_inputs, extra_feature_package: Path
) -> None:
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "canary.json").write_text(json.dumps(golden_inputs[:3]))
    dev = Device.init(tmp_path / "dev", [signing_keys / "mlship.pub"], canary="canary.json")
    assert dev.install(versioned("1.0.0")).outcome == "installed"
    result = dev.install(extra_feature_package)
    assert result.outcome == "rolled_back"
    assert "canary inputs do not fit the new model" in result.reason and "sensor_b" in result.reason
    assert serving_version(dev, golden_inputs) == "1.0.0"
    assert dev.status()["last_update"]["outcome"] == "rolled_back"
    assert dev.was_rejected(result.sha256)


BAD_REQUESTS = [
    {"instances": [{"tenure_months": "not a number"}]},
    [{"tenure_months": 3}],  # missing fields
    {"records": [{"tenure_months": 3}]},  # not the protocol
    {"instances": "x"},
    [],
]


def _end_window(device: Device) -> None:
    """The health window's deadline passes (without waiting for it)."""
    device._set_journal({**device._journal(), "deadline": 0})


def test_client_errors_in_the_health_window_do_not_roll_back(device: Device, versioned, golden_inputs, served) -> None:
    device.config.update(health_window_s=3600, min_requests=5, max_error_rate=0.2)
    result = device.install(versioned("1.1.0"))
    assert result.outcome == "probation" and device.status()["state"] == "probation"
    assert device.check_probation() is None  # no traffic yet: stays in probation
    statuses = [served.post_json(BAD_REQUESTS[i % len(BAD_REQUESTS)])[0] for i in range(20)]
    statuses += [served.request("POST", "/predict", b"{not json", {"Content-Type": "application/json"})[0]]
    statuses += [served.request("POST", "/predict", b"<x/>", {"Content-Type": "application/xml"})[0]]
    statuses += [served.request("POST", "/predict", b"a,b\n1", {"Content-Type": "text/csv"})[0]]
    statuses += [served.request("POST", "/predict", b"[]", {"Accept": "image/png"})[0]]
    statuses += [served.request("POST", "/predict", b"", length=None)[0]]
    assert len(statuses) == 25 and all(400 <= s < 500 for s in statuses), statuses
    assert device.check_probation() is None  # 25 client mistakes say nothing about the model
    assert served.post_json({"instances": golden_inputs[:2]})[0] == 200
    _end_window(device)
    committed = device.check_probation()
    assert committed is not None and committed.outcome == "installed"
    assert serving_version(device, golden_inputs) == "1.1.0"


def test_non_finite_outputs_in_the_health_window_roll_back(device: Device, nan_pkg, golden_inputs, served) -> None:
    device.config.update(health_window_s=3600, min_requests=5, max_error_rate=0.5)
    assert device.install(nan_pkg).outcome == "probation"
    crossing = {**golden_inputs[0], "monthly_charges": 5000.0}
    for _ in range(4):
        status, body = served.post_json({"instances": [crossing]})
        assert status == 500 and body["kind"] == "model_error", body
    assert served.post_json({"instances": golden_inputs[:1]})[0] == 200
    rolled = device.check_probation()
    assert rolled is not None and rolled.outcome == "rolled_back"
    assert "4 of 5 predictions failed" in rolled.reason
    assert serving_version(device, golden_inputs) == "1.0.0"
    assert device.status()["state"] == "idle"


def test_runtime_errors_in_the_health_window_roll_back(device: Device, versioned, golden_inputs, served) -> None:
    device.config.update(health_window_s=3600, min_requests=5, max_error_rate=0.5)
    assert device.install(versioned("1.1.0")).outcome == "probation"

    def broken_run(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("onnxruntime: secret internal detail")  # e.g. a kernel failing on this device

    device.predictor().run_session = broken_run
    for _ in range(5):
        status, _, body = served.request("POST", "/predict", json.dumps(golden_inputs[:1]).encode())
        assert status == 500 and json.loads(body)["kind"] == "internal"
        assert b"secret internal detail" not in body and b"RuntimeError" not in body
    rolled = device.check_probation()
    assert rolled is not None and rolled.outcome == "rolled_back" and "5 of 5" in rolled.reason
    assert serving_version(device, golden_inputs) == "1.0.0"


def test_slow_model_runs_in_the_health_window_roll_back(device: Device, versioned, golden_inputs) -> None:
    # a limit of 0 ms: every real model run is over it, without any timing in the test
    device.config.update(health_window_s=3600, min_requests=5, max_error_rate=0.5, max_latency_ms=0)
    assert device.install(versioned("1.1.0")).outcome == "probation"
    for _ in range(5):
        assert serving_version(device, golden_inputs) == "1.1.0"  # answered, but too slowly
    rolled = device.check_probation()
    assert rolled is not None and rolled.outcome == "rolled_back" and "5 of 5" in rolled.reason
    assert serving_version(device, golden_inputs) == "1.0.0"


def test_healthy_window_commits(device: Device, versioned, golden_inputs) -> None:
    device.config.update(health_window_s=0.01, min_requests=5)
    assert device.install(versioned("1.1.0")).outcome == "probation"
    serving_version(device, golden_inputs)
    import time

    time.sleep(0.05)
    committed = device.check_probation()
    assert committed is not None and committed.outcome == "installed"
    assert device.status()["state"] == "idle" and device._journal()["phase"] == "idle"


def test_status_survives_a_restart(device: Device, versioned) -> None:
    device.install(versioned("1.1.0"))
    again = Device(device.root)
    assert again.recover() == []
    assert again.status()["current"]["version"] == "1.1.0"


def test_package_must_match_the_announced_version(device: Device, versioned, golden_inputs) -> None:
    result = device.install(versioned("2.0.0"), announced_version="2.1.0")
    assert result.outcome == "rejected" and "announced version 2.1.0 but the package is 2.0.0" in result.reason
    assert serving_version(device, golden_inputs) == "1.0.0"


def test_recover_cleans_leftovers_and_keeps_current(device: Device, versioned) -> None:
    device.install(versioned("1.1.0"))
    current, previous = device.current_dir(), device.previous_dir()
    (device.versions / ".staging-dead").mkdir()
    (device.versions / ".staging-dead" / "model.onnx").write_bytes(b"half")
    orphan = device.versions / "churn-mlp-9.9.9-deadbeef"
    orphan.mkdir()
    os.symlink("versions/churn-mlp-9.9.9-deadbeef", device.root / ".current.tmp")
    assert Device(device.root).recover() == []
    assert device.current_dir() == current and device.previous_dir() == previous
    assert sorted(p.name for p in device.versions.iterdir()) == sorted([current.name, previous.name])
    assert not (device.root / ".current.tmp").exists()


def test_recover_finishes_an_interrupted_probation(device: Device, versioned) -> None:
    device.config.update(health_window_s=3600)
    assert device.install(versioned("1.1.0")).outcome == "probation"
    journal = device._journal()
    device._set_journal({**journal, "deadline": 0})  # the window ended while the agent was down
    notes = Device(device.root).recover()
    assert notes == ["committed 1.1.0 after a restart"]
    assert device._journal()["phase"] == "idle" and device.status()["last_update"]["outcome"] == "installed"


def test_recover_rolls_back_a_current_model_that_no_longer_verifies(device: Device, versioned, golden_inputs) -> None:
    device.install(versioned("1.1.0"))
    model = device.current_dir() / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10])  # storage corruption on the device
    notes = Device(device.root).recover()
    assert len(notes) == 1 and notes[0].startswith("rolled back: current model fails verification")
    fresh = Device(device.root)
    assert serving_version(fresh, golden_inputs) == "1.0.0"
