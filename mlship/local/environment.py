"""The local AWS: a moto server on ``localhost`` plus the local control plane in front of it.

``mlship local up`` starts ``python -m moto.server`` and ``python -m mlship.local.plane`` as
detached processes (each in its own session, so ``down`` stops a process and its children with
one ``killpg``), creates the project's buckets and records everything in one per-user state file
(:func:`state_dir`), so ``status``, ``env`` and ``down`` work from any directory. Use
``eval "$(mlship local env)"`` to point boto3 (and the CDK CLI) at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

DEFAULT_PORT = 5000
DEFAULT_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# services the control plane answers (the rest of AWS is moto's); boto3 reads these natively
PLANE_SERVICES = ("SAGEMAKER", "SAGEMAKER_RUNTIME", "LAMBDA", "CODEDEPLOY")
STATE_VERSION = 2
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MOTO_MODULE, PLANE_MODULE = "moto.server", "mlship.local.plane"


class LocalEnvironmentError(MlshipError):
    """The local AWS could not be started or stopped as asked."""


class PortInUse(LocalEnvironmentError):
    """A port the local AWS needs is taken by another process."""

    def __init__(self, service: str, port: int, option: str) -> None:
        super().__init__(f"port {port} for the {service} is already in use by another process: "
                         f"choose another with `{option} PORT`")
        self.service, self.port, self.option = service, port, option


class StartFailed(LocalEnvironmentError):
    """A process exited or never answered while starting."""

    def __init__(self, service: str, reason: str, log_path: Path) -> None:
        super().__init__(f"the {service} {reason}; see its log: {log_path}")
        self.service, self.log_path = service, log_path


class BucketNameError(LocalEnvironmentError):
    """A bucket name S3 would refuse."""


# ---------------------------------------------------------------- where the state lives
def state_dir() -> Path:
    """The per-user directory of the local AWS's state and logs.

    ``$MLSHIP_LOCAL_HOME``; else the deprecated ``$MLSHIP_STATE_DIR`` (still used by the test
    suite and the demo to isolate runs); else the user state directory (platformdirs when it is
    installed, else ``$XDG_STATE_HOME/mlship`` or ``~/.local/state/mlship``). Never the current
    directory, so every command finds the same local AWS wherever it runs.
    """
    home = os.environ.get("MLSHIP_LOCAL_HOME")
    if home:
        return Path(home).expanduser().absolute()
    legacy = os.environ.get("MLSHIP_STATE_DIR")
    if legacy:
        warnings.warn("MLSHIP_STATE_DIR is deprecated: use MLSHIP_LOCAL_HOME", DeprecationWarning, stacklevel=2)
        return Path(legacy).expanduser().absolute()
    return _user_state_dir()


def _user_state_dir() -> Path:
    try:
        import platformdirs
    except ImportError:  # not a declared dependency: fall back to the XDG rule it implements on Linux
        xdg = os.environ.get("XDG_STATE_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
        return base / "mlship"
    return Path(platformdirs.user_state_dir("mlship", appauthor=False))


def state_file() -> Path:
    """The JSON file that records the running local AWS."""
    return state_dir() / "local.json"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise ``up`` and ``down`` across processes (two shells running ``up`` at once)."""
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "local.lock", "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unserialised
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_state() -> dict[str, Any] | None:
    """The recorded state, or None when there is none (or it is unreadable)."""
    path = state_file()
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("moto"), dict) else None


def write_state(state: dict[str, Any]) -> None:
    """Replace the state file atomically (readers never see half a file)."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


# ---------------------------------------------------------------- ports and processes
def free_port() -> int:
    """An unused TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "localhost") -> bool:
    """True when something listens on ``port`` or the port cannot be bound on ``host``."""
    for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(address) == 0:
                return True
    with socket.socket() as sock:
        # the servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free, as it is for them
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def is_alive(pid: int) -> bool:
    """True when ``pid`` runs (a zombie, waiting for its parent to reap it, does not)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): signal 0 is all we know
    return status != "Z"


def is_ours(service: dict[str, Any]) -> bool:
    """True when the recorded process still runs and is the program we started (a reused pid is not)."""
    pid = service.get("pid")
    if not isinstance(pid, int) or not is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True
    module = service.get("module")
    return module is None or module.encode() in cmdline


def wait_http(url: str, timeout: float = START_TIMEOUT, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status) or raise TimeoutError.

    With ``proc``, raise ChildProcessError as soon as that process exits (it will never answer)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ChildProcessError(f"exited with code {proc.returncode} while starting")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - local URL only
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s ({last})")


def _spawn(service: str, command: list[str], probe_url: str, log_path: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` in a new session (output appended to ``log_path``) and wait until
    ``probe_url`` answers; a child that exits or never answers is stopped and reported."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        wait_http(probe_url, proc=proc)
    except ChildProcessError as exc:
        raise StartFailed(service, str(exc), log_path) from None
    except TimeoutError:
        _stop_group(proc.pid)
        raise StartFailed(service, f"did not answer {probe_url} within {START_TIMEOUT:.0f}s", log_path) from None
    return proc


def _stop_group(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group led by ``pid``, wait for the leader, then SIGKILL what is left."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return  # the group is gone
    deadline = time.monotonic() + timeout
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)  # children that ignored SIGTERM, or a leader that hung


# ---------------------------------------------------------------- the two servers
def start_moto_server(port: int | None = None, log_path: Path | None = None) -> dict[str, Any]:
    """Start moto's own server (``python -m moto.server``) on localhost in a new session; return
    ``{pid, port, url, module, log}``. Raises PortInUse or StartFailed."""
    port = port or DEFAULT_PORT
    if port_in_use(port):
        raise PortInUse("moto server", port, "--port")
    url = f"http://localhost:{port}"
    log_path = log_path or Path(os.devnull)
    proc = _spawn("moto server", [sys.executable, "-m", MOTO_MODULE, "-H", "localhost", "-p", str(port)],
                  f"{url}/moto-api/", log_path)
    return {"pid": proc.pid, "port": port, "url": url, "module": MOTO_MODULE, "log": str(log_path)}


def start_plane(upstream: str, port: int = 0, log_dir: Path | None = None,
                time_scale: float = 1.0) -> dict[str, Any]:
    """Start the local control plane (``python -m mlship.local.plane``) in front of moto at ``upstream``.

    It answers SageMaker, sagemaker-runtime, Lambda and CodeDeploy calls and passes the rest to
    moto; the ``mlship serve`` and Lambda processes it starts stay in its process group, so
    stopping the group stops them too. Raises PortInUse or StartFailed."""
    if port and port_in_use(port):
        raise PortInUse("control plane", port, "--plane-port")
    port = port or free_port()
    url = f"http://localhost:{port}"
    log_dir = (log_dir or state_dir()).absolute()
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_ENDPOINT_URL")}
    env.pop("AWS_PROFILE", None)  # the plane's own calls go to moto, with moto's credentials
    env.update({**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": upstream})
    command = [sys.executable, "-m", PLANE_MODULE, "--upstream", upstream, "--host", "localhost",
               "--port", str(port), "--log-dir", str(log_dir), "--time-scale", repr(float(time_scale))]
    proc = _spawn("control plane", command, f"{url}/ping", log_dir / "plane.log", env)
    return {"pid": proc.pid, "port": port, "url": url, "module": PLANE_MODULE, "log": str(log_dir / "plane.log"),
            "time_scale": float(time_scale)}


# ---------------------------------------------------------------- buckets
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_bucket_name(name: str) -> str:
    """``name`` if S3 accepts it as a bucket name (3-63 lower-case letters, digits, dots, hyphens,
    starting and ending with a letter or digit, no ``..``, not an IP address); else BucketNameError."""
    if (not _BUCKET_NAME.match(name) or ".." in name or re.match(r"^\d+\.\d+\.\d+\.\d+$", name)
            or name.startswith("xn--") or name.endswith("-s3alias")):
        raise BucketNameError(f"{name!r} is not a valid S3 bucket name (3-63 characters: lower-case letters, "
                              "digits, dots and hyphens, starting and ending with a letter or digit)")
    return name


def find_project_cdk_json(start: Path | None = None) -> Path | None:
    """The nearest ``cdk.json`` with an ``mlship`` context in ``start`` (default: the current
    directory) or a parent, so ``mlship local up`` finds the project from any of its folders."""
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        candidate = folder / "cdk.json"
        try:
            doc = json.loads(candidate.read_text(encoding="utf-8")) if candidate.is_file() else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return candidate  # the project's, but broken: let the config loader name the problem
        if isinstance(doc, dict) and isinstance(doc.get("context"), dict) and "mlship" in doc["context"]:
            return candidate
    return None


def aws_client(service: str, url: str, region: str) -> Any:
    """A boto3 client of the local AWS at ``url`` with its credentials (a fresh session: no caller's profile)."""
    import boto3

    return boto3.session.Session().client(service, endpoint_url=url, region_name=region,
                                          aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                          aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def local_account(url: str, region: str = DEFAULT_REGION) -> str:
    """The account id the local AWS answers as (moto's STS ``GetCallerIdentity``)."""
    return str(aws_client("sts", url, region).get_caller_identity()["Account"])


def ensure_buckets(url: str, region: str, names: Sequence[str]) -> list[str]:
    """Create each bucket in ``names`` that does not exist yet; return the ones created."""
    s3 = aws_client("s3", url, region)
    existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
    created = []
    for name in dict.fromkeys(names):
        if name in existing:
            continue
        extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=name, **extra)
        created.append(name)
    return created


# ---------------------------------------------------------------- up, down, env
@dataclass
class UpResult:
    """What ``up`` did: the running state, whether it started it, buckets created, a stale state removed."""

    state: dict[str, Any]
    started: bool
    created_buckets: list[str] = field(default_factory=list)
    stale: dict[str, Any] | None = None


def _services(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The recorded processes, the plane (and its children) before moto, which they call."""
    services = [s for s in (state.get("services") or {}).values() if isinstance(s, dict) and "pid" in s]
    return [*services, state["moto"]]


def _stop_all(state: dict[str, Any]) -> None:
    for service in _services(state):
        if is_ours(service):
            _stop_group(int(service["pid"]))


def running_state() -> dict[str, Any] | None:
    """The state of the running local AWS; a stale state (moto gone) is cleaned up and gives None."""
    state = read_state()
    if state is None:
        return None
    if is_ours(state["moto"]):
        return state
    _stop_all(state)  # a plane left behind by a moto that died
    state_file().unlink(missing_ok=True)
    return None


def up(port: int | None = None, plane_port: int | None = 0, *, time_scale: float = 1.0,
       buckets: Sequence[str] = (), region: str | None = None,
       data_bucket: Callable[[str, str], str] | None = None, create_data_bucket: bool = True) -> UpResult:
    """Start the local AWS unless it runs already, create its buckets, and return what happened.

    ``data_bucket(account, region)`` names the project's data bucket (the CLI passes the
    configuration's ``names.bucket``); it is recorded, exported as ``MLSHIP_REGISTRY_BUCKET`` and,
    unless ``create_data_bucket`` is false (the project's stacks create it, ``mlship local
    deploy``), created. ``plane_port`` None starts no control plane; 0 picks a free
    port. Both ports are checked before anything starts (PortInUse); a process that fails to
    start stops the ones started before it (StartFailed) and no state is written. When it runs
    already, only the buckets are created (and a control plane that died is restarted).
    """
    port = port or DEFAULT_PORT
    for name in buckets:
        check_bucket_name(name)
    if plane_port and plane_port == port:
        raise LocalEnvironmentError(f"the moto server and the control plane cannot share port {port}")
    with _locked():
        previous = read_state()
        state = running_state()
        if state is not None:
            restarted = _revive_plane(state)
            named = _named_buckets(state, data_bucket) if create_data_bucket else []
            created = _create_buckets(state, [*named, *buckets], with_data_bucket=create_data_bucket)
            if restarted or created:
                write_state(state)
            return UpResult(state, started=False, created_buckets=created)
        if plane_port:
            _check_free(plane_port, "control plane", "--plane-port")
        state = _start(port, plane_port, time_scale, region or _region(), data_bucket)
        try:
            created = _create_buckets(state, buckets, with_data_bucket=create_data_bucket)
        except Exception:
            _stop_all(state)
            raise
        write_state(state)
        return UpResult(state, started=True, created_buckets=created, stale=previous)


def _check_free(port: int, service: str, option: str) -> None:
    if port_in_use(port):
        raise PortInUse(service, port, option)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _start(port: int, plane_port: int | None, time_scale: float, region: str,
           data_bucket: Callable[[str, str], str] | None) -> dict[str, Any]:
    folder = state_dir()
    moto = start_moto_server(port, folder / "moto.log")
    state: dict[str, Any] = {"version": STATE_VERSION, "moto": moto, "endpoint_url": moto["url"],
                             "region": region, "started_at": time.time(), "services": {}}
    try:
        if plane_port is not None:
            state["services"]["plane"] = start_plane(moto["url"], plane_port, folder, time_scale)
        state["account"] = local_account(moto["url"], region)
        if data_bucket is not None:
            state["data_bucket"] = check_bucket_name(data_bucket(state["account"], region))
    except BaseException:
        _stop_all(state)
        raise
    return state


def _named_buckets(state: dict[str, Any], data_bucket: Callable[[str, str], str] | None) -> list[str]:
    """The data bucket ``data_bucket`` names in the running local AWS (another project's, maybe)."""
    if data_bucket is None:
        return []
    region = state.get("region") or DEFAULT_REGION
    account = state.get("account") or local_account(state["endpoint_url"], region)
    return [check_bucket_name(data_bucket(account, region))]


def _revive_plane(state: dict[str, Any]) -> bool:
    """Restart a recorded control plane that is no longer running (same port if it is free)."""
    plane = (state.get("services") or {}).get("plane")
    if not plane or is_ours(plane):
        return False
    port = int(plane["port"]) if not port_in_use(int(plane["port"])) else 0
    state["services"]["plane"] = start_plane(state["endpoint_url"], port, state_dir(),
                                             float(plane.get("time_scale", 1.0)))
    return True


def _create_buckets(state: dict[str, Any], extra: Sequence[str], with_data_bucket: bool = True) -> list[str]:
    """Create the data bucket (``with_data_bucket``) and ``extra`` buckets on the state's moto; record them."""
    from botocore.exceptions import BotoCoreError, ClientError

    names = [n for n in (state.get("data_bucket") if with_data_bucket else None, *extra) if n]
    try:
        created = ensure_buckets(state["endpoint_url"], state.get("region", DEFAULT_REGION), names)
    except (BotoCoreError, ClientError) as exc:
        raise LocalEnvironmentError(f"cannot create the buckets {', '.join(names)} on "
                                    f"{state['endpoint_url']}: {exc}") from None
    state["buckets"] = list(dict.fromkeys([*state.get("buckets", []), *names]))
    return created


def down() -> bool:
    """Stop every process recorded in the state (the plane and its children, then moto); return
    True if something was running."""
    with _locked():
        state = read_state()
        if state is None:
            return False
        running = any(is_ours(service) for service in _services(state))
        _stop_all(state)
        state_file().unlink(missing_ok=True)
        return running


def env_exports(state: dict[str, Any]) -> dict[str, str]:
    """Environment variables that point boto3, the CDK CLI and mlship at the local AWS."""
    region = state.get("region") or _region()
    exports = {"AWS_ENDPOINT_URL": state["endpoint_url"], **LOCAL_CREDENTIALS,
               "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    plane = (state.get("services") or {}).get("plane")
    if plane:  # SageMaker, sagemaker-runtime, Lambda and CodeDeploy go to the control plane
        exports.update({f"AWS_ENDPOINT_URL_{service}": plane["url"] for service in PLANE_SERVICES})
    if state.get("data_bucket"):
        exports["MLSHIP_REGISTRY_BUCKET"] = state["data_bucket"]
    return exports
