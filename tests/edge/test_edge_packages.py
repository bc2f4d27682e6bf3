"""Malformed packages and version ordering on the device (issue 11, items 5 and 6).

A malformed package (wrong JSON types in signature.json or manifest.json, a truncated archive)
must be a named rejection: status back to idle, no staging left, the old model still answering,
and never offered again by the watch loop. Versions order as PEP 440: ``1`` < ``1.2.3``, and
``1.0`` / ``01.0.0`` are the installed ``1.0.0``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from edge_helpers import repack
from mlship.edge.agent.__main__ import watch_once
from mlship.edge.agent.device import Device
from mlship.edge.agent.iot import OPERATION
from tamper import HOSTILE, archive, members

from mlship.runtime.hashing import sha256_file

REPO = Path(__file__).resolve().parents[2]


def _edit_json(name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
    def mutate(work: Path) -> None:
        path = work / name
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return mutate


def _set(key: str, value: Any) -> Callable[[Any], Any]:
    return lambda doc: {**doc, key: value}


MALFORMED: dict[str, Callable[[Path], None]] = {
    "signature-int": _edit_json("signature.json", _set("signature", 12345)),
    "signature-list": _edit_json("signature.json", lambda doc: [doc]),
    "signature-key-id-list": _edit_json("signature.json", _set("key_id", ["a", "b"])),
    "signature-digests-str": _edit_json("signature.json", _set("field_digests", "everything")),
    "signature-digests-list": _edit_json("signature.json", lambda doc: {**doc, "field_digests": [1, 2]}),
    "signature-algorithm-int": _edit_json("signature.json", _set("algorithm", 25519)),
    "manifest-files-list": _edit_json("manifest.json", lambda doc: {**doc, "files": sorted(doc["files"])}),
    "manifest-file-hash-int": _edit_json(
        "manifest.json", lambda doc: {**doc, "files": {k: 12345 for k in doc["files"]}}
    ),
    "manifest-list": _edit_json("manifest.json", lambda doc: [doc]),
    "manifest-model-str": _edit_json("manifest.json", _set("model", "model.onnx")),
    "manifest-edge-list": _edit_json("manifest.json", _set("edge", ["mlship-edge/1"])),
}


def _truncated(src: Path, out: Path) -> Path:
    data = src.read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


def _only_current_left(device: Device) -> None:
    """No staging, extraction or trash directory survives a rejection."""
    assert [p.name for p in device.versions.iterdir()] == [device.current_dir().name]


def _assert_refused_and_serving(device: Device, result: Any, golden_inputs: list[dict[str, Any]]) -> None:
    assert result.outcome == "rejected", result
    assert result.reason  # named
    status = device.status()
    assert status["state"] == "idle"  # not stuck at "verifying"
    assert status["last_update"]["outcome"] == "rejected"
    assert device.was_rejected(result.sha256)  # the watch loop never offers it again
    _only_current_left(device)
    assert device.predict(golden_inputs[:2]).model_version == "1.0.0"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_package_is_rejected_and_old_model_serves(
    device: Device, versioned, golden_inputs, tmp_path: Path, case: str
) -> None:
    bad = repack(versioned("2.0.0"), tmp_path / f"{case}.edge.tar.gz", mutate=MALFORMED[case])
    result = device.install(bad)
    _assert_refused_and_serving(device, result, golden_inputs)


def test_truncated_archive_is_rejected_and_old_model_serves(
    device: Device, versioned, golden_inputs, tmp_path: Path
) -> None:
    bad = _truncated(versioned("2.0.0"), tmp_path / "cut.edge.tar.gz")
    result = device.install(bad)
    _assert_refused_and_serving(device, result, golden_inputs)
    assert "not a readable bundle archive" in result.reason or "malformed" in result.reason


def test_watch_loop_survives_a_directory_of_malformed_packages(
    device: Device, versioned, golden_inputs, tmp_path: Path
) -> None:
    """The agent process itself: every bad package refused once, exit 0, old model serving."""
    usb = tmp_path / "usb"
    usb.mkdir()
    for case in ("signature-int", "signature-list", "manifest-files-list"):
        repack(versioned("2.0.0"), usb / f"{case}.edge.tar.gz", mutate=MALFORMED[case])
    _truncated(versioned("2.0.0"), usb / "truncated.edge.tar.gz")
    for _ in range(2):  # a second round finds nothing new to try
        run = subprocess.run(
            [sys.executable, "-m", "mlship.edge.agent", "--device", str(device.root), "run", "--watch", str(usb),
             "--once"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
    assert run.stderr.count("update rejected") == 0  # second round: all four were already refused
    assert len(device.status()["rejected"]) == 4
    _only_current_left(device)
    assert device.predict(golden_inputs[:1]).model_version == "1.0.0"


# ---------------------------------------------------------------------------- versions (item 6)
def test_shorter_version_is_a_downgrade(device: Device, versioned, golden_inputs) -> None:
    assert device.install(versioned("1.2.3")).outcome == "installed"
    refused = device.install(versioned("1"))
    assert refused.outcome == "rejected" and "refusing downgrade of churn-mlp from 1.2.3 to 1" in refused.reason
    assert device.predict(golden_inputs[:1]).model_version == "1.2.3"
    announced = device.install("http://127.0.0.1:9/never.tar.gz", announced_version="1", announced_name="churn-mlp")
    assert announced.outcome == "rejected" and "refusing downgrade" in announced.reason


@pytest.mark.parametrize("same", ["1.0", "01.0.0", "1.0.0.0"])
def test_equal_version_is_already_installed(device: Device, versioned, golden_inputs, same: str) -> None:
    current = device.current_dir()
    result = device.install(versioned(same))
    assert result.outcome == "unchanged" and result.ok
    assert "already installed" in result.reason
    assert device.current_dir() == current and device.previous_dir() is None  # no reinstall
    _only_current_left(device)
    assert device.predict(golden_inputs[:1]).model_version == "1.0.0"
    # even when downgrades are allowed, an equal version is not a reinstall
    assert device.install(versioned(same), allow_downgrade=True).outcome == "unchanged"
    assert device.current_dir() == current


def test_equal_version_in_the_watch_directory_is_tried_once(device: Device, versioned, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    usb.mkdir()
    shutil.copy(versioned("1.0"), usb)
    assert [r.outcome for r in watch_once(device, usb)] == ["unchanged"]
    assert watch_once(device, usb) == []  # not downloaded, extracted and verified every poll


@pytest.mark.parametrize("bad", ["not-a-version", "1.0-final!", "latest"])
def test_unparseable_package_version_is_rejected(
    device: Device, versioned, golden_inputs, bad: str
) -> None:
    result = device.install(versioned(bad), allow_downgrade=True)
    assert result.outcome == "rejected"
    assert f"version {bad!r} is not a valid PEP 440 version" in result.reason
    _only_current_left(device)
    assert device.predict(golden_inputs[:1]).model_version == "1.0.0"


def test_unparseable_announced_version_is_rejected_before_download(device: Device) -> None:
    result = device.install("http://127.0.0.1:9/never.tar.gz", announced_version="newest", announced_name="churn-mlp")
    assert result.outcome == "rejected" and "'newest' is not a valid PEP 440 version" in result.reason


def test_announced_version_matches_under_pep440(device: Device, versioned) -> None:
    result = device.install(versioned("2.0.0"), announced_version="2.0", sha256=sha256_file(versioned("2.0.0")))
    assert result.outcome == "installed", result.reason


def test_publish_refuses_a_version_devices_cannot_order(versioned) -> None:
    from mlship.edge.publish import PublishError, read_package

    refused = r"version 'latest' is not a valid PEP 440 version .*: devices would refuse it"
    with pytest.raises(PublishError, match=refused):
        read_package(versioned("latest"))
    assert read_package(versioned("01.0.0"))[0].version == "01.0.0"


@pytest.mark.parametrize(
    "document",
    [
        None,
        [1, 2],
        {"operation": OPERATION, "package": ["url"]},
        {"operation": OPERATION, "package": {"url": "http://127.0.0.1:9/x", "version": 12345}},
        {"operation": OPERATION, "package": {"url": "http://127.0.0.1:9/x", "sha256": 7}},
        {"operation": OPERATION, "package": {"url": "http://127.0.0.1:9/x"}, "options": "downgrade"},
    ],
)
def test_malformed_job_documents_are_rejected(device: Device, golden_inputs, document: Any) -> None:
    from mlship.edge.agent.iot import apply_job

    result = apply_job(device, {"job_id": "job-1", "thing": "dev-1", "document": document})
    assert result.outcome == "rejected" and result.reason
    assert device.status()["state"] == "idle"
    assert device.predict(golden_inputs[:1]).model_version == "1.0.0"


def test_package_failing_its_smoke_test_leaves_nothing_behind(
    device: Device, versioned, golden_inputs, tmp_path: Path, signing_keys: Path
) -> None:
    """Signed, verified, but its golden examples disagree with its model: refused after promotion."""
    from mlship.runtime.bundle import MANIFEST, hash_files, write_manifest

    def wrong_golden(work: Path) -> None:
        golden = json.loads((work / "golden.json").read_text())
        golden["expected"]["probabilities"] = [[1.0 - p for p in row] for row in golden["expected"]["probabilities"]]
        (work / "golden.json").write_text(json.dumps(golden))
        manifest = json.loads((work / MANIFEST).read_text())
        manifest["files"] = hash_files(work)
        if "sizes" in manifest:
            manifest["sizes"] = {rel: (work / rel).stat().st_size for rel in manifest["files"]}
        write_manifest(work, manifest)

    bad = repack(versioned("2.0.0"), tmp_path / "golden.edge.tar.gz", key=signing_keys / "mlship.key",
                 mutate=wrong_golden, sign_after=True)
    result = device.install(bad)
    assert result.outcome == "rejected" and result.reason.startswith("smoke test failed")
    assert result.version == "2.0.0"
    _only_current_left(device)
    assert device.predict(golden_inputs[:1]).model_version == "1.0.0"


# ---------------------------------------------------------------------------- hostile archives (tamper suite)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_rejected_and_old_model_serves(
    device: Device, versioned, golden_inputs, tmp_path: Path, case: str
) -> None:
    """The core tamper suite's hostile archives (links, devices, traversal, duplicates, unlisted or
    missing members) through the agent: each a named rejection, nothing written outside staging."""
    mutate, _, name = HOSTILE[case]
    bad = archive(tmp_path / f"{case}.edge.tar.gz", mutate(list(members(versioned("2.0.0")))))
    result = device.install(bad)
    _assert_refused_and_serving(device, result, golden_inputs)
    assert name in result.reason, result.reason
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_oversized_member_is_rejected_before_it_is_written(
    device: Device, versioned, golden_inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSHIP_MAX_MEMBER_BYTES", "1000")  # every model file is larger
    result = device.install(versioned("2.0.0"))
    monkeypatch.delenv("MLSHIP_MAX_MEMBER_BYTES")
    _assert_refused_and_serving(device, result, golden_inputs)
    assert "MLSHIP_MAX_MEMBER_BYTES" in result.reason, result.reason
