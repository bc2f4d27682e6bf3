"""The model a rollout deploys: one concrete registry version, resolved and checked before any change.

A rollout never deploys an alias: ``NAME@ALIAS`` is resolved once, here, to ``NAME/VERSION`` and
the serving resources are built for that version's immutable bundle. The bundle is opened,
verified (file hashes, the signature when a key is given) and its golden examples are predicted
before anything in AWS changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlship.errors import MlshipError

_SHORT = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?P<sep>[@/])(?P<ref>[A-Za-z0-9_.+-]+)$")


class ModelRefError(MlshipError):
    """A model reference that names nothing deployable (bad syntax, unknown version or alias, bad bundle)."""

    kind = "model_ref"


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete model version and where its bundle is."""

    name: str
    version: str
    bundle_uri: str  # s3://.../bundle.tar.gz
    registry: Any | None = None  # the Registry it came from (None for a plain s3:// bundle)
    alias: str | None = None  # the alias it was resolved from, if any

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


def registry_uri(reference: str) -> str | None:
    """``mlship://...`` for ``NAME/VERSION``, ``NAME@ALIAS`` or a registry URI; ``None`` for ``s3://``."""
    if reference.startswith("mlship://"):
        return reference
    if reference.startswith("s3://"):
        return None
    if _SHORT.match(reference):
        return f"mlship://{reference}"
    raise ModelRefError(f"--model {reference!r}: use NAME/VERSION, NAME@ALIAS, mlship://... or s3://BUCKET/KEY")


def open_registry(bucket: str | None) -> Any | None:
    """The registry in ``bucket`` (default ``$MLSHIP_REGISTRY_BUCKET``), or None when none is configured:
    :func:`resolve_model` then names the missing bucket if the reference needs one."""
    from mlship.registry.store import Registry, RegistryError

    try:
        return Registry(bucket, sagemaker=False)
    except RegistryError:
        return None


def resolve_model(reference: str, registry: Any | None) -> ResolvedModel:
    """Resolve ``reference`` to one version (registry lookups only; nothing is downloaded)."""
    from mlship.registry.store import parse_uri

    uri = registry_uri(reference)
    if uri is None:
        return _from_s3(reference)
    if registry is None:
        raise ModelRefError(f"--model {reference}: no registry bucket (set --bucket or MLSHIP_REGISTRY_BUCKET)")
    ref = parse_uri(uri)
    try:
        bundle_uri = registry.resolve(uri)
    except MlshipError as exc:
        raise ModelRefError(str(exc)) from exc
    version = ref.version
    if ref.alias is not None:
        record = registry.get_alias(ref.name, ref.alias)
        version = record.version if record is not None else None
    if not version:
        raise ModelRefError(f"--model {reference}: it names no version")
    return ResolvedModel(ref.name, str(version), bundle_uri, registry, ref.alias)


def _from_s3(uri: str) -> ResolvedModel:
    from mlship.runtime.sources import open_bundle

    try:
        manifest = open_bundle(uri).manifest
    except MlshipError as exc:
        raise ModelRefError(f"--model {uri}: {exc}") from exc
    return ResolvedModel(str(manifest["model"]["name"]), str(manifest["model"]["version"]), uri)


def check_deployable(model: ResolvedModel, public_key: Any = None) -> int:
    """Open, verify and golden-check the bundle (``Predictor.load`` does all three); return how many
    golden examples passed."""
    from mlship.runtime.predictor import Predictor

    try:
        predictor = Predictor.load(model.bundle_uri, public_key=public_key)
    except MlshipError as exc:
        raise ModelRefError(f"{model.ref} ({model.bundle_uri}) cannot be deployed: {exc}") from exc
    if (predictor.model_name, str(predictor.model_version)) != (model.name, model.version):
        raise ModelRefError(f"{model.bundle_uri} holds {predictor.model_name}:{predictor.model_version}, "
                            f"not {model.name}:{model.version}")
    return len(predictor.bundle.golden["inputs"])
