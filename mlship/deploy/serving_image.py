"""The Docker build context of the ``mlship serve`` image: the serving Dockerfile and the mlship package.

The Dockerfile copies ``mlship/serving/requirements.txt`` and ``mlship/`` from its context. In the
repository checkout the context is the checkout itself (:data:`CHECKOUT_EXCLUDE` keeps everything
else out); from an installed mlship (a user's own CDK app) it is a staged folder holding the
shipped Dockerfile and a copy of the installed package, so a user's project never needs this
repository.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlship.resources import DATA_DIR, checkout_root, data_path, output_root, package_root

DOCKERFILE = "Dockerfile"
# Never staged into the Docker build context (cdk.out would otherwise copy them on every synth).
CHECKOUT_EXCLUDE = (
    ".venv", "node_modules", "cdk.out", "build", "dist", ".git", ".mlship", ".demo", "bench/results",
    "**/__pycache__", "**/*.pyc", ".pytest_cache", ".ruff_cache", ".hypothesis", "*.egg-info", "tests",
    "docs", "demo", "bench", "**/*.tar.gz",
)
STAGED_EXCLUDE = ("**/__pycache__", "**/*.pyc")
# Installed below mlship/ but not part of the serving image (the checkout's image has none of them).
NOT_SERVED = (DATA_DIR, "batch", "edge", "__pycache__")


@dataclass(frozen=True)
class ImageContext:
    """A Docker build: ``directory`` as the context, ``file`` inside it, ``exclude`` globs."""

    directory: Path
    file: str
    exclude: tuple[str, ...]


def serving_image_context(stage_dir: Path | None = None) -> ImageContext:
    """The serving image's build context: the checkout, else a staged copy of the installed package.

    ``stage_dir`` (default ``build/serving-image`` under the current directory) is replaced on
    each call. Raises :class:`mlship.resources.MissingResource` when no Dockerfile is shipped.
    """
    root = checkout_root()
    if root is not None and (root / DOCKERFILE).is_file():
        return ImageContext(root, DOCKERFILE, CHECKOUT_EXCLUDE)
    dockerfile = data_path(DOCKERFILE)
    out = Path(stage_dir) if stage_dir is not None else output_root() / "build" / "serving-image"
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".serving-image-", dir=out.parent))
    try:
        shutil.copy2(dockerfile, staging / DOCKERFILE)
        shutil.copytree(package_root() / "mlship", staging / "mlship", ignore=_not_served)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImageContext(out, DOCKERFILE, STAGED_EXCLUDE)


def _not_served(folder: str, names: list[str]) -> list[str]:
    top = Path(folder).name == "mlship"
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc") or (top and n in NOT_SERVED)]
