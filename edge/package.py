"""The edge package format: an mlship bundle whose model file is one edge variant.

An edge package is a signed bundle directory (packed as ``NAME-VERSION-VARIANT.edge.tar.gz``)
that :class:`mlship.runtime.predictor.Predictor` loads like any bundle. Its manifest carries an
extra ``edge`` section::

    "edge": {
      "format": "mlship-edge/1",
      "variant": "fp32" | "int8-dynamic" | "int8-static" | "ort",
      "source": {"name", "version", "model_sha256"},          # the bundle it was built from
      "constraints": {"opset": {...}, "min_onnxruntime": "1.17", "architectures": ["any"],
                      "model_format": "onnx" | "ort", "required_operators": {...}},
      "checks": {...},          # agreement with the fp32 model on holdout and golden examples
      "size_bytes": int, "latency": {...}
    }

Because ``edge`` is a manifest field, the Ed25519 field-digest signature covers it. This
module is import-light (standard library + mlship core): the device agent uses it.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from mlship.errors import VerificationError
from mlship.runtime.bundle import SIGNATURE, Bundle
from mlship.runtime.versions import InvalidVersionError, Version, parse_version
from mlship.runtime.versions import is_newer as is_newer  # re-exported: the one version ordering (PEP 440)
from mlship.runtime.versions import same_version as same_version

EDGE_FORMAT = "mlship-edge/1"
PACKAGE_SUFFIX = ".edge.tar.gz"
VARIANTS = ("fp32", "int8-dynamic", "int8-static", "ort")
ANY_ARCH = "any"

_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "arm64": "aarch64",
    "armv8": "aarch64",
    "armv8l": "aarch64",
}


def package_filename(name: str, version: str, variant: str) -> str:
    """``NAME-VERSION-VARIANT.edge.tar.gz``."""
    return f"{name}-{version}-{variant}{PACKAGE_SUFFIX}"


def machine() -> str:
    """This machine's architecture, normalised (x86_64, aarch64, armv7l, ...)."""
    m = platform.machine().lower()
    return _ARCH_ALIASES.get(m, m)


def _runtime_release(text: str) -> Version:
    """A runtime version without its pre/dev/local parts (a 1.17 dev build satisfies >= 1.17)."""
    return parse_version(parse_version(text).base_version)


def check_constraints(
    manifest: dict[str, Any], *, runtime_version: str | None = None, arch: str | None = None
) -> list[str]:
    """Problems that stop this device from running the package (empty when it can)."""
    edge = manifest.get("edge")
    if not isinstance(edge, dict) or edge.get("format") != EDGE_FORMAT:
        return [f"manifest has no '{EDGE_FORMAT}' edge section: this is a plain bundle, not an edge package"]
    cons = edge.get("constraints") or {}
    if not isinstance(cons, dict):
        return [f"manifest field 'edge.constraints' must be an object, got {type(cons).__name__}"]
    problems = []
    if runtime_version is None:
        import onnxruntime

        runtime_version = onnxruntime.__version__
    needed = cons.get("min_onnxruntime")
    if needed:
        try:
            if _runtime_release(runtime_version) < _runtime_release(str(needed)):
                problems.append(f"package needs onnxruntime >= {needed}, this device has {runtime_version}")
        except InvalidVersionError as exc:
            problems.append(f"cannot compare onnxruntime versions: {exc}")
    archs = cons.get("architectures") or [ANY_ARCH]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        return [*problems, "manifest field 'edge.constraints.architectures' must be a list of strings"]
    here = arch or machine()
    if ANY_ARCH not in archs and here not in archs:
        problems.append(f"package is built for {', '.join(archs)}, this device is {here}")
    return problems


def signer_key_id(path: str | Path) -> str | None:
    """The key id recorded in a package's signature.json (None when unsigned/unreadable)."""
    try:
        kid = json.loads((Path(path) / SIGNATURE).read_text("utf-8")).get("key_id")
    except (OSError, ValueError, AttributeError):  # missing, not JSON, or not a JSON object
        return None
    return kid if isinstance(kid, str) and kid else None


def verify_package(path: str | Path, trusted_keys: dict[str, Any]) -> Bundle:
    """Verify an extracted package: every hash, an Ed25519 signature by a trusted key, edge section.

    ``trusted_keys`` maps key id -> Ed25519 public key (see :func:`mlship.runtime.signing.key_id`).
    Raises :class:`VerificationError` naming the problem.
    """
    bundle = Bundle(path)
    if not trusted_keys:
        raise VerificationError(["no trusted public keys are configured on this device"])
    kid = signer_key_id(path)
    if kid is None:
        raise VerificationError([f"{SIGNATURE} is missing or unreadable: the package is not signed"])
    key = trusted_keys.get(kid)
    if key is None:
        raise VerificationError(
            [
                f"package is signed with key {kid}, which is not trusted on this device "
                f"(trusted: {', '.join(sorted(trusted_keys))})"
            ]
        )
    bundle.verify(key)
    edge = bundle.manifest.get("edge")
    if not isinstance(edge, dict) or edge.get("format") != EDGE_FORMAT:
        raise VerificationError([f"manifest field 'edge' is missing or not {EDGE_FORMAT}: not an edge package"])
    return bundle
