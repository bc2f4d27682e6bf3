"""The model bundle: a directory (or ``.tar.gz``) holding ``model.onnx``, ``manifest.json``,
golden examples, the baseline profile, the model card and an optional Ed25519 signature.

``open_bundle(uri)`` resolves a local directory, a ``.tar.gz``, an ``s3://`` URI or a registry
URI (``mlship://NAME@ALIAS`` / ``mlship://NAME/VERSION``) into a local directory, cached.
This module needs only the standard library, ``cryptography`` for signatures, and boto3
(imported lazily, only for ``s3://``).
"""

from __future__ import annotations

# The layout constants are the manifest module's; they are part of this module's API too.
__all__ = ["FORMAT", "GOLDEN_FILE", "MANIFEST", "MODEL_FILE", "PROFILE_FILE", "SIGNATURE", "TASKS",
           "UNHASHED", "Bundle", "file_sizes", "hash_files", "sign_bundle", "write_manifest"]

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlship.errors import BundleError, VerificationError
from mlship.runtime.hashing import sha256_file
from mlship.runtime.manifest import (
    FORMAT,
    GOLDEN_FILE,
    MANIFEST,
    MODEL_FILE,
    PROFILE_FILE,
    SIGNATURE,
    TASKS,
    UNHASHED,
    MalformedDocumentError,
    check_manifest,
    read_document,
)

# Extraction limits: generous for real models (ONNX protobufs stop at 2 GiB), small enough that a
# crafted archive cannot fill a Lambda's /tmp or a device's disk before any check.
# One file: protobuf's largest message, so an ONNX model (without external data) always fits.


# ---------------------------------------------------------------------- documents


# Top-level manifest fields mlship reads: (JSON type, required). Other fields are allowed (the
# signature covers them); a bundle being exported has no 'files' yet.


# ---------------------------------------------------------------------- the bundle
class Bundle:
    """A bundle on local disk: its directory and parsed, shape-checked manifest."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(f"{self.path} is not a bundle: {MANIFEST} is missing")
        self.manifest: dict[str, Any] = read_document(manifest_path, MANIFEST)
        problems = check_manifest(self.manifest)
        if problems:
            raise MalformedDocumentError(MANIFEST, problems)
        # Set by the cache after it hashed this copy, so that verify() does not hash it twice.
        self._file_check: list[str] | None = None

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    def file(self, relpath: str) -> Path:
        return self.path / relpath

    def read_json(self, relpath: str) -> Any:
        return json.loads(self.file(relpath).read_text("utf-8"))

    @property
    def golden(self) -> dict[str, Any]:
        return self.read_json(GOLDEN_FILE)

    @property
    def profile(self) -> dict[str, Any]:
        return self.read_json(PROFILE_FILE)

    @property
    def is_signed(self) -> bool:
        return (self.path / SIGNATURE).is_file()

    def verify(self, public_key: Any | None = None, *, require_signature: bool = False) -> list[str]:
        """Check every file's sha256 (and the signature when a key is given).

        Raises :class:`VerificationError` naming each mismatching file or manifest field;
        returns informational notes (e.g. "signature present but not checked") on success.
        """
        problems = self._file_check if self._file_check is not None else self.file_problems()
        self._file_check = None
        notes: list[str] = []
        problems = problems + self._signature_problems(public_key, require_signature, notes)
        if problems:
            raise VerificationError(problems)
        return notes

    def file_problems(self) -> list[str]:
        """Name every listed file that is missing, resized or changed, and every unexpected or non-regular file."""
        listed: Mapping[str, str] = self.manifest.get("files") or {}
        sizes: Mapping[str, int] = self.manifest.get("sizes") or {}
        problems: list[str] = []
        if not listed:
            problems.append(f"{MANIFEST} field 'files' is empty: nothing to verify")
        elif self.manifest["model"]["file"] not in listed:
            problems.append(f"{MANIFEST} field 'model.file' names a file that 'files' does not list")
        found = _walk(self.path)
        for rel, expected in sorted(listed.items()):
            entry = found.get(rel)
            if entry is None:
                problems.append(f"{rel}: listed in the manifest but missing")
            elif entry[0] == "file":
                problems += _file_problem(self.path / rel, rel, expected, sizes.get(rel), entry[1])
        for rel, (kind, _) in sorted(found.items()):
            if kind != "file":
                problems.append(f"{rel}: is a {kind}, not a regular file")
            elif rel not in listed and rel not in UNHASHED:
                problems.append(f"{rel}: not listed in the manifest (unexpected file)")
        return problems

    def _signature_problems(self, public_key: Any | None, require_signature: bool, notes: list[str]) -> list[str]:
        from mlship.runtime.signing import check_record, verify_document

        record: Any = None
        if self.is_signed:
            try:  # a present signature must be well formed even when no key checks it
                record = read_document(self.path / SIGNATURE, SIGNATURE)
            except MalformedDocumentError as exc:
                return exc.problems
            shape = check_record(record, label=SIGNATURE)
            if shape:
                return shape
        if public_key is not None:
            if record is None:
                return [f"{SIGNATURE} is missing: the bundle is not signed"]
            return verify_document(self.manifest, record, public_key, label=MANIFEST)
        if require_signature:
            return ["a signature check was required but no public key was given"]
        notes.append("signature present but not checked (no public key given)" if record is not None
                     else "bundle is not signed")
        return []


def _walk(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (not following links): relative path -> (kind, size)."""
    found: dict[str, tuple[str, int]] = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames]:
            full = Path(folder, name)
            mode = full.lstat().st_mode
            rel = full.relative_to(root).as_posix()
            if stat.S_ISLNK(mode):
                found[rel] = ("symbolic link", 0)
            elif stat.S_ISREG(mode):
                found[rel] = ("file", full.lstat().st_size)
            elif not stat.S_ISDIR(mode):
                found[rel] = ("special file", 0)
    return found


def _file_problem(path: Path, rel: str, expected: str, declared: int | None, size: int) -> list[str]:
    if declared is not None and size != declared:
        return [f"{rel}: {size} bytes, the manifest says {declared} (file changed)"]
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return [f"{rel}: cannot be read ({exc.strerror or exc})"]
    return [] if actual == expected else [f"{rel}: sha256 does not match the manifest (file changed)"]


def write_manifest(path: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` with stable formatting."""
    Path(path, MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n",
                                    encoding="utf-8")


def hash_files(path: str | Path) -> dict[str, str]:
    """sha256 of every file in a bundle directory except the manifest and the signature."""
    root = Path(path)
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p.relative_to(root).as_posix() not in UNHASHED}


def file_sizes(path: str | Path) -> dict[str, int]:
    """Byte size of every hashed file (the manifest's optional ``sizes``: extraction checks them first)."""
    root = Path(path)
    return {rel: (root / rel).stat().st_size for rel in hash_files(root)}


def sign_bundle(path: str | Path, private_key: Any) -> Path:
    """Sign a bundle's manifest and write ``signature.json`` next to it."""
    from mlship.runtime.signing import sign_document

    bundle = Bundle(path)
    target = bundle.path / SIGNATURE
    target.write_text(json.dumps(sign_document(bundle.manifest, private_key), indent=2) + "\n", "utf-8")
    return target


# ---------------------------------------------------------------------- extraction


