"""mlship.local.environment below the CLI: where state lives, names, exports, starting and stopping
real processes."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.helpers import wait_gone
from mlship.local import environment as local


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("MLSHIP_LOCAL_HOME", "MLSHIP_STATE_DIR", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return tmp_path


def test_state_dir_precedence(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert local.state_dir() == clean_env / "user" / ".local" / "state" / "mlship"
    monkeypatch.setenv("XDG_STATE_HOME", str(clean_env / "xdg"))
    assert local.state_dir() == clean_env / "xdg" / "mlship"
    monkeypatch.setenv("MLSHIP_STATE_DIR", str(clean_env / "legacy"))
    with pytest.warns(DeprecationWarning, match="MLSHIP_LOCAL_HOME"):
        assert local.state_dir() == clean_env / "legacy"
    monkeypatch.setenv("MLSHIP_LOCAL_HOME", str(clean_env / "home"))
    assert local.state_dir() == clean_env / "home"
    assert local.state_file() == clean_env / "home" / "local.json"


def test_state_dir_does_not_depend_on_the_current_directory(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_LOCAL_HOME", "relative-home")
    monkeypatch.chdir(clean_env)
    here = local.state_dir()
    assert here.is_absolute()
    monkeypatch.delenv("MLSHIP_LOCAL_HOME")
    seen = set()
    for folder in (clean_env, clean_env / "a", clean_env / "a" / "b"):
        folder.mkdir(exist_ok=True)
        monkeypatch.chdir(folder)
        seen.add(local.state_dir())
    assert len(seen) == 1


def test_state_writes_are_atomic_and_unreadable_state_is_none(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_LOCAL_HOME", str(clean_env / "home"))
    assert local.read_state() is None
    local.write_state({"moto": {"pid": 1}, "endpoint_url": "http://localhost:1"})
    assert local.read_state()["endpoint_url"] == "http://localhost:1"
    assert [p.name for p in (clean_env / "home").iterdir()] == ["local.json"]  # no temp file left
    local.state_file().write_text("{half")
    assert local.read_state() is None
    local.state_file().write_text("[1, 2]")
    assert local.read_state() is None


def test_env_exports_point_plane_services_at_the_plane() -> None:
    state = {"endpoint_url": "http://localhost:7001", "region": "eu-west-1", "data_bucket": "b-data",
             "moto": {"pid": 1}, "services": {"plane": {"pid": 2, "url": "http://localhost:7002"}}}
    exports = local.env_exports(state)
    assert exports["AWS_ENDPOINT_URL"] == "http://localhost:7001"
    assert {k: v for k, v in exports.items() if k.startswith("AWS_ENDPOINT_URL_")} == {
        "AWS_ENDPOINT_URL_SAGEMAKER": "http://localhost:7002",
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://localhost:7002",
        "AWS_ENDPOINT_URL_LAMBDA": "http://localhost:7002",
        "AWS_ENDPOINT_URL_CODEDEPLOY": "http://localhost:7002"}
    assert exports["AWS_REGION"] == exports["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert exports["MLSHIP_REGISTRY_BUCKET"] == "b-data"
    assert exports["AWS_ACCESS_KEY_ID"] == "testing"
    state["services"] = {}
    assert not any(k.startswith("AWS_ENDPOINT_URL_") for k in local.env_exports(state))


def test_the_project_cdk_json_is_found_from_a_subfolder(tmp_path: Path) -> None:
    other = tmp_path / "cdk.json"
    other.write_text(json.dumps({"app": "npx ts-node app.ts", "context": {"env": "x"}}))  # not an mlship one
    project = tmp_path / "project"
    (project / "src" / "pkg").mkdir(parents=True)
    (project / "cdk.json").write_text(json.dumps({"context": {"mlship": {}}}))
    assert local.find_project_cdk_json(project / "src" / "pkg") == project / "cdk.json"
    assert local.find_project_cdk_json(tmp_path) is None
    (project / "cdk.json").write_text("{broken")
    assert local.find_project_cdk_json(project / "src") == project / "cdk.json"  # the loader names the problem


_VALID = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@given(st.text(alphabet="abcz019.-_AZ ", min_size=0, max_size=70))
def test_bucket_name_check_accepts_only_s3_names(name: str) -> None:
    try:
        assert local.check_bucket_name(name) == name
    except local.BucketNameError as exc:
        assert repr(name) in str(exc)
    else:
        assert _VALID.match(name) and ".." not in name


@given(st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,61}[a-z0-9]\Z"))
def test_bucket_name_check_accepts_plain_names(name: str) -> None:
    if not (name.startswith("xn--") or name.endswith("-s3alias")):
        assert local.check_bucket_name(name) == name


def test_port_in_use_sees_a_listener_and_a_bound_socket() -> None:
    with socket.socket() as listener:
        listener.bind(("localhost", 0))
        listener.listen()
        assert local.port_in_use(listener.getsockname()[1])
    with socket.socket() as bound:
        bound.bind(("localhost", 0))
        assert local.port_in_use(bound.getsockname()[1])
    assert not local.port_in_use(local.free_port())


def test_a_child_that_exits_at_start_names_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    command = [sys.executable, "-c", "import sys; print('cannot bind, giving up', flush=True); sys.exit(3)"]
    with pytest.raises(local.StartFailed) as caught:
        local._spawn("test server", command, f"http://localhost:{local.free_port()}/", log)
    assert str(log) in str(caught.value) and "code 3" in str(caught.value)
    assert "cannot bind, giving up" in log.read_text()


def test_stopping_a_group_stops_its_children(tmp_path: Path) -> None:
    """The plane's ``mlship serve`` children share its process group: one killpg stops them all."""
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time, pathlib;"
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
              f"pathlib.Path({str(pid_file)!r}).write_text(str(c.pid)); time.sleep(600)")
    leader = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert local.is_alive(child)
        local._stop_group(leader.pid, timeout=5)
        leader.wait(timeout=10)
        assert wait_gone(child)
    finally:
        if leader.poll() is None:
            leader.kill()


def test_is_ours_rejects_a_reused_pid() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            assert local.is_ours({"pid": other.pid})
            assert not local.is_ours({"pid": other.pid, "module": "moto.server"})
        finally:
            other.kill()
    assert not local.is_ours({"pid": other.pid, "module": "moto.server"})
