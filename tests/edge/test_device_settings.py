"""The device agent's environment: DeviceSettings, and how ``python -m mlship.edge.agent`` applies it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from mlship.edge.agent.__main__ import main
from mlship.edge.agent.settings import DeviceSettings

from mlship.runtime.archive import DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_MEMBER_BYTES, ExtractLimits
from mlship.runtime.settings import SettingsError

AGENT_VARIABLES = ("MLSHIP_DEVICE_DIR", "MLSHIP_AGENT_HOST", "MLSHIP_AGENT_PORT", "MLSHIP_AGENT_POLL_SECONDS",
                   "MLSHIP_MAX_BUNDLE_BYTES", "MLSHIP_MAX_MEMBER_BYTES")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in AGENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_cli_defaults_and_the_archive_caps() -> None:
    settings = DeviceSettings.from_env({})
    assert (settings.device_dir, settings.host, settings.port, settings.poll_seconds) == (None, "127.0.0.1", None, 30.0)
    assert settings.extract_limits() == ExtractLimits.from_env()
    assert settings.extract_limits() == ExtractLimits(DEFAULT_MAX_BUNDLE_BYTES, DEFAULT_MAX_MEMBER_BYTES)


def test_member_cap_defaults_to_a_smaller_total_cap() -> None:
    settings = DeviceSettings.from_env({"MLSHIP_MAX_BUNDLE_BYTES": "1000"})
    assert settings.extract_limits() == ExtractLimits(total_bytes=1000, member_bytes=1000)
    settings = DeviceSettings.from_env({"MLSHIP_MAX_BUNDLE_BYTES": "1000", "MLSHIP_MAX_MEMBER_BYTES": "10"})
    assert settings.extract_limits() == ExtractLimits(total_bytes=1000, member_bytes=10)


def test_values_are_parsed() -> None:
    settings = DeviceSettings.from_env({"MLSHIP_DEVICE_DIR": "/var/lib/mlship", "MLSHIP_AGENT_HOST": "0.0.0.0",
                                        "MLSHIP_AGENT_PORT": "8080", "MLSHIP_AGENT_POLL_SECONDS": "5"})
    assert (settings.device_dir, settings.host, settings.port, settings.poll_seconds) == (
        Path("/var/lib/mlship"), "0.0.0.0", 8080, 5.0)


@pytest.mark.parametrize(("variable", "value"), [
    ("MLSHIP_AGENT_PORT", "http"), ("MLSHIP_AGENT_PORT", "70000"), ("MLSHIP_AGENT_PORT", "0"),
    ("MLSHIP_AGENT_POLL_SECONDS", "often"), ("MLSHIP_AGENT_POLL_SECONDS", "0"),
    ("MLSHIP_MAX_BUNDLE_BYTES", "2GB"), ("MLSHIP_MAX_MEMBER_BYTES", "0"),
])
def test_bad_value_is_named(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        DeviceSettings.from_env({variable: value})
    assert (caught.value.variable, caught.value.value) == (variable, value)


def test_agent_exits_1_naming_a_bad_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLSHIP_AGENT_PORT", "http")
    assert main(["--device", str(tmp_path), "status"]) == 1
    assert capsys.readouterr().err.startswith("error: environment variable MLSHIP_AGENT_PORT='http' is invalid")


def test_device_dir_comes_from_the_environment(tmp_path: Path, signing_keys: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLSHIP_DEVICE_DIR", str(tmp_path / "device"))
    assert main(["init", "--key", str(signing_keys / "mlship.pub")]) == 0
    assert (tmp_path / "device").is_dir()
    capsys.readouterr()
    assert main(["status"]) == 0


def test_device_dir_is_required_somewhere(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["status"])
    assert caught.value.code == 2
    assert "MLSHIP_DEVICE_DIR" in capsys.readouterr().err


def _tarball(path: Path, size: int) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))
    return path


def test_device_extracts_within_its_settings_caps(tmp_path: Path, signing_keys: Path) -> None:
    from mlship.edge.agent.device import Device

    Device.init(tmp_path / "device", [signing_keys / "mlship.pub"])
    package = _tarball(tmp_path / "big.tar.gz", 1000)
    capped = Device(tmp_path / "device", extract_limits=ExtractLimits(total_bytes=100, member_bytes=100))
    result = capped.install(package)
    assert result.outcome == "rejected" and "100" in (result.reason or "")


def test_agent_refuses_packages_over_the_environment_cap(tmp_path: Path, signing_keys: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "device"
    assert main(["--device", str(device), "init", "--key", str(signing_keys / "mlship.pub")]) == 0
    monkeypatch.setenv("MLSHIP_MAX_BUNDLE_BYTES", "100")
    capsys.readouterr()
    assert main(["--device", str(device), "install", str(_tarball(tmp_path / "big.tar.gz", 1000))]) == 1
    assert "100" in capsys.readouterr().err
