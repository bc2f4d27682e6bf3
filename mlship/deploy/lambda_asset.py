"""Build Lambda deployment assets without Docker.

``build_lambda_asset("predict")`` produces ``build/lambda/predict/``, a directory CDK can use
as ``lambda_.Code.from_asset(...)`` with handler ``handler.handler`` (:data:`HANDLER`) on the
``python3.12`` runtime (:data:`RUNTIME`). The directory holds:

* the third-party wheels from ``functions/<function>/requirements.txt``, installed with
  ``pip install --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64
  --python-version 3.12 --only-binary=:all: --target`` and pinned by the repo's
  ``constraints.txt`` (onnxruntime only ships ``manylinux_2_28`` wheels; Lambda's Python 3.12+
  runs on Amazon Linux 2023, which satisfies it);
* the mlship modules the function imports (the static import closure of
  ``functions/<function>/*.py`` inside the ``mlship`` package, so no sklearn, pandas,
  sagemaker or CLI code is shipped);
* ``functions/<function>/*.py`` copied **flat** to the asset root (so the handler module is
  ``handler`` and the Lambda handler string is ``handler.handler``).

It is then trimmed: packages the Lambda runtime already provides (boto3, botocore,
s3transfer, jmespath, urllib3, python-dateutil, six) are removed, as are tests, ``__pycache__``,
console scripts and onnxruntime's offline tooling (transformers, quantization, tools); shared
objects are ``strip --strip-unneeded``-ed except inside ``*.libs`` directories (vendored
OpenBLAS breaks when stripped).

``.pyc`` files: Lambda's ``/var/task`` is read-only, so a module without a matching ``.pyc`` is
compiled again on every cold start. They must be compiled by the runtime's Python (3.12: a
3.11 ``.pyc`` is ignored), so the build looks for that interpreter (:func:`runtime_python`: the
building one, ``$MLSHIP_RUNTIME_PYTHON``, ``python3.12`` on ``PATH``, pyenv's or the system's)
and compiles with ``--invalidation-mode unchecked-hash``: a zip keeps file times at a 2-second
resolution, so timestamp-checked ``.pyc`` could be judged stale and ignored, and an asset never
changes after it is built. With no such interpreter none are shipped (``pyc_compiled`` is false
in the build record). bench/realtime.py measures the cold start with and without them.

Builds are cached: the asset is rebuilt only when one of its inputs changes (requirements,
constraints, the function's files, the mlship modules it ships, the target platform). A file
lock makes concurrent builds (pytest-xdist, CDK synth next to a test run) safe.
"""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlship.resources import data_path, output_root, package_root
from mlship.runtime.sources import REMOTE_SOURCES

# The directory holding the mlship package: the checkout, or site-packages when installed. The
# handler sources and constraints.txt come from mlship.resources (the checkout first, else the
# copies the wheel ships); a relative out_root is resolved against output_root().
ROOT = package_root()
MLSHIP_DIR = ROOT / "mlship"
DEFAULT_OUT_ROOT = Path("build/lambda")

RUNTIME = "python3.12"
PYTHON_VERSION = "3.12"
HANDLER = "handler.handler"
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_ZIPPED_TARGET = 50 * 1024 * 1024
BUILD_FORMAT = 5  # bump to invalidate every cached asset when the build steps change

# Distributions the Lambda Python runtime provides (boto3 and its dependencies).
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python_dateutil", "six")
# The tiers a Lambda may ship (ARCHITECTURE.md). The import contracts keep each of them from
# importing anything above it, so a handler's closure stays inside; if it ever leaves them the
# build fails instead of shipping (or silently dropping) build-time code.
SHIPPED_TIERS = ("mlship", "mlship.errors", "mlship.runtime", "mlship.aws", "mlship.registry", "mlship.stats",
                 "mlship.monitoring")


class AssetError(RuntimeError):
    """A Lambda asset cannot be built as asked (a handler imports outside the shipped tiers)."""


def _shipped(dotted: str) -> bool:
    return any(dotted == tier or dotted.startswith(tier + ".") for tier in SHIPPED_TIERS[1:]) or dotted == "mlship"
PRUNE_DIRS = {"__pycache__", "tests", "test", "bin"}
PRUNE_PATHS = ("onnxruntime/transformers", "onnxruntime/quantization", "onnxruntime/tools",
               "numpy/_pyinstaller", "numpy/distutils", "numpy/f2py")  # f2py: a Fortran build tool


def _log(message: str) -> None:
    print(f"[mlship.deploy.lambda_asset] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- mlship closure
def _module_file(dotted: str) -> Path | None:
    """``mlship.x.y`` -> its source file (module or package ``__init__``), if it exists."""
    parts = dotted.split(".")
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imported_mlship_modules(source: Path, module: str | None) -> set[str]:
    """Dotted ``mlship.*`` modules a file imports anywhere (including lazy imports)."""
    tree = ast.parse(source.read_text("utf-8"), filename=str(source))
    package = None
    if module is not None:
        package = module if source.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "mlship" or a.name.startswith("mlship."))
        elif isinstance(node, ast.ImportFrom):
            if node.level and package:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                target = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "mlship" or target.startswith("mlship."):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)  # `from mlship import x`
    if module == "mlship.runtime.sources":  # it imports these by URI scheme, at run time
        found.update(REMOTE_SOURCES.values())
    return found


def mlship_closure(entry_files: Iterable[Path]) -> list[Path]:
    """The mlship source files reachable by imports from ``entry_files`` (sorted, relative to ROOT)."""
    seen: set[Path] = set()
    pending: list[tuple[Path, str | None]] = [(Path(p), None) for p in entry_files]
    pending.append((MLSHIP_DIR / "__init__.py", "mlship"))
    while pending:
        path, module = pending.pop()
        for dotted in sorted(_imported_mlship_modules(path, module)):
            parts = dotted.split(".")
            if _module_file(dotted) is not None and not _shipped(dotted):
                raise AssetError(f"{path.name} imports {dotted}: a Lambda ships only {', '.join(SHIPPED_TIERS[1:])}")
            # include every package __init__ on the way down
            for depth in range(1, len(parts) + 1):
                name = ".".join(parts[:depth])
                target = _module_file(name)
                if target is not None and target not in seen:
                    seen.add(target)
                    pending.append((target, name))
    seen.add(MLSHIP_DIR / "__init__.py")
    return sorted(p.relative_to(ROOT) for p in seen)


# ---------------------------------------------------------------------------- fingerprint
def _digest(paths: Iterable[Path], extra: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for path in sorted(Path(p) if Path(p).is_absolute() else ROOT / p for p in paths):
        name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        h.update(name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _pins(constraints: Path | None) -> dict[str, str]:
    """``{normalized name: pin line}`` from a constraints file."""
    if constraints is None:
        return {}
    out = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*==", line)
        if match:
            out[_normalize(match.group(1))] = line
    return out


def _valid_deps_pins(deps: Path, all_pins: dict[str, str]) -> dict[str, str | None] | None:
    """The pins a cached dependency dir was built with, if they still match the constraints.

    Only the pins of the distributions actually installed matter: other teams changing
    unrelated lines of constraints.txt do not trigger a re-download.
    """
    marker = deps / ".complete"
    if not marker.is_file():
        return None
    try:
        stored = json.loads(marker.read_text())["pins"]
    except (ValueError, KeyError, TypeError):
        return None
    return stored if all(all_pins.get(name) == pin for name, pin in stored.items()) else None


def _fingerprint(requirements: Path, entry: list[Path], modules: list[Path], deps_key: str,
                 pins: dict[str, str | None], python_version: str) -> str:
    return _digest([requirements, *entry, *modules], {"deps": deps_key, "pins": pins,
                                                      "compile": runtime_python(python_version) is not None})


def _constraints_file() -> Path | None:
    from mlship.resources import MissingResource

    try:
        return data_path("constraints.txt")
    except MissingResource:
        return None


def _shown(path: Path) -> str:
    """``path`` relative to the package root when it is below it (shorter log lines)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------------------- build steps
def _pip_install(requirements: Path, target: Path, python_version: str, platforms: Iterable[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--no-input", "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
           "--target", str(target), "--upgrade", "-r", str(requirements)]
    for platform in platforms:
        cmd += ["--platform", platform]
    constraints = _constraints_file()
    if constraints is not None:
        cmd += ["-c", str(constraints)]
    _log(f"pip install --target {target.name} ({python_version}, {', '.join(platforms)}) "
         f"-r {_shown(requirements)}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip could not build the Lambda dependencies from {requirements}:\n"
                           f"{proc.stderr.strip()[-3000:]}")


def _remove_distribution(target: Path, name: str) -> bool:
    """Delete an installed distribution (every file its RECORD lists, and the dist-info)."""
    norm = name.lower().replace("-", "_")
    removed = False
    for info in target.glob("*.dist-info"):
        dist = info.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower().replace("-", "_")
        if dist != norm:
            continue
        record = info / "RECORD"
        if record.is_file():
            for line in record.read_text("utf-8").splitlines():
                rel = line.split(",", 1)[0]
                if rel and not rel.startswith(".."):
                    (target / rel).unlink(missing_ok=True)
        shutil.rmtree(info, ignore_errors=True)
        removed = True
    # remove now-empty package directories left behind
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed


def _prune(target: Path) -> None:
    for rel in PRUNE_PATHS:
        shutil.rmtree(target / rel, ignore_errors=True)
    for path in sorted(target.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name in PRUNE_DIRS and not path.name.endswith(".libs"):
            shutil.rmtree(path, ignore_errors=True)


def _strip_shared_objects(target: Path) -> int:
    """``strip --strip-unneeded`` every .so outside vendored ``*.libs`` dirs; return bytes saved."""
    strip = shutil.which("strip")
    if strip is None:
        _log("`strip` not found: shared objects are shipped unstripped")
        return 0
    saved = 0
    for so in target.rglob("*.so*"):
        if not so.is_file() or any(part.endswith(".libs") for part in so.relative_to(target).parts):
            continue
        before = so.stat().st_size
        done = subprocess.run([strip, "--strip-unneeded", str(so)], capture_output=True, check=False)
        if done.returncode == 0:
            saved += before - so.stat().st_size
    return saved


def _copy_sources(target: Path, function_dir: Path, modules: list[Path]) -> None:
    for rel in modules:
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    for src in sorted(function_dir.glob("*.py")):
        if src.name != "__init__.py":
            shutil.copy2(src, target / src.name)


def dir_size(path: Path) -> int:
    """Total size in bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def zipped_size(path: Path) -> int:
    """Size of the deflate-compressed zip Lambda would receive for this directory."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
        with zipfile.ZipFile(tmp.name, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in sorted(path.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(path).as_posix())
        return os.path.getsize(tmp.name)


def _resolve_out_root(out_root: Path) -> Path:
    out_root = Path(out_root)
    return out_root if out_root.is_absolute() else output_root() / out_root


def asset_info(function: str, out_root: Path = DEFAULT_OUT_ROOT) -> dict[str, Any] | None:
    """The build record of an asset (fingerprint, sizes, modules), or None if never built."""
    info = _resolve_out_root(out_root) / f"{function}.json"
    return json.loads(info.read_text()) if info.is_file() else None


# ---------------------------------------------------------------------------- public entry point
def build_lambda_asset(function: str, out_root: Path = DEFAULT_OUT_ROOT, *, arch: str = "x86_64",
                       python_version: str = PYTHON_VERSION, force: bool = False, measure_zip: bool = True) -> Path:
    """Build (or reuse) ``<out_root>/<function>/`` for ``functions/<function>``; return its path.

    A relative ``out_root`` is resolved against the repository root (the current directory when
    mlship is installed rather than run from its checkout). The build record
    (fingerprint, unzipped/zipped sizes, shipped mlship modules) is written to
    ``<out_root>/<function>.json`` (``measure_zip=False`` skips zipping to measure, which
    takes seconds). Raises ``RuntimeError`` when pip fails or the result
    exceeds Lambda's 250 MB unzipped limit, ``FileNotFoundError`` for an unknown function.

    Example::

        from mlship.deploy.lambda_asset import build_lambda_asset, HANDLER, RUNTIME
        code = lambda_.Code.from_asset(str(build_lambda_asset("predict")))
    """
    function_dir = data_path("functions") / function
    requirements = function_dir / "requirements.txt"
    if not (function_dir / "handler.py").is_file() or not requirements.is_file():
        raise FileNotFoundError(f"functions/{function} needs handler.py and requirements.txt")
    if arch not in PLATFORMS:
        raise ValueError(f"arch must be one of {sorted(PLATFORMS)}, got {arch!r}")
    out_root = _resolve_out_root(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    out = out_root / function
    entry = sorted(p for p in function_dir.glob("*.py") if p.name != "__init__.py")
    platforms = PLATFORMS[arch]
    with open(out_root / f".{function}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        modules = mlship_closure(entry)
        all_pins = _pins(_constraints_file())
        deps_key = _digest([requirements], {"python": python_version, "platforms": platforms,
                                            "format": BUILD_FORMAT})
        deps = out_root / ".deps" / f"{function}-{deps_key[:16]}"
        pins = None if force else _valid_deps_pins(deps, all_pins)
        if pins is not None:
            fingerprint = _fingerprint(requirements, entry, modules, deps_key, pins, python_version)
            previous = asset_info(function, out_root)
            if previous and previous.get("fingerprint") == fingerprint and (out / HANDLER_FILE).is_file():
                return out
        else:
            pins = _install_deps(function, requirements, deps, deps_key, all_pins, python_version, platforms)
            fingerprint = _fingerprint(requirements, entry, modules, deps_key, pins, python_version)
        unzipped, zipped, compiled = _assemble_asset(function, function_dir, deps, modules, out_root,
                                                     python_version, measure_zip)
        info = {"function": function, "fingerprint": fingerprint, "runtime": f"python{python_version}",
                "handler": HANDLER, "platforms": list(platforms), "unzipped_bytes": unzipped,
                "zipped_bytes": zipped, "pyc_compiled": bool(compiled),
                "pyc_python": runtime_python(python_version) if compiled else None,
                "mlship_modules": [m.as_posix() for m in modules],
                "requirements": requirements.read_text().split()}
        (out_root / f"{function}.json").write_text(json.dumps(info, indent=2) + "\n")
        _log(f"built {_shown(out)}: "
             f"{unzipped / 1e6:.1f} MB unzipped" + (f", {zipped / 1e6:.1f} MB zipped" if zipped else ""))
        return out


def _install_deps(function: str, requirements: Path, deps: Path, deps_key: str, all_pins: dict[str, str],
                  python_version: str, platforms: tuple[str, ...]) -> dict[str, str | None]:
    """Install, trim and strip the wheels into ``deps`` (atomically); return the installed pins.

    The other cached dependency sets of ``function`` are removed: only the current one is reused.
    """
    out_root = deps.parent.parent  # deps is <out_root>/.deps/<function>-<key>
    shutil.rmtree(deps, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".deps-", dir=out_root))
    try:
        _pip_install(requirements, staging, python_version, platforms)
        installed = sorted({_normalize(i.name.removesuffix(".dist-info").rsplit("-", 1)[0])
                            for i in staging.glob("*.dist-info")})
        pins = {name: all_pins.get(name) for name in installed}
        for name in RUNTIME_PROVIDED:
            _remove_distribution(staging, name)
        _prune(staging)
        saved = _strip_shared_objects(staging)
        _log(f"stripped shared objects: {saved / 1e6:.1f} MB saved")
        (staging / ".complete").write_text(json.dumps({"key": deps_key, "pins": pins}, indent=1))
        deps.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, deps)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in (out_root / ".deps").glob(f"{function}-*"):
        if stale != deps:
            shutil.rmtree(stale, ignore_errors=True)
    return pins


def _assemble_asset(function: str, function_dir: Path, deps: Path, modules: list[Path], out_root: Path,
                    python_version: str, measure_zip: bool) -> tuple[int, int | None, bool]:
    """Put deps + sources (+ .pyc) in ``<out_root>/<function>`` atomically; return (unzipped, zipped, compiled)."""
    out = out_root / function
    staging = Path(tempfile.mkdtemp(prefix=f".{function}-", dir=out_root))
    try:
        shutil.copytree(deps, staging, dirs_exist_ok=True, symlinks=True)
        (staging / ".complete").unlink(missing_ok=True)
        _copy_sources(staging, function_dir, modules)
        compiled = _compile_pyc(staging, python_version)
        unzipped = dir_size(staging)
        if unzipped > LAMBDA_UNZIPPED_LIMIT:
            raise RuntimeError(f"Lambda asset for {function} is {unzipped / 1e6:.0f} MB unzipped, over "
                               f"Lambda's {LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB limit")
        zipped = zipped_size(staging) if measure_zip else None
        trash = out_root / f".{function}-old-{os.getpid()}"
        if out.exists():
            os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return unzipped, zipped, compiled

HANDLER_FILE = "handler.py"
RUNTIME_PYTHON_ENV = "MLSHIP_RUNTIME_PYTHON"  # an interpreter of the runtime's version, when not on PATH


def _reports_version(python: str, version: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.strip() == version


@functools.cache
def runtime_python(python_version: str = PYTHON_VERSION) -> str | None:
    """An interpreter of the runtime's Python version (it compiles the shipped ``.pyc``), or None.

    Only that version may compile them: CPython ignores a ``.pyc`` of another version. Tried in
    order: the building interpreter, ``$MLSHIP_RUNTIME_PYTHON``, ``pythonX.Y`` on ``PATH`` (a pyenv
    shim that is not active fails the version check), pyenv's versions, /usr/local/bin, /usr/bin.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python_version:
        return sys.executable
    name = f"python{python_version}"
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates = [os.environ.get(RUNTIME_PYTHON_ENV), shutil.which(name),
                  *sorted(str(p) for p in pyenv.glob(f"{python_version}.*/bin/{name}")),
                  f"/usr/local/bin/{name}", f"/usr/bin/{name}"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _reports_version(candidate, python_version):
            return candidate
    return None


def _compile_pyc(target: Path, python_version: str) -> bool:
    """Compile every module under ``target`` with the runtime's Python (unchecked-hash ``.pyc``, see
    the module docstring); False when no such interpreter is here (nothing compiled)."""
    python = runtime_python(python_version)
    if python is None:
        _log(f"no Python {python_version} here (set ${RUNTIME_PYTHON_ENV}): no .pyc shipped, slower cold starts")
        return False
    # files that do not compile for this version (vendored py2 or template sources) are only skipped
    subprocess.run([python, "-m", "compileall", "-q", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(target)], capture_output=True, check=False)
    _log(f".pyc compiled by {python}")
    return True


def runtime_stand_in(out_root: Path = DEFAULT_OUT_ROOT, *, arch: str = "x86_64",
                     python_version: str = PYTHON_VERSION) -> Path:
    """A stand-in for what Lambda's Python runtime puts on ``sys.path`` after the asset
    (``/var/runtime``: boto3 and its dependencies, pinned by constraints.txt, compiled as the
    asset is), for running a built asset outside Lambda (benchmarks, tests); built once, cached."""
    out = _resolve_out_root(out_root) / ".runtime" / f"python{python_version}-{arch}"
    if (out / ".complete").is_file():
        return out
    requirements = out.parent / "runtime-requirements.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text("boto3\nbotocore\n")  # their dependencies are the rest of RUNTIME_PROVIDED
    with open(out.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / ".complete").is_file():
            shutil.rmtree(out, ignore_errors=True)
            _pip_install(requirements, out, python_version, PLATFORMS[arch])
            _compile_pyc(out, python_version)
            (out / ".complete").write_text("ok")
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m mlship.deploy.lambda_asset FUNCTION [...]``: build assets and print their sizes."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="+")
    parser.add_argument("--out-root", default=str(DEFAULT_OUT_ROOT))
    parser.add_argument("--arch", default="x86_64", choices=sorted(PLATFORMS))
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    for fn in args.functions:
        path = build_lambda_asset(fn, Path(args.out_root), arch=args.arch, force=args.force)
        info = asset_info(fn, Path(args.out_root)) or {}
        print(f"{fn}: {path} ({info.get('unzipped_bytes', 0) / 1e6:.1f} MB unzipped, "
              f"{(info.get('zipped_bytes') or 0) / 1e6:.1f} MB zipped, handler {HANDLER}, runtime {RUNTIME})")


if __name__ == "__main__":
    main()
