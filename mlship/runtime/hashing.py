"""sha256 helpers and canonical JSON, shared by bundles, edge packages and lineage."""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no whitespace) for hashing and signing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


_JSON_TYPES = ((bool, "boolean"), (numbers.Integral, "integer"), (numbers.Real, "number"), (str, "string"),
               ((list, tuple), "array"), (Mapping, "object"), (type(None), "null"))


def json_type(value: Any, *, article: bool = False) -> str:
    """The JSON name of a value's type (``null``, ``array``), never Python's (``NoneType``, ``list``).

    With ``article``: "an array", "a string" (``null`` stays bare), for "must be X, got Y" messages.
    numpy numbers count as JSON numbers.
    """
    name = next((label for cls, label in _JSON_TYPES if isinstance(value, cls)), "value")
    if not article or name == "null":
        return name
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def is_sha256_hex(value: Any) -> bool:
    """True for a 64-digit lowercase hex string, as :func:`sha256_file` returns."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
