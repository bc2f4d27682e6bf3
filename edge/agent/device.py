"""The device: versioned model directories, an atomic ``current`` symlink, a journal, rollback.

Layout of a device directory::

    device.json            configuration (id, health window, canary inputs, ...)
    keys/*.pub             trusted Ed25519 public keys
    versions/<version>-<sha8>/   extracted, verified edge packages (never modified in place)
    current -> versions/...      the model that serves (switched with an atomic rename)
    previous -> versions/...     the model before it (rollback target)
    downloads/             resumable downloads (``*.part``)
    journal.json           the update in progress (phase, from/to, probation deadline)
    status.json            the device's state, always written (atomically)

Invariant: ``current`` only ever points at a directory that was fully extracted, verified
(hashes + Ed25519 signature by a trusted key) and smoke-tested before the switch, and no
directory that ``current`` or ``previous`` points at is ever modified or deleted. Every
step is a new file plus an atomic ``os.replace``, so a crash (SIGKILL, power cut) at any
point leaves either the old or the new model serving; :meth:`Device.recover` finishes or
abandons the interrupted update on the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship.edge.agent.download import DownloadError, download
from mlship.edge.package import check_constraints, signer_key_id, verify_package

from mlship.errors import BundleError, FieldError, MlshipError, ValidationError
from mlship.runtime.archive import ExtractLimits, extract_tarball
from mlship.runtime.bundle import Bundle
from mlship.runtime.hashing import sha256_file
from mlship.runtime.versions import InvalidVersionError, parse_version, same_version

log = logging.getLogger("edge.agent")

CONFIG = "device.json"
DEFAULTS: dict[str, Any] = {
    "health_window_s": 0.0,  # probation after a switch; 0 = commit right after the health check
    "max_error_rate": 0.2,  # share of failed predictions that triggers a rollback in probation
    "min_requests": 20,  # requests needed before the error rate is judged
    "max_latency_ms": None,  # in probation, a model run slower than this counts as a failure
    "canary": None,  # JSON file of device inputs the new model must score (relative to the device dir)
    "allow_downgrade": False,
    "download_timeout_s": 30.0,
    "keep_rejected": 50,
}


class UpdateRejected(MlshipError):
    """An update was refused (verification, downgrade, constraints, smoke test); nothing changed."""

    kind = "rejected"


class AlreadyInstalled(MlshipError):
    """The offered version equals the installed one (PEP 440: ``1.0`` == ``1.0.0``): nothing to do."""

    kind = "unchanged"


class ModelUnavailable(BundleError):
    """The device has no model it can serve (none installed, or not signed by a trusted key)."""

    kind = "model_unavailable"


class AgentBusy(MlshipError):
    """Another agent process holds this device's lock."""

    kind = "busy"


@dataclass
class InstallResult:
    """Outcome of one update attempt: installed, probation, unchanged, rejected or rolled_back."""

    outcome: str
    version: str | None = None
    reason: str | None = None
    sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome in ("installed", "probation", "unchanged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "version": self.version,
            "reason": self.reason,
            "sha256": self.sha256,
            **self.details,
        }


@dataclass
class _Offer:
    """One update offer: where the package is and what was announced about it."""

    source: str | Path
    sha256: str | None
    size: int | None
    name: str | None
    version: str | None
    key_id: str | None
    allow_downgrade: bool
    digest: str | None = None
    promoted: Path | None = None  # its directory in versions/, once moved there

    def __post_init__(self) -> None:
        self.digest = self.sha256


Reporter = Callable[[dict[str, Any], InstallResult | None, str], None]


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Device:
    """One device directory and the operations on it (install, recover, rollback, predict)."""

    def __init__(self, root: str | Path, *, reporter: Reporter | None = None,
                 extract_limits: ExtractLimits | None = None):
        self.root = Path(root).resolve()
        if not (self.root / CONFIG).is_file():
            raise MlshipError(
                f"{self.root} is not an mlship device directory ({CONFIG} missing): "
                "run `python -m mlship.edge.agent --device DIR init --key KEY.pub` first"
            )
        self.config: dict[str, Any] = {**DEFAULTS, **json.loads((self.root / CONFIG).read_text("utf-8"))}
        self.reporter = reporter
        self.extract_limits = extract_limits  # None: ExtractLimits.from_env() at each extraction
        self._predictor: Any = None
        self._predictor_path: Path | None = None
        self._requests = 0
        self._failures = 0
        self._mutex = threading.RLock()

    # ------------------------------------------------------------------ set-up
    @classmethod
    def init(
        cls,
        root: str | Path,
        public_keys: list[str | Path | bytes],
        *,
        device_id: str | None = None,
        **config: Any,
    ) -> Device:
        """Create a device directory trusting ``public_keys`` (PEM paths or bytes)."""
        from mlship.runtime.signing import key_id, load_public_key

        root = Path(root)
        (root / "keys").mkdir(parents=True, exist_ok=True)
        for key in public_keys:
            pem = key if isinstance(key, bytes) else Path(key).read_bytes()
            (root / "keys" / f"{key_id(load_public_key(pem))}.pub").write_bytes(pem)
        for sub in ("versions", "downloads"):
            (root / sub).mkdir(exist_ok=True)
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown device settings: {sorted(unknown)} (known: {sorted(DEFAULTS)})")
        cfg = {"device_id": device_id or socket.gethostname(), **config}
        _atomic_write_json(root / CONFIG, cfg)
        device = cls(root)
        device._write_status(state="empty" if device.current_dir() is None else "idle")
        return device

    @property
    def device_id(self) -> str:
        return str(self.config.get("device_id"))

    def trusted_keys(self) -> dict[str, Any]:
        """Key id -> public key for every ``keys/*.pub``."""
        from mlship.runtime.signing import key_id, load_public_key

        keys = {}
        for path in sorted((self.root / "keys").glob("*.pub")):
            key = load_public_key(path)
            keys[key_id(key)] = key
        return keys

    # ------------------------------------------------------------------ paths and links
    @property
    def versions(self) -> Path:
        return self.root / "versions"

    def _link(self, name: str) -> Path | None:
        link = self.root / name
        try:
            target = os.readlink(link)
        except OSError:
            return None
        path = (self.root / target).resolve()
        return path if path.is_dir() else None

    def current_dir(self) -> Path | None:
        return self._link("current")

    def previous_dir(self) -> Path | None:
        return self._link("previous")

    def _set_link(self, name: str, target: Path | None) -> None:
        link = self.root / name
        if target is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        else:
            tmp = self.root / f".{name}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(os.path.relpath(target, self.root), tmp)
            os.replace(tmp, link)  # atomic: readers see the old or the new target, never nothing
        _fsync_dir(self.root)

    def _journal(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "journal.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {"phase": "idle"}

    def _set_journal(self, data: dict[str, Any]) -> None:
        _atomic_write_json(self.root / "journal.json", {**data, "at": _now()})

    # ------------------------------------------------------------------ lock
    @contextlib.contextmanager
    def lock(self, timeout: float = 30.0) -> Iterator[None]:
        """Exclusive update lock (``flock``: released by the kernel if the agent dies)."""
        fh = open(self.root / "agent.lock", "a+")  # noqa: SIM115 - held for the block
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AgentBusy(f"another agent is updating {self.root}") from None
                    time.sleep(0.05)
            yield  # serving threads keep predicting with the current model meanwhile
        finally:
            fh.close()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        try:
            return json.loads((self.root / "status.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {}

    def _describe(self, path: Path | None) -> dict[str, Any] | None:
        if path is None:
            return None
        try:
            manifest = Bundle(path).manifest
        except MlshipError:
            return {"path": str(path), "error": "unreadable"}
        edge = manifest.get("edge") if isinstance(manifest.get("edge"), dict) else {}
        return {
            "name": manifest.get("name"),
            "version": manifest.get("version"),
            "variant": edge.get("variant"),
            "dir": path.name,
        }

    def _write_status(
        self, *, state: str, last: InstallResult | None = None, job: dict | None = None, **extra: Any
    ) -> dict[str, Any]:
        status = self.status()
        status.update(
            {
                "device_id": self.device_id,
                "state": state,
                "updated_at": _now(),
                "current": self._describe(self.current_dir()),
                "previous": self._describe(self.previous_dir()),
                **extra,
            }
        )
        if last is not None:
            status["last_update"] = {**last.to_dict(), "at": _now()}
            if last.outcome in ("rejected", "rolled_back") and last.sha256:
                rejected = [r for r in status.get("rejected", []) if r.get("sha256") != last.sha256]
                rejected.append({"sha256": last.sha256, "version": last.version, "reason": last.reason})
                status["rejected"] = rejected[-int(self.config["keep_rejected"]) :]
            if last.outcome == "unchanged" and last.sha256:  # e.g. 1.0 offered over 1.0.0: never retried
                skipped = [d for d in status.get("skipped", []) if d != last.sha256] + [last.sha256]
                status["skipped"] = skipped[-int(self.config["keep_rejected"]) :]
        if job is not None:
            status["job"] = job
        _atomic_write_json(self.root / "status.json", status)
        return status

    def _report(self, job: dict[str, Any] | None, result: InstallResult | None, state: str) -> None:
        if self.reporter is not None and job is not None:
            try:
                self.reporter(job, result, state)
            except Exception as exc:  # reporting must never break an install; the status file has it
                self._write_status(state=self.status().get("state", state), report_error=str(exc)[:300])

    def was_rejected(self, sha256: str) -> bool:
        return any(r.get("sha256") == sha256 for r in self.status().get("rejected", []))

    def was_skipped(self, sha256: str) -> bool:
        """True when this package was offered before and changed nothing (equal version)."""
        return sha256 in self.status().get("skipped", [])

    # ------------------------------------------------------------------ install
    def install(
        self,
        source: str | Path,
        *,
        sha256: str | None = None,
        allow_downgrade: bool | None = None,
        job: dict[str, Any] | None = None,
        expected_key_id: str | None = None,
        size: int | None = None,
        announced_version: str | None = None,
        announced_name: str | None = None,
    ) -> InstallResult:
        """Fetch, verify, smoke-test and switch to a package; roll back if the health check fails.

        ``source``: a package ``.tar.gz`` path, an extracted package directory, or an http(s) URL.
        Never raises for a bad update: returns ``InstallResult(outcome="rejected", reason=...)``
        and leaves the current model serving.
        """
        allow_downgrade = self.config["allow_downgrade"] if allow_downgrade is None else allow_downgrade
        with self.lock():
            self._report(job, None, "IN_PROGRESS")
            work = self.versions / f".staging-{uuid.uuid4().hex[:12]}"
            offer = _Offer(source, sha256, size, announced_name, announced_version, expected_key_id, allow_downgrade)
            try:
                final, key, digest = self._prepare(offer, work, job)
            except AlreadyInstalled as exc:
                version = _peek_version(work / "package") or offer.version
                return self._finish(InstallResult("unchanged", version, str(exc), offer.digest), job)
            except Exception as exc:  # noqa: BLE001 - any failure to verify/extract is a rejection, never a crash loop
                version = _peek_version(work / "package") or _peek_version(offer.promoted)
                if offer.promoted is not None and offer.promoted not in (self.current_dir(), self.previous_dir()):
                    self._discard(offer.promoted)  # failed its smoke test: nothing points at it
                return self._reject(exc, version, offer.digest, job)
            finally:
                self._discard(work)  # whatever is left of the staging area (partial extraction included)
            if final == self.current_dir():
                result = InstallResult("unchanged", Bundle(final).version, "already the current model", digest)
                return self._finish(result, job)
            return self._switch_and_check(final, digest, job)

    def _prepare(self, offer: _Offer, work: Path, job: dict[str, Any] | None) -> tuple[Path, Any, str]:
        """Fetch, extract into ``work``, verify, promote to ``versions/`` and smoke-test a package."""
        self._check_version(offer.name, offer.version, offer.allow_downgrade)
        self._write_status(state="downloading", job=job, source=_safe_source(offer.source))
        tarball = self._fetch(offer.source, offer.sha256, offer.size)
        if tarball is not None:
            offer.digest = sha256_file(tarball)
            if offer.sha256 and offer.digest != offer.sha256.lower():
                with contextlib.suppress(OSError):
                    if tarball.parent == self.root / "downloads":
                        tarball.unlink()
                raise UpdateRejected(
                    f"sha256 of the download is {offer.digest[:16]}..., the update expects {offer.sha256[:16]}..."
                )
        self._write_status(state="verifying", job=job)
        staged = self._stage(offer.source if tarball is None else tarball, work)
        bundle, key = self._verify(staged, offer.allow_downgrade, offer.key_id)
        if offer.version is not None and not same_version(offer.version, bundle.version):
            raise UpdateRejected(f"the update announced version {offer.version} but the package is {bundle.version}")
        offer.digest = offer.digest or str(bundle.manifest["files"][bundle.manifest["model"]["file"]])
        final = offer.promoted = self._promote(staged, bundle, offer.digest)
        if final != self.current_dir():
            self._write_status(state="smoke-testing", job=job)
            self._smoke_test(final, key)
        return final, key, offer.digest

    def _finish(self, result: InstallResult, job: dict[str, Any] | None) -> InstallResult:
        """Record an update that changed nothing (same package, or an equal version)."""
        self._write_status(state="idle" if self.current_dir() else "empty", last=result, job=job)
        self._report(job, result, "SUCCEEDED")
        return result

    def _reject(
        self, exc: Exception, version: str | None, digest: str | None, job: dict[str, Any] | None
    ) -> InstallResult:
        """Record a refused update; the current model keeps serving."""
        if isinstance(exc, MlshipError):
            reason = str(exc)
        else:  # a malformed package the verifier did not anticipate: still a named refusal
            log.warning("package refused: %s: %s", type(exc).__name__, exc)
            reason = f"package is malformed ({type(exc).__name__}: {exc})"
        result = InstallResult("rejected", version, reason[:2000], digest)
        self._write_status(state="idle" if self.current_dir() else "empty", last=result, job=job)
        self._report(job, result, "REJECTED" if not isinstance(exc, DownloadError) else "FAILED")
        return result

    def _check_version(self, name: str | None, version: str | None, allow_downgrade: bool) -> None:
        """Refuse an unparseable version or a downgrade; raise AlreadyInstalled for an equal version.

        ``name`` None (an announcement without a name) is taken to be the installed model.
        """
        if version is None:
            return
        candidate = parse_version(version)  # unparseable: refused whatever the options
        current = self.current_dir()
        if current is None:
            return
        cur = Bundle(current)
        if name is not None and name != cur.name:
            return
        try:
            installed = parse_version(cur.version)
        except InvalidVersionError:
            if allow_downgrade:
                return
            raise UpdateRejected(
                f"the installed version {cur.version!r} is not a PEP 440 version, so {version} cannot be "
                "ordered against it (replace it with --allow-downgrade)"
            ) from None
        if candidate == installed:
            raise AlreadyInstalled(f"{cur.name} {version} is already installed (as {cur.version})")
        if candidate < installed and not allow_downgrade:
            raise UpdateRejected(
                f"refusing downgrade of {cur.name} from {cur.version} to {version} (allow it with --allow-downgrade)"
            )

    def _fetch(self, source: str | Path, sha256: str | None, size: int | None) -> Path | None:
        """Return a local tarball (downloading URLs), or None when ``source`` is a directory."""
        text = str(source)
        if text.startswith(("http://", "https://")):
            downloads = self.root / "downloads"
            downloads.mkdir(exist_ok=True)
            from mlship.runtime.hashing import sha256_bytes

            name = (sha256 or sha256_bytes(text.split("?", 1)[0].encode()))[:32]
            return download(
                text,
                downloads / f"{name}.tar.gz",
                timeout=float(self.config["download_timeout_s"]),
                expected_size=size,
            )
        if text.startswith("file://"):
            text = text[7:]
        path = Path(text)
        if path.is_dir():
            return None
        if not path.is_file():
            raise UpdateRejected(f"update source not found: {text}")
        return path

    def _stage(self, source: str | Path, work: Path) -> Path:
        """Copy or extract ``source`` to ``work/package``; everything lands inside ``work``."""
        work.mkdir(parents=True)
        staged = work / "package"
        src = Path(str(source))
        if src.is_dir():
            shutil.copytree(src, staged)
        else:
            extract_tarball(src, staged, limits=self.extract_limits)  # its temporary directory is inside ``work`` too
        return staged

    def _verify(self, staged: Path, allow_downgrade: bool, expected_key_id: str | None) -> tuple[Bundle, Any]:
        keys = self.trusted_keys()
        if expected_key_id and signer_key_id(staged) != expected_key_id:
            raise UpdateRejected(
                f"package is signed with key {signer_key_id(staged)}, the update announced key {expected_key_id}"
            )
        bundle = verify_package(staged, keys)
        problems = check_constraints(bundle.manifest)
        if problems:
            raise UpdateRejected("package does not fit this device: " + "; ".join(problems))
        self._check_version(bundle.name, bundle.version, allow_downgrade)
        return bundle, keys[signer_key_id(staged)]

    def _promote(self, staged: Path, bundle: Bundle, digest: str) -> Path:
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in f"{bundle.name}-{bundle.version}")
        final = self.versions / f"{safe}-{digest[:8]}"
        if final.is_dir():
            try:
                verify_package(final, self.trusted_keys())
            except Exception:  # noqa: BLE001 - a damaged copy of any kind is replaced
                if final in (self.current_dir(), self.previous_dir()):
                    raise
                self._discard(final)
            else:
                self._discard(staged)
                return final
        os.replace(staged, final)
        _fsync_dir(self.versions)
        return final

    def _smoke_test(self, path: Path, key: Any) -> Any:
        from mlship.runtime.predictor import Predictor

        try:
            return Predictor.load(path, public_key=key, check_golden=True, threads=1)
        except MlshipError as exc:
            raise UpdateRejected(f"smoke test failed: {exc}") from None
        except Exception as exc:  # onnxruntime cannot load the model at all
            raise UpdateRejected(f"smoke test failed: onnxruntime cannot run the model: {exc}") from None

    def _switch_and_check(self, final: Path, digest: str, job: dict[str, Any] | None) -> InstallResult:
        old = self.current_dir()
        version = Bundle(final).version
        self._set_journal(
            {
                "phase": "switching",
                "from": old.name if old else None,
                "to": final.name,
                "sha256": digest,
                "job": job,
            }
        )
        if old is not None:
            self._set_link("previous", old)
        self._set_link("current", final)
        window = float(self.config["health_window_s"])
        self._set_journal(
            {
                "phase": "probation",
                "version_dir": final.name,
                "previous_dir": old.name if old else None,
                "sha256": digest,
                "deadline": time.time() + window,
                "job": job,
            }
        )
        self._reset_health()
        problems = self.health_check()
        if problems:
            return self._rollback(f"health check failed after the switch: {'; '.join(problems)}", digest, job, version)
        if window > 0:
            result = InstallResult(
                "probation", version, f"serving; committed after {window:g}s without health failures", digest
            )
            self._write_status(state="probation", last=result, job=job)
            return result
        return self._commit(job, digest, version)

    def _commit(self, job: dict[str, Any] | None, digest: str | None, version: str | None) -> InstallResult:
        self._set_journal({"phase": "idle"})
        result = InstallResult("installed", version, None, digest)
        self._write_status(state="idle", last=result, job=job)
        self._report(job, result, "SUCCEEDED")
        self.gc()
        return result

    def _rollback(
        self, reason: str, digest: str | None, job: dict[str, Any] | None, version: str | None
    ) -> InstallResult:
        previous = self.previous_dir()
        if previous is None:
            reason += " (no previous model to roll back to: the new model keeps serving)"
            result = InstallResult("rolled_back", version, reason, digest)
            self._set_journal({"phase": "idle"})
            self._write_status(state="degraded", last=result, job=job)
            self._report(job, result, "FAILED")
            return result
        self._set_link("current", previous)
        self._set_link("previous", None)
        self._set_journal({"phase": "idle"})
        self._predictor = None
        result = InstallResult("rolled_back", version, reason, digest, {"restored_version": Bundle(previous).version})
        self._write_status(state="idle", last=result, job=job)
        self._report(job, result, "FAILED")
        self.gc()
        return result

    def rollback(self, reason: str = "manual rollback") -> InstallResult:
        """Switch back to the previous model (e.g. ``python -m mlship.edge.agent rollback``)."""
        with self.lock():
            journal = self._journal()
            current = self.current_dir()
            return self._rollback(
                reason,
                journal.get("sha256"),
                journal.get("job"),
                Bundle(current).version if current else None,
            )

    # ------------------------------------------------------------------ health and probation
    def health_check(self) -> list[str]:
        """Load ``current`` through the predictor (verify + golden) and score the canary inputs."""
        self._predictor = None
        try:
            predictor = self.predictor()
        except MlshipError as exc:
            return [str(exc)]
        except Exception as exc:  # onnxruntime failures
            return [f"onnxruntime cannot run the model: {exc}"]
        canary = self.config.get("canary")
        if not canary:
            return []
        try:
            records = _read_canary(self.root / canary)
        except (OSError, ValidationError) as exc:
            return [f"canary inputs {canary} unreadable: {exc}"]
        try:
            predictor.predict(records)  # validation, then predict_checked: NaN outputs fail too
        except ValidationError as exc:
            return [f"the device's canary inputs do not fit the new model: {exc}"]
        except MlshipError as exc:
            return [f"the new model fails on the canary inputs: {exc}"]
        except Exception as exc:  # noqa: BLE001 - onnxruntime failures
            return [f"onnxruntime cannot score the canary inputs: {exc}"]
        return []

    def _reset_health(self) -> None:
        self._requests = self._failures = 0

    def record_request(self, ok: bool) -> None:
        """Count a request the model served (``ok``) or failed on; too many failures in probation
        trigger a rollback. Client errors are never recorded: they say nothing about the model."""
        with self._mutex:
            self._requests += 1
            self._failures += 0 if ok else 1

    def check_probation(self) -> InstallResult | None:
        """Commit or roll back a model in probation (call periodically); None when nothing changed."""
        journal = self._journal()
        if journal.get("phase") != "probation":
            return None
        with self.lock():
            journal = self._journal()
            if journal.get("phase") != "probation":
                return None
            current = self.current_dir()
            version = Bundle(current).version if current else None
            rate = self._failures / self._requests if self._requests else 0.0
            if self._requests >= int(self.config["min_requests"]) and rate > float(self.config["max_error_rate"]):
                return self._rollback(
                    f"{self._failures} of {self._requests} predictions failed during the health "
                    f"window ({rate:.0%} > {float(self.config['max_error_rate']):.0%})",
                    journal.get("sha256"),
                    journal.get("job"),
                    version,
                )
            if time.time() >= float(journal.get("deadline", 0)):
                return self._commit(journal.get("job"), journal.get("sha256"), version)
        return None

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[str]:
        """Finish or abandon an update interrupted by a crash; clean up leftovers. Returns notes."""
        notes: list[str] = []
        with self.lock():
            self._remove_temp_files()
            journal = self._journal()
            phase = journal.get("phase", "idle")
            current = self.current_dir()
            if current is None and self.previous_dir() is not None:
                self._set_link("current", self.previous_dir())
                notes.append("current link was missing: restored the previous model")
            if phase == "switching":
                phase = self._resume_switch(journal, current, notes)
            if phase == "probation":
                self._resume_probation(journal, notes)
            elif self.current_dir() is not None:
                self._reverify_current(notes)
            self.gc()
            if phase == "idle":
                self._write_status(state="idle" if self.current_dir() else "empty")
        return notes

    def _remove_temp_files(self) -> None:
        """Delete the half-written link and state files a crash can leave (``.*.tmp``)."""
        for name in (".current.tmp", ".previous.tmp"):
            with contextlib.suppress(FileNotFoundError):
                (self.root / name).unlink()
        for tmp in self.root.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _resume_switch(self, journal: dict[str, Any], current: Path | None, notes: list[str]) -> str:
        """An update crashed while switching: enter probation if ``current`` (as found) is the new
        version, else abandon it. Returns the phase to continue from."""
        if current is not None and current.name == journal.get("to"):
            self._set_journal(
                {
                    "phase": "probation",
                    "version_dir": journal.get("to"),
                    "sha256": journal.get("sha256"),
                    "job": journal.get("job"),
                    "deadline": time.time() + float(self.config["health_window_s"]),
                }
            )
            return "probation"
        self._set_journal({"phase": "idle"})
        result = InstallResult(
            "rejected",
            None,
            "update interrupted before the switch; the previous model kept serving",
            journal.get("sha256"),
        )
        self._write_status(state="idle", last=result)
        notes.append("abandoned an update interrupted before the switch")
        return "idle"

    def _resume_probation(self, journal: dict[str, Any], notes: list[str]) -> None:
        """After a restart in probation: roll back if unhealthy, commit once the window is over."""
        problems = self.health_check()
        current = self.current_dir()
        version = Bundle(current).version if current else None
        if problems:
            result = self._rollback(
                "health check failed after a restart: " + "; ".join(problems),
                journal.get("sha256"),
                journal.get("job"),
                version,
            )
            notes.append(f"rolled back: {result.reason}")
        elif time.time() >= float(self._journal().get("deadline", 0)):
            self._commit(journal.get("job"), journal.get("sha256"), version)
            notes.append(f"committed {version} after a restart")
        else:
            self._write_status(state="probation")

    def _reverify_current(self, notes: list[str]) -> None:
        """Roll back when the current model no longer verifies (tampered or damaged on disk)."""
        try:
            verify_package(self.current_dir(), self.trusted_keys())
        except Exception as exc:  # noqa: BLE001 - a malformed current model must not crash-loop recovery
            result = self._rollback(f"current model fails verification: {_reason(exc)}", None, None, None)
            notes.append(f"rolled back: {result.reason}")

    def gc(self) -> list[str]:
        """Delete version directories that neither ``current`` nor ``previous`` points at."""
        keep = {p for p in (self.current_dir(), self.previous_dir()) if p is not None}
        journal = self._journal()
        for key in ("to", "version_dir"):
            if journal.get(key):
                keep.add((self.versions / journal[key]).resolve())
        removed = []
        for entry in sorted(self.versions.iterdir()) if self.versions.is_dir() else []:
            if entry.resolve() in keep:
                continue
            self._discard(entry)
            removed.append(entry.name)
        for part in (self.root / "downloads").glob("*.tar.gz"):
            part.unlink(missing_ok=True)  # completed downloads are extracted already; .part files stay
        return removed

    def _discard(self, path: Path) -> None:
        """Rename out of the way first, so a half-deleted directory never carries a version's name."""
        if not path.exists():
            return
        trash = path if path.name.startswith(".") else path.with_name(f".trash-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(OSError):
            if trash != path:
                os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ serving
    def predictor(self) -> Any:
        """The shared :class:`~mlship.runtime.predictor.Predictor` for ``current`` (reloaded after a switch)."""
        from mlship.runtime.predictor import Predictor

        current = self.current_dir()
        if current is None:
            raise ModelUnavailable(f"device {self.device_id} has no model installed yet")
        with self._mutex:
            if self._predictor is None or self._predictor_path != current:
                key = self.trusted_keys().get(signer_key_id(current) or "")
                if key is None:
                    raise ModelUnavailable(f"the current model {current.name} is not signed by a trusted key")
                self._predictor = Predictor.load(current, public_key=key, check_golden=True)
                self._predictor_path = current
            return self._predictor

    def predict(self, data: Any) -> Any:
        """Validate ``data`` and predict through the current model.

        Only model-side outcomes count for the health window: a model that cannot load, a runtime
        error, a non-finite output (:class:`ModelOutputError`) or a run slower than
        ``max_latency_ms``. Invalid input raises :class:`ValidationError` and is not counted.
        """
        try:
            predictor = self.predictor()
        except Exception:
            self.record_request(False)
            raise
        columns = _validate(predictor, data)
        started = time.perf_counter()
        try:
            result = predictor.predict_checked(columns)
        except Exception:
            self.record_request(False)
            raise
        self.record_request(self._within_latency(time.perf_counter() - started))
        return result

    def _within_latency(self, seconds: float) -> bool:
        limit = self.config.get("max_latency_ms")
        return limit is None or seconds * 1000.0 <= float(limit)


def _safe_source(source: str | Path) -> str:
    return str(source).split("?", 1)[0]


def _peek_version(package: Path | None) -> str | None:
    """The version a package directory claims (for the status of a refused package), if readable."""
    if package is None:
        return None
    try:
        version = json.loads((package / "manifest.json").read_text("utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MlshipError) else f"{type(exc).__name__}: {exc}"


def _validate(predictor: Any, data: Any) -> dict[str, Any]:
    """The predictor's validated columns for ``data``; every failure here is the client's input."""
    try:
        batch = predictor.schema.validate(data)
    except MlshipError:
        raise
    except (ArithmeticError, RecursionError, TypeError, ValueError) as exc:
        # the schema did not anticipate this input (e.g. an integer too large for a float): still a 400
        log.warning("input could not be validated: %s: %s", type(exc).__name__, exc)
        raise ValidationError(
            [FieldError(None, None, "malformed", f"input could not be validated ({type(exc).__name__})")]
        ) from None
    batch.raise_for_errors()
    return batch.columns


def _read_canary(path: Path) -> Any:
    """A canary file: JSON in the request protocol's shapes (legacy ``{"records": [...]}`` still read)."""
    from mlship.runtime import protocol

    body = path.read_bytes()
    try:
        legacy = json.loads(body)
    except ValueError:
        legacy = None
    if isinstance(legacy, dict) and set(legacy) == {"records"}:
        return legacy["records"]
    return protocol.parse_json(body)
