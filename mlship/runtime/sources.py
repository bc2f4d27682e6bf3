"""Open a bundle from any URI: a directory, a ``.tar.gz``, ``s3://`` or ``mlship://``.

Local paths are handled here; remote schemes are sources looked up by scheme and imported only
when such a URI is used (as fsspec does with its protocol table), so the runtime tier has no
static dependency on boto3 and a device without it can still open local bundles.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mlship.errors import BundleError
from mlship.runtime.archive import ExtractLimits, open_tarball
from mlship.runtime.bundle import Bundle

# scheme -> module whose ``open_source(uri, limits)`` returns a local, hash-checked Bundle
REMOTE_SOURCES = {"s3://": "mlship.aws.s3", "mlship://": "mlship.registry.store"}


def _remote(text: str) -> str | None:
    return next((module for scheme, module in REMOTE_SOURCES.items() if text.startswith(scheme)), None)


def _open(uri: str | Path, limits: ExtractLimits | None) -> Bundle:
    text = str(uri)
    module = _remote(text)
    if module is not None:
        try:
            source = importlib.import_module(module)
        except ImportError as exc:
            raise BundleError(f"{text.split('://')[0]}:// bundles need the AWS tier ({exc.name} is not installed: "
                              "pip install 'mlship[aws]')") from None
        return source.open_source(text, limits)
    path = Path(text).expanduser()
    if path.is_dir():
        return Bundle(path)
    if path.is_file():
        return open_tarball(path, None, limits)
    raise BundleError(f"bundle not found: {text} (expected a directory, a .tar.gz, an s3:// or mlship:// URI)")


def open_bundle(uri: str | Path, *, limits: ExtractLimits | None = None) -> Bundle:
    """Open a bundle from any supported URI; archives and downloads go through the checked cache."""
    return _open(uri, limits)


def resolve_local(uri: str | Path, *, limits: ExtractLimits | None = None) -> Path:
    """Turn any bundle URI into a local directory (downloading/extracting as needed)."""
    return _open(uri, limits).path
