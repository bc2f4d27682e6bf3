"""Helpers shared by the edge tests (imported as a top-level module: pytest puts this dir on sys.path)."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def repack(
    package: Path,
    out: Path,
    *,
    version: str | None = None,
    key: Any = None,
    mutate: Callable[[Path], None] | None = None,
    sign: bool = True,
) -> Path:
    """Copy a package with a new version (re-signed with ``key``) and/or a mutation (for tampering)."""
    from mlship.bundle import MANIFEST, pack_bundle, sign_bundle
    from mlship.signing import load_private_key

    work = out.with_name(out.name + ".dir")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with tarfile.open(package) as tar:
        tar.extractall(work, filter="data")
    if version is not None:
        manifest = json.loads((work / MANIFEST).read_text())
        manifest["version"] = version
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if sign and key is not None:
        sign_bundle(work, load_private_key(key) if isinstance(key, (str, Path)) else key)
    if mutate is not None:
        mutate(work)
    pack_bundle(work, out)
    shutil.rmtree(work)
    return out
