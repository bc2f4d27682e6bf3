"""The one boto3 client factory: endpoint overrides, region default, standard retries.

Every AWS call in mlship goes through :func:`client`. It honours ``AWS_ENDPOINT_URL`` (and
the per-service ``AWS_ENDPOINT_URL_<SERVICE>`` variables, natively supported by botocore),
so the same code talks to AWS or to the local moto server started by ``mlship local up``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

DEFAULT_REGION = "us-east-1"
_lock = threading.Lock()
_cache: dict[tuple[str, str, str | None], Any] = {}


def region() -> str:
    """The AWS region: ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or us-east-1."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def endpoint_url(service: str | None = None) -> str | None:
    """The endpoint override in force for a service, if any."""
    if service:
        specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
        if specific:
            return specific
    return os.environ.get("AWS_ENDPOINT_URL")


def is_local() -> bool:
    """True when the endpoint override points at this machine (the local moto server)."""
    url = endpoint_url() or ""
    return "localhost" in url or "127.0.0.1" in url


def _ensure_local_credentials() -> None:
    if is_local() and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def client(service: str, *, region_name: str | None = None, **config: Any) -> Any:
    """A cached boto3 client with standard-mode retries (5 attempts, or ``AWS_MAX_ATTEMPTS``) and the
    endpoint override applied."""
    import boto3
    from botocore.config import Config

    _ensure_local_credentials()
    reg = region_name or region()
    url = endpoint_url(service)
    key = (service, reg, url) if not config else None
    if key is not None and key in _cache:
        return _cache[key]
    # standard-mode retries, 5 attempts unless the standard AWS_MAX_ATTEMPTS variable says otherwise
    attempts = {} if os.environ.get("AWS_MAX_ATTEMPTS") else {"max_attempts": 5}
    cfg = Config(retries={"mode": "standard", **attempts}, **config)
    made = boto3.session.Session().client(service, region_name=reg, endpoint_url=url, config=cfg)
    if key is not None:
        with _lock:
            _cache[key] = made
    return made


def clear_cache() -> None:
    """Forget cached clients (tests switch endpoints between moto servers)."""
    with _lock:
        _cache.clear()


def backoff(attempt: int) -> None:
    """Sleep before retrying a lost conditional write: full jitter, 20 ms doubling, at most 0.5 s."""
    import random
    import time

    time.sleep(random.uniform(0, min(0.5, 0.02 * (2**attempt))))  # noqa: S311 - jitter, not security


class ConditionalWriteConflict(Exception):
    """Conditional writes to one key kept colliding (409) through every retry."""


def conditional_put(s3: Any, bucket: str, key: str, body: bytes, condition: dict[str, str],
                    attempts: int = 8, **extra: Any) -> str | None:
    """``put_object`` under ``condition`` (``IfNoneMatch``/``IfMatch``): the new ETag, or None when
    the condition failed (someone wrote first). A 409 collision is retried with :func:`backoff`;
    :class:`ConditionalWriteConflict` when every attempt collided; any other error is raised as is."""
    for attempt in range(attempts):
        try:
            return str(s3.put_object(Bucket=bucket, Key=key, Body=body, **condition, **extra)["ETag"])
        except Exception as exc:
            if is_precondition_failure(exc):
                return None
            if not is_conflict(exc):
                raise
            backoff(attempt)
    raise ConditionalWriteConflict(f"cannot write s3://{bucket}/{key}: conditional writes kept conflicting")


def get_if_exists(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """``get_object``'s response, or None when the key does not exist (a missing bucket, and any
    other error, is raised as is)."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:  # botocore ClientError
        if is_missing(exc):
            return None
        raise


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` ("" for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: Exception) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 for anything else)."""
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_precondition_failure(exc: Exception) -> bool:
    """S3 refused a conditional write (If-Match / If-None-Match): someone else wrote first."""
    return error_code(exc) in {"PreconditionFailed", "412"} or http_status(exc) == 412


def is_conflict(exc: Exception) -> bool:
    """S3 answers 409 ConditionalRequestConflict when conditional writes collide: retry."""
    return error_code(exc) == "ConditionalRequestConflict" or http_status(exc) == 409


def is_missing(exc: Exception) -> bool:
    """The object (or key) does not exist; a missing bucket is not a missing key (see :func:`is_no_such_bucket`).

    A HEAD has no body, so S3 cannot name a missing bucket there: it is "404", as a missing key.
    """
    if is_no_such_bucket(exc):
        return False
    return error_code(exc) in {"NoSuchKey", "404", "NotFound"} or http_status(exc) == 404


def is_no_such_bucket(exc: Exception) -> bool:
    """The bucket itself does not exist (S3 answers 404 for it too)."""
    return error_code(exc) == "NoSuchBucket"


# SageMaker names an unknown resource with ValidationException (Describe* of a model package
# group, for one) or ResourceNotFound; every other service here uses a *NotFound* code.
_NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException", "ValidationException",
                              "NotFoundException", "NoSuchEntity"})
_ALREADY_EXISTS_CODES = frozenset({"ResourceInUse", "ResourceInUseException", "ResourceAlreadyExistsException",
                                   "AlreadyExistsException", "EntityAlreadyExists", "ConflictException"})


def is_not_found(exc: Exception) -> bool:
    """A describe or list call named a resource that does not exist (SageMaker, IoT, IAM)."""
    return error_code(exc) in _NOT_FOUND_CODES


def is_already_exists(exc: Exception) -> bool:
    """A create call named a resource that already exists (someone created it first)."""
    return error_code(exc) in _ALREADY_EXISTS_CODES
