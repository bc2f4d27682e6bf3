"""Ed25519 keys and signatures (``cryptography``) over a manifest's per-field digests.

The signature covers a map ``{field: sha256(canonical JSON of that field)}`` of the
manifest. Verifying the signature authenticates the map; comparing the map with the
manifest then names the exact field that was changed.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlship.runtime.hashing import canonical_json, is_sha256_hex, json_type, sha256_bytes

ALGORITHM = "ed25519"
SIGNATURE_BYTES = 64  # an Ed25519 signature
RECORD_FIELDS = ("algorithm", "key_id", "field_digests", "signature")


def generate_keypair(out_dir: str | Path, name: str = "mlship") -> tuple[Path, Path]:
    """Write ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` (SPKI PEM); return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (private_path, public_path):
        if p.exists():
            raise FileExistsError(f"{p} already exists: refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return private_path, public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from a PEM file, with a clear error for anything else."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise ValueError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def read_public_pem(path_or_pem: str | Path | bytes) -> bytes:
    """The PEM bytes of a public key given as PEM bytes, PEM text or a file path (``~`` expanded)."""
    if isinstance(path_or_pem, bytes):
        return path_or_pem
    if isinstance(path_or_pem, str) and path_or_pem.lstrip().startswith("-----BEGIN"):
        return path_or_pem.encode()
    try:
        return Path(path_or_pem).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read public key {path_or_pem}: {exc.strerror or exc}") from None


def load_public_key(path_or_pem: str | Path | bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM file path, PEM text or PEM bytes."""
    data = read_public_pem(path_or_pem)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot read public key {path_or_pem!r}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path_or_pem!r} is not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """Short, stable identifier of a public key: the first 16 hex digits of its sha256."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_bytes(raw)[:16]


def field_digests(document: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of the canonical JSON of every top-level field of a document."""
    return {k: sha256_bytes(canonical_json(v)) for k, v in document.items()}


def sign_document(document: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign a JSON document; return the signature record stored next to it."""
    digests = field_digests(document)
    signature = private_key.sign(canonical_json(digests))
    return {"algorithm": ALGORITHM, "key_id": key_id(private_key.public_key()),
            "field_digests": digests, "signature": base64.b64encode(signature).decode("ascii")}


def check_record(record: Any, *, label: str = "signature.json") -> list[str]:
    """Problems with the shape of a signature record (empty when every field has its type).

    Checked before any field is used, so a malformed record is a named verification failure
    (never a TypeError deep inside the signature check).
    """
    if not isinstance(record, dict):
        return [f"{label} is not a JSON object (got {json_type(record, article=True)})"]
    problems = [f"{label} field '{name}' is missing" for name in RECORD_FIELDS if name not in record]
    for name in ("algorithm", "key_id", "signature"):
        if name in record and not isinstance(record[name], str):
            problems.append(f"{label} field '{name}' must be a string, got {json_type(record[name], article=True)}")
    digests = record.get("field_digests")
    if "field_digests" in record and not isinstance(digests, dict):
        problems.append(f"{label} field 'field_digests' must be an object of sha256 digests, "
                        f"got {json_type(digests, article=True)}")
    elif isinstance(digests, dict):
        problems += [f"{label} field 'field_digests[{name}]' must be a sha256 hex digest, "
                     f"got {json_type(value, article=True)}"
                     for name, value in sorted(digests.items()) if not is_sha256_hex(value)]
    if isinstance(record.get("signature"), str) and _decode_signature(record["signature"]) is None:
        problems.append(f"{label} field 'signature' is not a base64 {SIGNATURE_BYTES}-byte Ed25519 signature")
    return problems


def _decode_signature(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error
        return None
    return raw if len(raw) == SIGNATURE_BYTES else None


def verify_document(document: Mapping[str, Any], record: Any,
                    public_key: Ed25519PublicKey, *, label: str = "manifest") -> list[str]:
    """Check a signature record against a document; return problems (empty when valid)."""
    shape = check_record(record)
    if shape:
        return shape
    if record["algorithm"] != ALGORITHM:
        return [f"signature algorithm {record['algorithm']!r} is not {ALGORITHM}"]
    expected_kid = key_id(public_key)
    if record["key_id"] != expected_kid:
        return [f"signature was made with key {record['key_id']}, not the trusted key {expected_kid}"]
    digests: dict[str, str] = record["field_digests"]
    try:
        public_key.verify(_decode_signature(record["signature"]) or b"", canonical_json(digests))
    except InvalidSignature:
        return ["signature does not match its signed field digests (signature file altered or wrong key)"]
    problems = []
    actual = field_digests(document)
    for name in sorted(set(digests) | set(actual)):
        if name not in actual:
            problems.append(f"{label} field '{name}' was removed after signing")
        elif name not in digests:
            problems.append(f"{label} field '{name}' was added after signing")
        elif digests[name] != actual[name]:
            problems.append(f"{label} field '{name}' does not match its signature")
    return problems
