"""The model registry: immutable versions and atomically moved aliases in S3, mirrored into
the SageMaker Model Registry.

Layout in the registry bucket (under an optional ``MLSHIP_REGISTRY_PREFIX``)::

    models/NAME/VERSION/bundle.tar.gz   the bundle; written once (If-None-Match: *), never replaced
    models/NAME/VERSION/version.json    the registration record (content sha256, who, when, metrics)
    models/NAME/VERSION/metrics.json    holdout metrics (the SageMaker package's ModelQuality source)
    aliases/NAME/ALIAS.json             the alias pointer: moved with If-Match on its ETag
    audit/NAME/ALIAS/GENERATION.json    one entry per alias move (who, when, from, to, why)
    models/NAME/VERSION/rollouts/STAMP-ID.json   one immutable record per rollout attempt (outcome,
                                        target, alarm, who, when); the version's status derives from the latest

Every alias move is a compare-and-swap on the pointer object (S3 conditional writes: ``If-Match``
with the ETag read, ``If-None-Match: *`` for the first move), so two concurrent moves can never
both succeed from the same state. The pointer carries a generation number and the move itself
(who, when, from, to, why); the audit entry for generation ``n`` is a copy of the pointer at
generation ``n`` written with ``If-None-Match: *``. Whoever finds it missing (the mover, the next
mover, or a reader) writes it, so a crash between the two writes loses no entry.

Registry URIs: ``mlship://NAME@ALIAS`` and ``mlship://NAME/VERSION`` (optionally
``?bucket=B``); :func:`resolve_uri` turns them into ``s3://`` URIs of the bundle archive. This
module imports only the standard library and (lazily) boto3 through :func:`mlship.aws.clients.client`:
Lambda handlers and Spark workers call it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from mlship.aws.clients import (
    ConditionalWriteConflict,
    backoff,
    conditional_put,
    get_if_exists,
    is_already_exists,
    is_conflict,
    is_missing,
    is_no_such_bucket,
    is_not_found,
    is_precondition_failure,
)
from mlship.aws.s3 import is_transient
from mlship.aws.s3 import open_source as open_s3
from mlship.errors import MlshipError, TransientDownloadError
from mlship.registry.rollouts import (
    OUTCOMES,
    ROLLOUTS_DIR,
    HistoryEntry,
    RolloutRecord,
    latest,
    merge_history,
    stamp,
    status_by_version,
)
from mlship.runtime.archive import ExtractLimits
from mlship.runtime.bundle import Bundle

ENV_BUCKET = "MLSHIP_REGISTRY_BUCKET"
ENV_PREFIX = "MLSHIP_REGISTRY_PREFIX"
ENV_SAGEMAKER = "MLSHIP_SAGEMAKER_MIRROR"
ENV_IMAGE = "MLSHIP_SAGEMAKER_IMAGE"
BUNDLE_OBJECT = "bundle.tar.gz"
VERSION_OBJECT = "version.json"
METRICS_OBJECT = "metrics.json"
SCHEME = "mlship://"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class RegistryError(MlshipError):
    """A registry operation failed (bad name, missing bucket, AWS error)."""

    kind = "registry"


class NotFoundError(RegistryError):
    """A model, version or alias does not exist."""

    kind = "not_found"


class TransientRegistryError(RegistryError):
    """S3 throttled the registry read or did not answer: the same call may succeed later."""

    kind = "transient"


class VersionExistsError(RegistryError):
    """A version is already registered with different content: versions are immutable."""

    kind = "version_exists"


class AliasConflictError(RegistryError):
    """An alias moved between reading it and writing it (a concurrent move won)."""

    kind = "alias_conflict"


# ---------------------------------------------------------------------------------- records
@dataclass
class VersionRecord:
    """One registered version (``version.json``)."""

    name: str
    version: str
    content_sha256: str
    bundle_uri: str
    registered_at: str
    registered_by: str
    task: str | None = None
    signed: bool = False
    size_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    sagemaker_package_arn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class AliasRecord:
    """An alias pointer at one generation; also the audit entry of the move that produced it."""

    name: str
    alias: str
    version: str
    generation: int
    previous: str | None
    updated_at: str
    updated_by: str
    reason: str = ""
    evidence: dict[str, Any] | None = None
    etag: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("etag")
        return data

    def body(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any], etag: str | None = None) -> AliasRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "etag"}
        return cls(**known, etag=etag)


@dataclass(frozen=True)
class RegistryRef:
    """A parsed ``mlship://`` URI."""

    name: str
    alias: str | None = None
    version: str | None = None
    bucket: str | None = None


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()  # set_alias(expect=ANY): move whatever the alias points at now (retries on races)


# ---------------------------------------------------------------------------------- helpers
def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def whoami() -> str:
    """The identity recorded in the audit log: ``MLSHIP_USER`` or ``user@host``."""
    if os.environ.get("MLSHIP_USER"):
        return os.environ["MLSHIP_USER"]
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers, Lambda)
        user = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "unknown")
    return f"{user}@{socket.gethostname()}"


def check_name(kind: str, value: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        first = "a letter" if kind == "alias" else "a letter or digit"
        raise RegistryError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' or '-' "
                            f"(starting with {first})")
    return value


def parse_uri(uri: str) -> RegistryRef:
    """Parse ``mlship://NAME@ALIAS`` or ``mlship://NAME/VERSION`` (``?bucket=B`` optional)."""
    if not uri.startswith(SCHEME):
        raise RegistryError(f"not a registry URI: {uri!r} (expected mlship://NAME@ALIAS or mlship://NAME/VERSION)")
    body, _, query = uri[len(SCHEME):].partition("?")
    bucket = (parse_qs(query).get("bucket") or [None])[0]
    if "@" in body:
        name, _, alias = body.partition("@")
        return RegistryRef(check_name("model name", name), alias=check_name("alias", alias, _ALIAS),
                           bucket=bucket)
    name, sep, version = body.partition("/")
    if not sep or not version:
        raise RegistryError(f"registry URI {uri!r} names no alias or version "
                            "(expected mlship://NAME@ALIAS or mlship://NAME/VERSION)")
    return RegistryRef(check_name("model name", name), version=check_name("version", version), bucket=bucket)


def resolve_uri(uri: str) -> str:
    """Resolve ``mlship://NAME@ALIAS`` / ``mlship://NAME/VERSION`` to the bundle's ``s3://`` URI.

    The bucket comes from ``?bucket=`` or ``$MLSHIP_REGISTRY_BUCKET``. One S3 GET for an alias,
    one HEAD for the bundle (to fail early and clearly when the version does not exist).
    """
    return Registry(parse_uri(uri).bucket, sagemaker=False).resolve(uri)


def open_source(uri: str, limits: ExtractLimits | None = None) -> Bundle:
    """The ``mlship://`` source of :func:`mlship.runtime.sources.open_bundle`: resolve, then download."""
    try:
        location = resolve_uri(uri)
    except TransientRegistryError as exc:  # a loader retries these (ModelLifecycle), unlike a missing alias
        raise TransientDownloadError(str(exc)) from None
    return open_s3(location, limits)


def sagemaker_group_name(name: str) -> str:
    """A SageMaker model package group name for a model (letters, digits and single '-')."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    return (cleaned or "model")[:63]


# ---------------------------------------------------------------------------------- registry
class Registry:
    """Versions and aliases of models in one S3 bucket (plus the SageMaker mirror).

    Example::

        reg = Registry("my-registry-bucket")
        record, created = reg.register("bundles/churn")          # models/churn/<version>/
        reg.set_alias("churn", "champion", record.version, reason="first model")
        reg.resolve("mlship://churn@champion")                  # s3://.../bundle.tar.gz
    """

    def __init__(self, bucket: str | None = None, prefix: str | None = None, *, sagemaker: bool | None = None,
                 image_uri: str | None = None):
        self.bucket = bucket or os.environ.get(ENV_BUCKET) or ""
        if not self.bucket:
            raise RegistryError(f"no registry bucket: pass --bucket, set {ENV_BUCKET} "
                                "or add ?bucket= to the URI")
        raw_prefix = os.environ.get(ENV_PREFIX, "") if prefix is None else prefix
        self.prefix = raw_prefix.strip("/") + "/" if raw_prefix.strip("/") else ""
        if sagemaker is None:
            sagemaker = os.environ.get(ENV_SAGEMAKER, "1").lower() not in {"0", "false", "no", "off"}
        self.sagemaker = sagemaker
        self.image_uri = image_uri or os.environ.get(ENV_IMAGE)

    # ------------------------------------------------------------------ plumbing
    @property
    def s3(self) -> Any:
        from mlship.aws.clients import client

        return client("s3")

    @property
    def sm(self) -> Any:
        from mlship.aws.clients import client

        return client("sagemaker")

    def _version_key(self, name: str, version: str, obj: str = "") -> str:
        return f"{self.prefix}models/{name}/{version}/{obj}"

    def _alias_key(self, name: str, alias: str) -> str:
        return f"{self.prefix}aliases/{name}/{alias}.json"

    def _audit_key(self, name: str, alias: str, generation: int) -> str:
        return f"{self.prefix}audit/{name}/{alias}/{generation:012d}.json"

    def bundle_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._version_key(name, version, BUNDLE_OBJECT)}"

    def _s3_error(self, exc: Exception, action: str, key: str) -> RegistryError:
        """The registry error of a failed S3 call: a missing bucket is named as such."""
        if is_no_such_bucket(exc):
            return RegistryError(f"registry bucket {self.bucket!r} does not exist")
        if is_transient(exc):
            return TransientRegistryError(f"cannot {action} s3://{self.bucket}/{key} now: {exc}")
        return RegistryError(f"cannot {action} s3://{self.bucket}/{key}: {exc}")

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if is_missing(exc):
                raise NotFoundError(f"s3://{self.bucket}/{key} not found") from None
            raise self._s3_error(exc, "read", key) from None

    def _get_json(self, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            obj = get_if_exists(self.s3, self.bucket, key)
        except Exception as exc:
            raise self._s3_error(exc, "read", key) from None
        return None if obj is None else (json.loads(obj["Body"].read()), obj["ETag"])

    def _exists(self, key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if is_missing(exc):
                return False
            raise self._s3_error(exc, "read", key) from None

    def _create(self, key: str, body: bytes, **extra: Any) -> str | None:
        """Write ``key`` only if absent; return its ETag, or None when it already exists."""
        try:
            return conditional_put(self.s3, self.bucket, key, body, {"IfNoneMatch": "*"}, **extra)
        except ConditionalWriteConflict as exc:
            raise RegistryError(str(exc)) from None
        except Exception as exc:
            raise self._s3_error(exc, "write", key) from None

    # ------------------------------------------------------------------ versions
    def register(self, bundle: str | Path, *, public_key: Any = None, description: str | None = None,
                 who: str | None = None) -> tuple[VersionRecord, bool]:
        """Store a bundle as ``models/NAME/VERSION/`` (name and version from its manifest).

        Verifies the bundle's hashes (and signature when ``public_key`` is given) first.
        Returns ``(record, created)``; registering the same content again returns the existing
        record with ``created=False``; different content under an existing version raises
        :class:`VersionExistsError`.
        """
        from mlship.runtime.archive import pack_bundle
        from mlship.runtime.hashing import canonical_json, sha256_bytes

        opened = _open_verified(bundle, public_key)
        name = check_name("model name", opened.name)
        version = check_name("version", opened.version)
        signature = opened.read_json("signature.json") if opened.is_signed else None
        content_sha = sha256_bytes(canonical_json({"manifest": opened.manifest, "signature": signature}))
        with tempfile.TemporaryDirectory(prefix="mlship-register-") as tmp:
            tarball = pack_bundle(opened.path, Path(tmp) / BUNDLE_OBJECT)
            data = tarball.read_bytes()
        bundle_key = self._version_key(name, version, BUNDLE_OBJECT)
        etag = self._create(bundle_key, data, ContentType="application/gzip",
                            Metadata={"content-sha256": content_sha, "mlship-name": name,
                                      "mlship-version": version})
        created = etag is not None
        if not created:
            existing_record = self._existing_version(name, version, content_sha)
            if existing_record is not None:
                return existing_record, False
            # the first registration crashed after storing the bundle: complete it (idempotent)
        metrics = (opened.manifest.get("metrics") or {}).get("holdout") or {}
        metrics_key = self._store_metrics(name, version, opened.manifest)
        record = VersionRecord(
            name=name, version=version, content_sha256=content_sha, bundle_uri=self.bundle_uri(name, version),
            registered_at=now(), registered_by=who or whoami(), task=opened.manifest.get("task"),
            signed=signature is not None, size_bytes=len(data), metrics=_scalar_metrics(metrics),
            description=description or opened.manifest.get("description") or None)
        if self.sagemaker:
            record.sagemaker_package_arn = self._mirror_version(record, f"s3://{self.bucket}/{metrics_key}")
        body = (json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str) + "\n").encode()
        if self._create(self._version_key(name, version, VERSION_OBJECT), body,
                        ContentType="application/json") is None:
            found = self._get_json(self._version_key(name, version, VERSION_OBJECT))
            return VersionRecord.from_dict(found[0]) if found else record, False
        return record, created

    def _existing_version(self, name: str, version: str, content_sha: str) -> VersionRecord | None:
        """The record of a version whose bundle is already stored, or None if its registration never finished.

        Raises :class:`VersionExistsError` when the stored bundle has other content than ``content_sha``.
        """
        head = self._head(self._version_key(name, version, BUNDLE_OBJECT))
        existing = (head.get("Metadata") or {}).get("content-sha256")
        if existing != content_sha:
            raise VersionExistsError(
                f"model {name} version {version} is already registered with different content "
                f"(sha256 {str(existing)[:12]}... != {content_sha[:12]}...): versions are immutable, "
                "export the new model with a new version")
        found = self._get_json(self._version_key(name, version, VERSION_OBJECT))
        for _ in range(20):  # a concurrent registration of the same content may still be finishing
            if found is not None:
                return VersionRecord.from_dict(found[0])
            time.sleep(0.05)
            found = self._get_json(self._version_key(name, version, VERSION_OBJECT))
        return None

    def _store_metrics(self, name: str, version: str, manifest: dict[str, Any]) -> str:
        """Write a version's holdout and cross-validation metrics (once); return the object key."""
        metrics_key = self._version_key(name, version, METRICS_OBJECT)
        metrics_doc = {"holdout": (manifest.get("metrics") or {}).get("holdout") or {},
                       "cross_validation": manifest.get("cross_validation")}
        metrics_body = json.dumps(metrics_doc, indent=2, sort_keys=True, default=str).encode()
        self._create(metrics_key, metrics_body, ContentType="application/json")
        return metrics_key

    def get_version(self, name: str, version: str) -> VersionRecord:
        """The registration record of a version (raises :class:`NotFoundError`)."""
        check_name("model name", name)
        key = self._version_key(name, check_name("version", version), VERSION_OBJECT)
        found = self._get_json(key)
        if found is None:
            raise NotFoundError(f"model {name} version {version} is not registered in "
                                f"s3://{self.bucket}/{self.prefix}")
        return VersionRecord.from_dict(found[0])

    def _list_prefixes(self, prefix: str) -> list[str]:
        out: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                out += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            raise self._s3_error(exc, "list", prefix) from None
        return out

    def list_models(self) -> list[str]:
        """Names of every model with at least one version."""
        return sorted(self._list_prefixes(f"{self.prefix}models/"))

    def list_versions(self, name: str) -> list[VersionRecord]:
        """Every registered version of a model, oldest registration first."""
        records = []
        for version in self._list_prefixes(f"{self.prefix}models/{check_name('model name', name)}/"):
            found = self._get_json(self._version_key(name, version, VERSION_OBJECT))
            if found is not None:
                records.append(VersionRecord.from_dict(found[0]))
        return sorted(records, key=lambda r: (r.registered_at, r.version))

    def resolve(self, uri: str) -> str:
        """The ``s3://`` URI of the bundle a registry URI names (alias or version), in this registry."""
        ref = parse_uri(uri)
        version = ref.version
        if ref.alias is not None:
            record = self.get_alias(ref.name, ref.alias)
            if record is None:
                raise NotFoundError(f"alias {ref.name}@{ref.alias} is not set in s3://{self.bucket}/{self.prefix}")
            version = record.version
        if not self._exists(self._version_key(ref.name, str(version), BUNDLE_OBJECT)):
            raise NotFoundError(f"model {ref.name} version {version} is not registered in "
                                f"s3://{self.bucket}/{self.prefix}")
        return self.bundle_uri(ref.name, str(version))

    # ------------------------------------------------------------------ aliases
    def get_alias(self, name: str, alias: str) -> AliasRecord | None:
        """The alias pointer (with its ETag), or None when the alias was never set."""
        key = self._alias_key(check_name("model name", name), check_name("alias", alias, _ALIAS))
        found = self._get_json(key)
        if found is None:
            return None
        return AliasRecord.from_dict(found[0], etag=found[1])

    def list_aliases(self, name: str) -> dict[str, AliasRecord]:
        """Every alias of a model."""
        prefix = f"{self.prefix}aliases/{check_name('model name', name)}/"
        out: dict[str, AliasRecord] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                alias = obj["Key"][len(prefix):].removesuffix(".json")
                record = self.get_alias(name, alias)
                if record is not None:
                    out[alias] = record
        return out

    def set_alias(self, name: str, alias: str, version: str, *, expect: Any = ANY, reason: str = "",
                  who: str | None = None, evidence: dict[str, Any] | None = None,
                  max_attempts: int = 25) -> AliasRecord:
        """Point ``NAME@ALIAS`` at ``version`` with a compare-and-swap on the pointer object.

        ``expect`` states what the move is based on: :data:`ANY` (move from whatever it points
        at now; lost races are retried, each retry re-reads the pointer so the audit's "from" is
        exact), ``None`` (the alias must not exist yet), a version string (the alias must point
        at that version), or an :class:`AliasRecord` previously read (nothing may have moved it
        since: the gate uses this so a promotion judged against champion X never replaces Y).
        A broken expectation raises :class:`AliasConflictError` and writes nothing.
        """
        check_name("model name", name)
        check_name("alias", alias, _ALIAS)
        self.get_version(name, version)  # only registered versions can be pointed at
        key = self._alias_key(name, alias)
        for attempt in range(max_attempts):
            current = self.get_alias(name, alias)
            _check_expectation(name, alias, current, expect)
            if current is not None:
                self._write_audit(current)  # backfill the previous move's entry if its writer died
            record = AliasRecord(name=name, alias=alias, version=version,
                                 generation=(current.generation + 1) if current else 1,
                                 previous=current.version if current else None, updated_at=now(),
                                 updated_by=who or whoami(), reason=reason, evidence=evidence)
            condition = {"IfMatch": current.etag} if current else {"IfNoneMatch": "*"}
            try:
                put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=record.body(),
                                         ContentType="application/json", **condition)
            except Exception as exc:
                if is_precondition_failure(exc) or is_conflict(exc) or is_missing(exc):
                    backoff(attempt)  # someone else moved it: re-read, re-check the expectation
                    continue
                raise RegistryError(f"cannot move {name}@{alias}: {exc}") from None
            record.etag = put["ETag"]
            self._write_audit(record)
            return record
        raise AliasConflictError(f"{name}@{alias} kept moving under {max_attempts} attempts: try again")

    def _write_audit(self, record: AliasRecord) -> None:
        key = self._audit_key(record.name, record.alias, record.generation)
        self._create(key, record.body(), ContentType="application/json")

    def history(self, name: str, alias: str) -> list[AliasRecord]:
        """The audit log of an alias, oldest move first (backfilling the latest entry if missing)."""
        current = self.get_alias(name, alias)
        if current is not None:
            with contextlib.suppress(RegistryError):  # a read-only caller: reported below from the pointer
                self._write_audit(current)
        prefix = f"{self.prefix}audit/{name}/{alias}/"
        out: list[AliasRecord] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found = self._get_json(obj["Key"])
                if found is not None:
                    out.append(AliasRecord.from_dict(found[0]))
        if current is not None and all(r.generation != current.generation for r in out):
            out.append(AliasRecord.from_dict(current.to_dict()))
        return sorted(out, key=lambda r: r.generation)

    # ------------------------------------------------------------------ rollouts
    def record_rollout(self, name: str, version: str, *, outcome: str, target: str, reason: str = "",
                       alarm: str | None = None, previous_version: str | None = None,
                       details: dict[str, Any] | None = None, alias: str = "champion",
                       who: str | None = None) -> RolloutRecord:
        """Store an immutable record of one rollout attempt of ``NAME/VERSION`` to ``target``.

        ``outcome`` is one of :data:`~mlship.registry.rollouts.OUTCOMES`; ``target`` names what was
        rolled out to (``endpoint:mlship-dev-churn``, ``lambda:mlship-dev-predict:live``); ``alias`` is
        the registry alias a success moves (shown in that alias's history when the attempt fails).
        Every call writes its own object (``If-None-Match: *`` on a unique key), so concurrent
        drivers lose nothing. The record does not move any alias: after a success the caller
        moves it with :meth:`promote_after_rollout` (record first, then move).
        """
        check_name("model name", name)
        check_name("alias", alias, _ALIAS)
        if outcome not in OUTCOMES:
            raise RegistryError(f"invalid rollout outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
        if not isinstance(target, str) or not target.strip():
            raise RegistryError("a rollout record needs a target (e.g. endpoint:NAME or lambda:FUNCTION:ALIAS)")
        self.get_version(name, version)  # only registered versions are rolled out
        at = now()
        record = RolloutRecord(name=name, version=version, outcome=outcome, target=target, recorded_at=at,
                               recorded_by=who or whoami(), id=f"{stamp(at)}-{uuid.uuid4().hex[:12]}",
                               reason=reason, alarm=alarm, previous_version=previous_version, alias=alias,
                               details=details)
        body = (json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str) + "\n").encode()
        key = self._version_key(name, version, f"{ROLLOUTS_DIR}/{record.id}.json")
        if self._create(key, body, ContentType="application/json") is None:  # a uuid collision: never in practice
            raise RegistryError(f"rollout record s3://{self.bucket}/{key} already exists")
        return RolloutRecord.from_dict(json.loads(body))

    def rollouts(self, name: str, version: str | None = None) -> list[RolloutRecord]:
        """Rollout records of one version (or of every version when ``version`` is None), oldest first."""
        base = f"{self.prefix}models/{check_name('model name', name)}/"
        prefix = base + (f"{check_name('version', version)}/{ROLLOUTS_DIR}/" if version is not None else "")
        marker = f"/{ROLLOUTS_DIR}/"
        out: list[RolloutRecord] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(base):]
                    if marker in rest and rest.endswith(".json"):
                        found = self._get_json(obj["Key"])
                        if found is not None:
                            out.append(RolloutRecord.from_dict(found[0]))
        except RegistryError:
            raise
        except Exception as exc:
            raise self._s3_error(exc, "list", prefix) from None
        return sorted(out, key=lambda r: (r.recorded_at, r.id))

    def last_rollout(self, name: str, version: str) -> RolloutRecord | None:
        """The latest rollout record of a version, or None when it was never rolled out."""
        return latest(self.rollouts(name, version))

    def version_status(self, name: str, version: str) -> str | None:
        """``deployed`` / ``rolled_back`` / ``failed`` / ``timeout`` from the latest rollout, or None."""
        record = self.last_rollout(name, version)
        return None if record is None else record.status

    def statuses(self, name: str) -> dict[str, str]:
        """The status of every version of a model that was rolled out (one listing)."""
        return status_by_version(self.rollouts(name))

    def promote_after_rollout(self, name: str, version: str, *, alias: str = "champion",
                              expected_previous: str | AliasRecord | None, evidence: dict[str, Any] | None = None,
                              reason: str = "", who: str | None = None) -> AliasRecord:
        """Move ``NAME@ALIAS`` to ``version`` after its rollout succeeded (compare-and-swap, audited).

        Refused (:class:`RegistryError`) unless the version's latest rollout record succeeded: record
        the rollout first. ``expected_previous`` is what the alias pointed at when the rollout
        started (a version, the :class:`AliasRecord` read then, or None: it must still be unset); if
        it moved meanwhile, :class:`AliasConflictError` is raised and nothing changes. The audit
        entry's evidence carries the rollout record. An alias already at ``version`` (a re-rollout
        of the same version) is returned unchanged.
        """
        last = self.last_rollout(name, version)
        if last is None or not last.succeeded or (last.shadow and alias != last.alias):
            found = "no rollout record" if last is None else f"its latest rollout {last.outcome}"
            if last is not None and last.succeeded:
                found = f"its latest rollout was a shadow deployment on {last.target} (it answered no traffic)"
            raise RegistryError(f"cannot move {name}@{alias} to {version}: {found}")
        current = self.get_alias(name, alias)
        expected_version = expected_previous.version if isinstance(expected_previous, AliasRecord) else \
            expected_previous
        if current is not None and current.version == version == expected_version:
            return current
        why = reason or f"rollout succeeded on {last.target}"
        return self.set_alias(name, alias, version, expect=expected_previous, reason=why, who=who,
                              evidence={"rollout": last.to_dict(), **(evidence or {})})

    def history_with_rollouts(self, name: str, alias: str) -> list[HistoryEntry]:
        """The alias's moves and the failed rollouts of versions that tried to become it, in time order."""
        moves = self.history(name, alias)
        attempts = [r for r in self.rollouts(name) if r.alias == alias]
        return merge_history(moves, attempts)

    # ------------------------------------------------------------------ SageMaker mirror
    def _ensure_group(self, name: str) -> str:
        group = sagemaker_group_name(name)
        if self._group_exists(group):
            return group
        try:
            self.sm.create_model_package_group(ModelPackageGroupName=group,
                                               ModelPackageGroupDescription=f"mlship model {name}",
                                               Tags=[{"Key": "mlship:model", "Value": name}])
        except Exception as exc:
            # SageMaker answers a create that lost a race with ValidationException, as it does any bad
            # input: whether the group exists now decides, not the message.
            if not (is_already_exists(exc) or self._group_exists(group)):
                raise RegistryError(f"SageMaker: cannot create model package group {group}: {exc}") from None
        return group

    def _group_exists(self, group: str) -> bool:
        try:
            self.sm.describe_model_package_group(ModelPackageGroupName=group)
            return True
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise RegistryError(f"SageMaker: cannot read model package group {group}: {exc}") from None

    def _mirror_version(self, record: VersionRecord, metrics_uri: str) -> str:
        group = self._ensure_group(record.name)
        existing = self.find_package(record.name, record.version)
        if existing:
            return existing
        props = {"mlship:name": record.name, "mlship:version": record.version,
                 "mlship:content-sha256": record.content_sha256, "mlship:bundle": record.bundle_uri}
        props.update({f"metric:{k}": f"{v:.6g}" for k, v in list(record.metrics.items())[:30]})
        kwargs: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": _package_description(record.name, record.version),
            "ModelApprovalStatus": "PendingManualApproval",
            "CustomerMetadataProperties": props,
            "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                             "S3Uri": metrics_uri}}},
        }
        if self.image_uri:  # optional for versioned packages; the mlship serve container, when built
            kwargs["InferenceSpecification"] = {
                "Containers": [{"Image": self.image_uri, "ModelDataUrl": record.bundle_uri}],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json"]}
        try:
            return str(self.sm.create_model_package(**kwargs)["ModelPackageArn"])
        except Exception as exc:
            raise RegistryError(f"SageMaker: cannot create the model package of {record.name} "
                                f"{record.version}: {exc}") from None

    def find_package(self, name: str, version: str) -> str | None:
        """The SageMaker model package ARN mirroring a version, if any."""
        group = sagemaker_group_name(name)
        wanted = _package_description(name, version)
        try:
            paginator = self.sm.get_paginator("list_model_packages")
            for page in paginator.paginate(ModelPackageGroupName=group):
                for summary in page.get("ModelPackageSummaryList", []):
                    if summary.get("ModelPackageDescription") == wanted:
                        return str(summary["ModelPackageArn"])
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise RegistryError(f"SageMaker: cannot list packages of {group}: {exc}") from None
        return None

    def approve(self, name: str, version: str, *, status: str = "Approved",
                description: str = "") -> str | None:
        """Set the approval status of a version's SageMaker package; returns its ARN."""
        if not self.sagemaker:
            return None
        record = self.get_version(name, version)
        arn = record.sagemaker_package_arn or self.find_package(name, version)
        if arn is None:
            raise NotFoundError(f"model {name} version {version} has no SageMaker model package")
        try:
            self.sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status,
                                         ApprovalDescription=description[:1000])
        except Exception as exc:
            raise RegistryError(f"SageMaker: cannot set {arn} to {status}: {exc}") from None
        return arn

    def approval_status(self, name: str, version: str) -> str | None:
        """The SageMaker approval status of a version (None without a mirror)."""
        if not self.sagemaker:
            return None
        record = self.get_version(name, version)
        arn = record.sagemaker_package_arn or self.find_package(name, version)
        if arn is None:
            return None
        try:
            return str(self.sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"])
        except Exception as exc:
            raise RegistryError(f"SageMaker: cannot describe {arn}: {exc}") from None


def _package_description(name: str, version: str) -> str:
    return f"mlship {name} version {version}"


def _check_expectation(name: str, alias: str, current: AliasRecord | None, expect: Any) -> None:
    if expect is ANY:
        return
    where = f"{name}@{alias}"
    now_at = current.version if current else "nothing"
    if expect is None:
        if current is not None:
            raise AliasConflictError(f"{where} was expected to be unset but points at {now_at} "
                                     f"(moved by {current.updated_by} at {current.updated_at})")
        return
    if isinstance(expect, AliasRecord):
        if current is None or current.etag != expect.etag:
            by = f" (moved by {current.updated_by} at {current.updated_at})" if current else ""
            raise AliasConflictError(f"{where} moved from {expect.version} to {now_at} while this change was "
                                     f"being decided{by}: nothing changed, re-run against the new state")
        return
    if current is None or current.version != str(expect):
        raise AliasConflictError(f"{where} points at {now_at}, not {expect}: nothing changed")


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _open_verified(bundle: str | Path, public_key: Any) -> Bundle:
    """Open a bundle and check its hashes, and its signature when a ``public_key`` is given."""
    from mlship.runtime.sources import open_bundle

    opened = open_bundle(bundle)
    key_obj = None
    if public_key is not None:  # None means: register unsigned bundles too ($MLSHIP_PUBLIC_KEY is not read)
        from mlship.runtime.predictor import resolve_public_key

        key_obj = resolve_public_key(public_key)
    opened.verify(key_obj, require_signature=key_obj is not None)
    return opened
