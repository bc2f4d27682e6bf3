"""Bundles on S3: a ``.tar.gz`` object or a directory prefix, downloaded into the hash-checked cache.

The ``s3://`` source of :func:`mlship.runtime.sources.open_bundle` (looked up by scheme).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from mlship.aws.clients import client, error_code, http_status, is_missing, is_no_such_bucket
from mlship.errors import BundleError, BundleNotFound, TransientDownloadError
from mlship.runtime.archive import (
    MAX_BUNDLE_BYTES_ENV,
    Admission,
    ArchiveError,
    ExtractLimits,
    cache_dir,
    cached,
    ensure_dir,
    unpack,
)
from mlship.runtime.bundle import Bundle
from mlship.runtime.hashing import sha256_bytes
from mlship.runtime.manifest import MANIFEST


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
        handle, tmp = tempfile.mkstemp(prefix=tarball.name + ".", suffix=".part", dir=ensure_dir(tarball.parent))
        os.close(handle)
        try:
            s3.download_file(bucket, key, tmp)
            os.replace(tmp, tarball)
        finally:
            Path(tmp).unlink(missing_ok=True)
        unpack(tarball, staging, limits)

    return cached(entry, build)


def _download_prefix(s3: Any, uri: str, key: str, base: Path, limits: ExtractLimits) -> Bundle:
    bucket, _ = parse_s3_uri(uri)
    prefix = key.rstrip("/") + "/" if key else ""
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += page.get("Contents", [])
    if not objects:
        raise BundleNotFound(f"nothing found at {uri}")
    fingerprint = sha256_bytes("".join(f"{o['Key']}{o['ETag']}" for o in objects).encode())[:32]
    members = [o for o in objects if o["Key"][len(prefix):] and not o["Key"].endswith("/")]
    # the manifest first, as in an archive: later objects are then checked against it before download
    members.sort(key=lambda o: o["Key"][len(prefix):] != MANIFEST)

    def build(staging: Path) -> None:
        gate = Admission(uri, limits)
        for obj in members:
            gate.header()
            rel = gate.admit(obj["Key"][len(prefix):], int(obj.get("Size", 0)))
            local = staging / rel
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(local))
            if rel == MANIFEST:
                gate.manifest(local.read_bytes())
        gate.finish()

    return cached(base / fingerprint, build)


def open_source(uri: str, limits: ExtractLimits | None = None) -> Bundle:
    """Download an ``s3://`` bundle (a ``.tar.gz`` object or a directory prefix) into the cache."""

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
        raise download_error(uri, exc) from None


# The error codes botocore's standard retry mode treats as throttled or transient: they are still
# failing after its attempts, and may pass later.
_THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
    "PriorRequestNotComplete", "RequestTimeout", "RequestTimeoutException", "InternalError",
    "ServiceUnavailable",
})


def is_transient(exc: Exception) -> bool:
    """Throttling, a 5xx answer, or no answer at all (connection refused/reset, read timeout)."""
    from boto3.exceptions import RetriesExceededError
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError

    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError, RetriesExceededError)):
        return True  # RetriesExceededError: s3transfer gave up re-reading a broken object stream
    return error_code(exc) in _THROTTLING_CODES or http_status(exc) == 429 or http_status(exc) >= 500


def download_error(uri: str, exc: Exception) -> BundleError:
    """The typed error for a failed download: not found, transient (worth a retry) or neither."""
    message = f"cannot download bundle {uri}: {exc}"
    if is_missing(exc) or is_no_such_bucket(exc):
        return BundleNotFound(message)
    if is_transient(exc):
        return TransientDownloadError(message)
    return BundleError(message)


def download_s3(uri: str, *, limits: ExtractLimits | None = None) -> Path:
    """Download an ``s3://`` bundle into the cache (hash-checked; a corrupt cached copy is re-downloaded)."""
    return open_source(uri, limits).path
