"""A wheel of this checkout (built once per content hash) and fresh venvs outside the repository.

The wheel is cached under ``build/wheel-cache/<hash>/``, keyed by pyproject.toml, setup.py,
MANIFEST.in, constraints.txt and every shipped source, and built from a copy of those files (the
build never writes into the checkout). Venvs install it with ``pip install -c constraints.txt``;
pip's download cache makes a second session fast.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "constraints.txt", "README.md", "Dockerfile",
           "Dockerfile.retrain", "cdk.json", "mlship", "batch", "edge", "functions")
CACHE = REPO / "build" / "wheel-cache"
_SKIPPED = ("__pycache__", ".pytest_cache", ".hypothesis")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".pyc")
                  and not any(part in _SKIPPED for part in p.relative_to(REPO).parts))


def source_hash() -> str:
    """sha256 over the relative paths and bytes of everything the wheel is built from."""
    digest = hashlib.sha256()
    for name in SOURCES:
        for path in _files(REPO / name):
            digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def cached_wheel() -> Path:
    """The wheel of the checkout as it is now: from the cache, else built (once, under a file lock)."""
    key = source_hash()
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted((CACHE / key).glob("mlship-*.whl"))
        if found:
            return found[0]
        with tempfile.TemporaryDirectory(prefix="mlship-wheel-") as tmp:
            src = Path(tmp) / "src"
            for name in SOURCES:
                if (REPO / name).is_dir():
                    shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns(*_SKIPPED, "*.pyc"))
                else:
                    src.mkdir(exist_ok=True)
                    shutil.copy2(REPO / name, src / name)
            run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                 "-w", str(Path(tmp) / "dist"), str(src)], timeout=600)
            for stale in CACHE.iterdir():  # only the current build is worth keeping
                if stale.is_dir() and stale.name != key:
                    shutil.rmtree(stale, ignore_errors=True)
            (CACHE / key).mkdir()
            wheel = next((Path(tmp) / "dist").glob("mlship-*.whl"))
            return Path(shutil.copy2(wheel, CACHE / key / wheel.name))


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; with ``check``, fail with its output when it exits non-zero."""
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@dataclass
class Venv:
    """A venv outside the repository with the wheel installed; ``seconds`` the install took."""

    root: Path
    seconds: float

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3.*/site-packages"))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a process of this venv (nothing of the checkout or its venv)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "AWS_ENDPOINT_URL")
               and not k.startswith("PYTEST_")}
        path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))]
        env.update(PATH=os.pathsep.join([str(self.bin), *path]), VIRTUAL_ENV=str(self.root), MPLBACKEND="Agg",
                   **extra)
        return env

    def mlship(self, *args: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        """``mlship ARGS`` of this venv in ``cwd`` (never checked: callers assert the exit code)."""
        return run([str(self.bin / "mlship"), *args], env=self.env(**env), cwd=cwd, timeout=timeout, check=False)


def make_venv(root: Path, wheel: Path, extras: str = "", *, compile_pyc: bool = True) -> Venv:
    """``python -m venv root`` and ``pip install -c constraints.txt 'wheel[extras]'`` in it.

    ``compile_pyc=False`` skips pip's byte-compilation (a third of a large install's time; Python
    then compiles what it imports), for venvs whose size is not measured.
    """
    started = time.monotonic()
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", str(root)], timeout=120)
    spec = f"{wheel}[{extras}]" if extras else str(wheel)
    run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", *([] if compile_pyc else ["--no-compile"]), "-c", str(REPO / "constraints.txt"), spec],
        cwd=root, timeout=1200)
    return Venv(root, time.monotonic() - started)


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
