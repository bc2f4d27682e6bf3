"""sha256 helpers and canonical JSON, shared by bundles, edge packages and lineage."""

from __future__ import annotations

import hashlib
import json
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


def dataframe_sha256(frame: Any) -> str:
    """sha256 of a pandas DataFrame's content (pandas row hashes, index ignored)."""
    import pandas as pd

    return sha256_bytes(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, with an article, for messages ("an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_sha256_hex(value: Any) -> bool:
    """True for a 64-digit lowercase hex string, as :func:`sha256_file` returns."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
