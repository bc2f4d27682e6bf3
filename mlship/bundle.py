"""The model bundle: a directory (or ``.tar.gz``) holding ``model.onnx``, ``manifest.json``,
golden examples, the baseline profile, the model card and an optional Ed25519 signature.

``open_bundle(uri)`` resolves a local directory, a ``.tar.gz``, an ``s3://`` URI or a registry
URI (``mlship://NAME@ALIAS`` / ``mlship://NAME/VERSION``) into a local directory, cached.
This module needs only the standard library, ``cryptography`` for signatures, and boto3
(imported lazily, only for ``s3://``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import tarfile
import tempfile
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlship.errors import BundleError, VerificationError
from mlship.hashing import CHUNK, is_sha256_hex, json_type, sha256_bytes, sha256_file

FORMAT = "mlship-bundle/1"
MANIFEST = "manifest.json"
PACK_GZIP_LEVEL = 6
SIGNATURE = "signature.json"
MODEL_FILE = "model.onnx"
GOLDEN_FILE = "golden.json"
PROFILE_FILE = "profile.json"
UNHASHED = {MANIFEST, SIGNATURE}
TASKS = ("classification", "regression")

# Extraction limits: generous for real models (ONNX protobufs stop at 2 GiB), small enough that a
# crafted archive cannot fill a Lambda's /tmp or a device's disk before any check.
MAX_BUNDLE_BYTES_ENV = "MLSHIP_MAX_BUNDLE_BYTES"
MAX_MEMBER_BYTES_ENV = "MLSHIP_MAX_MEMBER_BYTES"
DEFAULT_MAX_BUNDLE_BYTES = 2 * 1024**3
# One file: protobuf's largest message, so an ONNX model (without external data) always fits.
DEFAULT_MAX_MEMBER_BYTES = 2**31 - 1
MAX_MEMBERS = 10_000
MAX_DOCUMENT_BYTES = 16 * 1024**2  # manifest.json / signature.json are read into memory


class MalformedDocumentError(VerificationError):
    """``manifest.json`` or ``signature.json`` is not the documented shape; each problem names the field."""

    def __init__(self, document: str, problems: list[str]):
        self.document = document
        super().__init__(problems)


class ArchiveError(BundleError):
    """An archive member (or S3 object) refused before it is written; ``reason`` is a stable code.

    Reasons: ``unreadable``, ``link``, ``special_file``, ``unsafe_path``, ``duplicate``,
    ``path_conflict``, ``unexpected``, ``too_large``, ``size_mismatch``, ``too_many_members``.
    """

    kind = "archive"

    def __init__(self, source: str, reason: str, detail: str, member: str | None = None):
        self.source, self.reason, self.member = source, reason, member
        where = f"{source}: member '{member}'" if member is not None else source
        super().__init__(f"{where} {detail}")


@dataclass(frozen=True)
class ExtractLimits:
    """Caps on what extracting one bundle may write (checked from headers, before writing)."""

    total_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    members: int = MAX_MEMBERS

    @classmethod
    def from_env(cls) -> ExtractLimits:
        """``$MLSHIP_MAX_BUNDLE_BYTES`` (total, default 2 GiB) and ``$MLSHIP_MAX_MEMBER_BYTES`` (one file,
        default 2 GiB - 1 or the total if smaller)."""
        total = _env_bytes(MAX_BUNDLE_BYTES_ENV, DEFAULT_MAX_BUNDLE_BYTES)
        return cls(total, _env_bytes(MAX_MEMBER_BYTES_ENV, min(total, DEFAULT_MAX_MEMBER_BYTES)))


def _env_bytes(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) <= 0:
        raise BundleError(f"{name} must be a positive number of bytes, got {text!r}")
    return int(text)


# ---------------------------------------------------------------------- documents
def safe_relpath(name: str) -> str | None:
    """The normalised relative path of an archive/manifest entry, or None if it could escape."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let two readers of one signed file see different values.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_document(data: bytes, label: str) -> dict[str, Any]:
    """Parse a bundle JSON document strictly: UTF-8, standard JSON, unique keys, an object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDocumentError(label, [f"{label} is not UTF-8 text (bad byte at offset {exc.start})"]) from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedDocumentError(label, [f"{label} is not valid JSON (nested too deeply)"]) from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN, over-long integers
        raise MalformedDocumentError(label, [f"{label} is not valid JSON ({exc})"]) from None
    if not isinstance(value, dict):
        raise MalformedDocumentError(label, [f"{label} is not a JSON object (got {json_type(value)})"])
    return value


def read_document(path: Path, label: str) -> dict[str, Any]:
    """Read and parse ``manifest.json`` / ``signature.json`` (at most 16 MiB)."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise MalformedDocumentError(label, [f"{label} is {size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit"])
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {label} in {path.parent}: {exc.strerror or exc}") from None
    return parse_document(data, label)


# Top-level manifest fields mlship reads: (JSON type, required). Other fields are allowed (the
# signature covers them); a bundle being exported has no 'files' yet.
_TOP_FIELDS: dict[str, tuple[type, bool]] = {
    "format": (str, True), "name": (str, True), "version": (str, True), "task": (str, True),
    "model": (dict, True), "input_schema": (dict, True), "output_schema": (dict, True),
    "files": (dict, False), "sizes": (dict, False), "description": (str, False), "created_at": (str, False),
    **{k: (dict, False) for k in ("metrics", "parity", "golden", "profile", "libraries", "lineage",
                                  "cross_validation", "edge")},
}
_ARTICLE = {str: "a string", dict: "an object", list: "an array", int: "an integer"}


def _has_type(value: Any, want: type) -> bool:
    return isinstance(value, want) and not (want is int and isinstance(value, bool))


class _Shape:
    """Collects named type problems of one JSON document."""

    def __init__(self, label: str):
        self.label, self.problems = label, []

    def need(self, doc: Mapping[str, Any], key: str, want: type, path: str, *, required: bool = True,
             nullable: bool = False) -> Any:
        """``doc[key]`` if it has type ``want``; else record the problem and return None."""
        if key not in doc:
            if required:
                self.problems.append(f"{self.label} field '{path}' is missing")
            return None
        value = doc[key]
        if (value is None and nullable) or _has_type(value, want):
            return value
        self.problems.append(f"{self.label} field '{path}' must be {_ARTICLE[want]}, got {json_type(value)}")
        return None

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{self.label} field '{path}' {problem}")


def check_manifest(doc: Mapping[str, Any], label: str = MANIFEST) -> list[str]:
    """Named problems with the shape of a manifest (empty when every field mlship reads is well typed)."""
    shape = _Shape(label)
    values = {k: shape.need(doc, k, want, k, required=req) for k, (want, req) in _TOP_FIELDS.items()}
    if values["format"] is not None and values["format"] != FORMAT:
        shape.add("format", f"is not {FORMAT!r}")
    if values["task"] is not None and values["task"] not in TASKS:
        shape.add("task", f"must be one of {', '.join(TASKS)}, got {values['task']!r}")
    _check_sections(shape, values)
    _check_files(shape, values["files"], values["sizes"])
    return shape.problems


def _check_sections(shape: _Shape, values: Mapping[str, Any]) -> None:
    if values["model"] is not None:
        model_file = shape.need(values["model"], "file", str, "model.file")
        if model_file is not None and safe_relpath(model_file) != model_file:
            shape.add("model.file", f"{model_file!r} is not a relative path inside the bundle")
    if values["input_schema"] is not None:
        schema = values["input_schema"]
        for i, item in enumerate(shape.need(schema, "fields", list, "input_schema.fields") or []):
            if not isinstance(item, dict):
                shape.add(f"input_schema.fields[{i}]", f"must be an object, got {json_type(item)}")
                continue
            shape.need(item, "name", str, f"input_schema.fields[{i}].name")
            shape.need(item, "dtype", str, f"input_schema.fields[{i}].dtype")
        shape.need(schema, "layout", str, "input_schema.layout", required=False)
        shape.need(schema, "tensor_input", str, "input_schema.tensor_input", required=False, nullable=True)
    if values["output_schema"] is not None:
        outputs = values["output_schema"]
        for name, value in (shape.need(outputs, "onnx_outputs", dict, "output_schema.onnx_outputs") or {}).items():
            if not isinstance(value, str):
                shape.add(f"output_schema.onnx_outputs.{name}", f"must be a string, got {json_type(value)}")
        shape.need(outputs, "classes", list, "output_schema.classes", required=False, nullable=True)
    for section in ("golden", "profile"):
        if values[section] is not None:
            shape.need(values[section], "file", str, f"{section}.file", required=False)


def _check_files(shape: _Shape, files: Mapping[str, Any] | None, sizes: Mapping[str, Any] | None) -> None:
    for rel, digest in sorted((files or {}).items()):
        if safe_relpath(rel) != rel or rel in UNHASHED:
            shape.add(f"files[{rel}]", "is not a relative path of a bundle file")
        if not is_sha256_hex(digest):
            shape.add(f"files[{rel}]", f"must be a sha256 hex digest, got {json_type(digest)}")
    for rel, size in sorted((sizes or {}).items()):
        if not _has_type(size, int) or size < 0:
            shape.add(f"sizes[{rel}]", f"must be a non-negative integer, got {json_type(size)}")
        elif files is not None and rel not in files:
            shape.add(f"sizes[{rel}]", "names a file that 'files' does not list")


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
        from mlship.signing import check_record, verify_document

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
    from mlship.signing import sign_document

    bundle = Bundle(path)
    target = bundle.path / SIGNATURE
    target.write_text(json.dumps(sign_document(bundle.manifest, private_key), indent=2) + "\n", "utf-8")
    return target


def _pack_order(src: Path) -> list[Path]:
    # manifest.json first: an extractor then knows every expected member and size before writing any
    files = [p for p in sorted(src.rglob("*")) if p.is_file()]
    first = [src / name for name in (MANIFEST, SIGNATURE) if (src / name).is_file()]
    return first + [p for p in files if p not in first]


def pack_bundle(path: str | Path, out: str | Path) -> Path:
    """Write a deterministic ``.tar.gz`` of a bundle directory (files at the archive root, manifest first).

    gzip level 6 (gzip's own default): on a 14 MB random-forest bundle it packs in 0.5 s instead
    of level 9's 4 s, for an archive 2% larger (ONNX float weights barely compress further).
    """
    src, out = Path(path), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with (open(tmp, "wb") as raw,
          gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=PACK_GZIP_LEVEL) as gz,
          tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar):
        for p in _pack_order(src):
            # a plain regular-file header (gettarinfo would turn a second hard link into a link member)
            info = tarfile.TarInfo(p.relative_to(src).as_posix())
            info.size, info.mode = p.stat().st_size, 0o644
            with open(p, "rb") as fh:
                tar.addfile(info, fh)
    os.replace(tmp, out)
    return out


def cache_dir() -> Path:
    """Where downloaded and extracted bundles live (``MLSHIP_CACHE_DIR``, /tmp in Lambda)."""
    if os.environ.get("MLSHIP_CACHE_DIR"):
        return Path(os.environ["MLSHIP_CACHE_DIR"])
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path("/tmp/mlship-cache")
    return Path.home() / ".cache" / "mlship"


# ---------------------------------------------------------------------- extraction
class _Admission:
    """Admits archive members (or S3 objects) one by one, before a byte of each is written.

    Checks paths, duplicates, per-member and total sizes, and, once ``manifest.json`` has been
    read (``pack_bundle`` puts it first), that every later member is listed with its size.
    """

    def __init__(self, source: str, limits: ExtractLimits):
        self.source, self.limits = source, limits
        self.seen: dict[str, int] = {}
        self.parents: set[str] = set()
        self.headers = 0
        self.total = 0
        self.listed: set[str] | None = None
        self.sizes: dict[str, int] = {}

    def refuse(self, reason: str, detail: str, member: str | None = None) -> ArchiveError:
        return ArchiveError(self.source, reason, detail, member)

    def header(self) -> None:
        """Count one member header of any type (a flood of directory entries is refused too)."""
        self.headers += 1
        if self.headers > self.limits.members:
            raise self.refuse("too_many_members", f"has more than {self.limits.members} members")

    def admit(self, name: str, size: int) -> str:
        """The safe relative path for member ``name`` of ``size`` bytes; raise ArchiveError if refused."""
        rel = safe_relpath(name)
        if rel is None:
            raise self.refuse("unsafe_path", "has an absolute, empty or '..' path", name)
        if rel in self.seen:
            raise self.refuse("duplicate", "appears twice in the archive", rel)
        parents = {"/".join(rel.split("/")[:i]) for i in range(1, rel.count("/") + 1)}
        if rel in self.parents or parents & self.seen.keys():
            raise self.refuse("path_conflict", "is both a file and a directory in the archive", rel)
        self._check_size(rel, size)
        self.seen[rel] = size
        self.parents |= parents
        self.total += size
        return rel

    def _check_size(self, rel: str, size: int) -> None:
        limits = self.limits
        if rel in UNHASHED and size > MAX_DOCUMENT_BYTES:
            raise self.refuse("too_large", f"declares {size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit", rel)
        if size > limits.member_bytes:
            raise self.refuse("too_large", f"declares {size} bytes, over the per-member limit of "
                              f"{limits.member_bytes} bytes (${MAX_MEMBER_BYTES_ENV})", rel)
        if self.total + size > limits.total_bytes:
            raise self.refuse("too_large", f"brings the extracted size to {self.total + size} bytes, over the "
                              f"limit of {limits.total_bytes} bytes (${MAX_BUNDLE_BYTES_ENV})", rel)
        self._check_listed(rel, size)

    def _check_listed(self, rel: str, size: int) -> None:
        if self.listed is None:
            return
        if rel not in self.listed:
            raise self.refuse("unexpected", f"is not listed in {MANIFEST}", rel)
        if rel in self.sizes and self.sizes[rel] != size:
            raise self.refuse("size_mismatch", f"is {size} bytes, {MANIFEST} says {self.sizes[rel]}", rel)

    def manifest(self, data: bytes) -> None:
        """Learn the expected members from the archive's manifest (and re-check those already admitted)."""
        doc = parse_document(data, MANIFEST)
        problems = check_manifest(doc)
        if problems:
            raise MalformedDocumentError(MANIFEST, problems)
        if "files" not in doc:
            return
        self.listed, self.sizes = set(doc["files"]) | UNHASHED, dict(doc.get("sizes") or {})
        declared = sum(self.sizes.values())
        if declared > self.limits.total_bytes:
            raise self.refuse("too_large", f"{MANIFEST} declares {declared} bytes, over the limit of "
                              f"{self.limits.total_bytes} bytes (${MAX_BUNDLE_BYTES_ENV})")
        for rel, size in self.seen.items():
            self._check_listed(rel, size)

    def finish(self) -> None:
        """After the last member: the archive must have held a manifest."""
        if MANIFEST not in self.seen:
            raise self.refuse("no_manifest", f"has no {MANIFEST}: not a bundle")


def _member_kind(member: tarfile.TarInfo) -> tuple[str, str] | None:
    """(reason, what it is) when a member is not a plain file or directory, else None."""
    if member.issym():
        return "link", "symbolic link"
    if member.islnk():
        return "link", "hard link"
    if member.isdev():
        return "special_file", "device or FIFO"
    if member.issparse():
        return "special_file", "sparse file"
    if not (member.isreg() or member.isdir()):
        return "special_file", f"special member (tar type {member.type!r})"
    return None


def _unpack(tarball: Path, staging: Path, limits: ExtractLimits) -> None:
    """Extract a bundle archive into the empty directory ``staging``, admitting each member first."""
    gate = _Admission(str(tarball), limits)
    try:
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                gate.header()
                kind = _member_kind(member)
                if kind is not None:
                    raise gate.refuse(kind[0], f"is a {kind[1]}: bundles hold regular files only", member.name)
                if member.isdir():  # never created from its header: parents come from file paths
                    if safe_relpath(member.name) is None and member.name not in (".", "./"):
                        raise gate.refuse("unsafe_path", "has an absolute, empty or '..' path", member.name)
                    continue
                _write_member(tar, member, staging, gate.admit(member.name, member.size), gate)
        gate.finish()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise gate.refuse("unreadable", f"is not a readable bundle archive: {exc}") from None
    except OSError as exc:
        raise BundleError(f"cannot extract {tarball}: {exc.strerror or exc}") from None


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path, rel: str, gate: _Admission) -> None:
    source = tar.extractfile(member)
    if source is None:  # cannot happen for a regular file; kept so a tar quirk is an error, not None.read()
        raise gate.refuse("unreadable", "has no data", rel)
    target = staging / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if rel == MANIFEST:
        data = source.read()
        gate.manifest(data)
        target.write_bytes(data)
        return
    with open(target, "xb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _open_entry(path: Path) -> tuple[Bundle | None, list[str]]:
    """A cache entry and its hash problems (None and the reason when it is not even a bundle)."""
    try:
        bundle = Bundle(path)
    except BundleError as exc:
        return None, [str(exc)]
    return bundle, bundle.file_problems()


def _install(staging: Path, target: Path) -> None:
    """Rename a verified staging directory to ``target``, first moving a corrupt entry aside."""
    stale: Path | None = None
    if target.exists() or target.is_symlink():
        bundle, problems = _open_entry(target)
        if bundle is not None and not problems:  # a concurrent loader installed an intact copy meanwhile
            shutil.rmtree(staging, ignore_errors=True)
            return
        stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(target, stale)
        except FileNotFoundError:  # a concurrent loader moved it first
            stale = None
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise BundleError(f"cannot replace the corrupt cache entry {target}: {exc.strerror or exc}") from None
    try:
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        bundle, problems = _open_entry(target)
        if bundle is None or problems:  # not a concurrent loader's intact copy: never reuse it silently
            raise BundleError(f"cannot move the extracted bundle into {target}: {exc.strerror or exc}") from None
    finally:
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)


def _cached(target: Path, build: Callable[[Path], None]) -> Bundle:
    """The hash-verified bundle at ``target``: reused when intact, else built in a fresh directory
    next to it (``build(staging)``), hash-checked and renamed into place.

    A corrupt entry (disk fault, partial copy, tampering with the cache) is rebuilt from its
    source instead of failing every later load.
    """
    if target.exists() or target.is_symlink():
        bundle, problems = _open_entry(target)
        if bundle is not None and not problems:
            bundle._file_check = []
            return bundle
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=_mkdir(target.parent)))
    try:
        build(staging)
        problems = Bundle(staging).file_problems()
        if problems:
            raise VerificationError(problems)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _install(staging, target)
    bundle = Bundle(target)
    bundle._file_check = []
    return bundle


def _open_tarball(tarball: Path, dest: Path | None, limits: ExtractLimits | None) -> Bundle:
    limits = limits or ExtractLimits.from_env()
    if not tarball.is_file():
        raise BundleError(f"bundle archive not found: {tarball}")
    if dest is None:
        dest = cache_dir() / "bundles" / sha256_file(tarball)[:32]
    return _cached(dest, lambda staging: _unpack(tarball, staging, limits))


def extract_tarball(tarball: str | Path, dest: str | Path | None = None, *,
                    limits: ExtractLimits | None = None) -> Path:
    """Extract a bundle archive safely into ``dest`` (default: a cache directory keyed by its sha256).

    Every member is checked before it is written (regular files only, no absolute or '..'
    paths, no duplicates, sizes within ``limits`` (default :meth:`ExtractLimits.from_env`) and,
    with the manifest first, listed there); the extracted files are hash-checked before the
    directory is renamed into place. Raises :class:`ArchiveError` / :class:`VerificationError`.
    """
    return _open_tarball(Path(tarball), None if dest is None else Path(dest), limits).path


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key."""
    if not uri.startswith("s3://"):
        raise BundleError(f"not an s3:// URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise BundleError(f"s3 URI has no bucket: {uri}")
    return bucket, key


def _download_tarball(s3: Any, uri: str, key: str, base: Path, limits: ExtractLimits) -> Bundle:
    bucket, _ = parse_s3_uri(uri)
    head = s3.head_object(Bucket=bucket, Key=key)
    if int(head.get("ContentLength", 0)) > limits.total_bytes:
        raise ArchiveError(uri, "too_large", f"is {head['ContentLength']} bytes, over the limit of "
                           f"{limits.total_bytes} bytes (${MAX_BUNDLE_BYTES_ENV})")
    entry = base / sha256_bytes(f"{bucket}/{key}/{head['ETag']}".encode())[:32]
    tarball = entry.with_suffix(".tar.gz")

    def build(staging: Path) -> None:
        # a fresh download each time the entry is (re)built: the local tarball may be what broke;
        # one temporary file per download (threads of one process race here too), renamed atomically
        handle, tmp = tempfile.mkstemp(prefix=tarball.name + ".", suffix=".part", dir=_mkdir(tarball.parent))
        os.close(handle)
        try:
            s3.download_file(bucket, key, tmp)
            os.replace(tmp, tarball)
        finally:
            Path(tmp).unlink(missing_ok=True)
        _unpack(tarball, staging, limits)

    return _cached(entry, build)


def _download_prefix(s3: Any, uri: str, key: str, base: Path, limits: ExtractLimits) -> Bundle:
    bucket, _ = parse_s3_uri(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += page.get("Contents", [])
    if not objects:
        raise BundleError(f"nothing found at {uri}")
    fingerprint = sha256_bytes("".join(f"{o['Key']}{o['ETag']}" for o in objects).encode())[:32]
    members = [o for o in objects if o["Key"][len(prefix):] and not o["Key"].endswith("/")]
    # the manifest first, as in an archive: later objects are then checked against it before download
    members.sort(key=lambda o: o["Key"][len(prefix):] != MANIFEST)

    def build(staging: Path) -> None:
        gate = _Admission(uri, limits)
        for obj in members:
            gate.header()
            rel = gate.admit(obj["Key"][len(prefix):], int(obj.get("Size", 0)))
            local = staging / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(local))
            if rel == MANIFEST:
                gate.manifest(local.read_bytes())
        gate.finish()

    return _cached(base / fingerprint, build)


def _open_s3(uri: str, limits: ExtractLimits | None = None) -> Bundle:
    """Download an ``s3://`` bundle (a ``.tar.gz`` object or a directory prefix) into the cache."""
    from mlship.aws import client

    limits = limits or ExtractLimits.from_env()
    bucket, key = parse_s3_uri(uri)
    s3 = client("s3")
    base = cache_dir() / "s3"
    try:
        if key.endswith((".tar.gz", ".tgz")):
            return _download_tarball(s3, uri, key, base, limits)
        return _download_prefix(s3, uri, key, base, limits)
    except BundleError:
        raise
    except Exception as exc:  # botocore errors: name the URI and the AWS error
        raise BundleError(f"cannot download bundle {uri}: {exc}") from None


def download_s3(uri: str, *, limits: ExtractLimits | None = None) -> Path:
    """Download an ``s3://`` bundle into the cache (hash-checked; a corrupt cached copy is re-downloaded)."""
    return _open_s3(uri, limits).path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _local_source(uri: str | Path) -> str:
    text = str(uri)
    if text.startswith("mlship://"):
        from mlship.registry import resolve_uri  # registry aliases resolve to s3:// URIs

        text = resolve_uri(text)
    return text


def _open_cached(text: str, limits: ExtractLimits | None) -> Bundle:
    """Open an s3:// URI or a local archive through the cache."""
    if text.startswith("s3://"):
        return _open_s3(text, limits)
    path = Path(text).expanduser()
    if path.is_file():
        return _open_tarball(path, None, limits)
    raise BundleError(f"bundle not found: {text} (expected a directory, a .tar.gz, an s3:// or mlship:// URI)")


def resolve_local(uri: str | Path, *, limits: ExtractLimits | None = None) -> Path:
    """Turn any bundle URI into a local directory (downloading/extracting as needed)."""
    text = _local_source(uri)
    path = Path(text).expanduser()
    if not text.startswith("s3://") and path.is_dir():
        return path
    return _open_cached(text, limits).path


def open_bundle(uri: str | Path, *, limits: ExtractLimits | None = None) -> Bundle:
    """Open a bundle from any supported URI (see :func:`resolve_local`)."""
    text = _local_source(uri)
    path = Path(text).expanduser()
    if not text.startswith("s3://") and path.is_dir():
        return Bundle(path)
    return _open_cached(text, limits)
