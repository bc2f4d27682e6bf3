"""mlship's edge path: build optimized, signed ONNX packages, publish them through AWS IoT Jobs,
and install them safely on devices with the agent in :mod:`edge.agent`."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build(bundle: str | Path, out_dir: str | Path, *, private_key: Any, **options: Any) -> list[Any]:
    """Build, check, sign and pack the bundle's edge variants (``mlship edge build``); ``options``
    are :func:`mlship.edge.build.build_edge`'s (``holdout``, ``variants``, ``architectures``, ...).
    Returns one result per variant (its package, size, latency and check against fp32)."""
    from mlship.edge.build import build_edge

    return build_edge(bundle, out_dir, private_key=private_key, **options)
