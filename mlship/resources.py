"""Files a command needs at run time that live outside the Python package in the repository.

The serving and retraining Dockerfiles, ``constraints.txt``, ``cdk.json`` and the Lambda handler
sources under ``functions/`` sit at the top of the repository (the product's layout). The wheel's build
(``setup.py``) copies :data:`SHIPPED` into ``mlship/_data/``; :func:`data_path` finds a file in
the repository checkout this package runs from first (so edits are seen at once), else in the
installed package through :mod:`importlib.resources`. ``setup.py`` reads :data:`SHIPPED` and
:data:`DATA_DIR` from this file's source (keep them literals).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from mlship.errors import MlshipError

DATA_DIR = "_data"  # inside the mlship package
# Repository paths (files or directories) copied into the wheel, relative to the repository root.
# cdk.json: the repository app's context (CDK feature flags, the mlship defaults), a starting point.
SHIPPED = ("Dockerfile", "Dockerfile.retrain", "constraints.txt", "cdk.json", "functions/__init__.py",
           "functions/predict", "functions/monitor")
# Never copied from a shipped directory.
SKIPPED_NAMES = ("__pycache__",)
SKIPPED_SUFFIXES = (".pyc",)

PACKAGE_DIR = Path(__file__).resolve().parent


class MissingResource(MlshipError):
    """A file the package should ship is in neither the repository checkout nor the installed package."""


def checkout_root() -> Path | None:
    """The repository checkout this package runs from (an editable install), or None when installed."""
    root = PACKAGE_DIR.parent
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or not (root / "functions").is_dir():
        return None
    return root if 'name = "mlship"' in pyproject.read_text("utf-8") else None


def package_root() -> Path:
    """The directory holding the ``mlship`` package (the checkout, or ``site-packages``)."""
    return PACKAGE_DIR.parent


def data_path(name: str) -> Path:
    """The path of shipped file or directory ``name`` (a :data:`SHIPPED` path or one below it).

    Raises :class:`MissingResource` when neither the checkout nor the installed package has it.
    """
    root = checkout_root()
    if root is not None and (root / name).exists():
        return root / name
    shipped = importlib.resources.files("mlship").joinpath(DATA_DIR, *Path(name).parts)
    # every caller needs a real path (pip -r, a Docker context): a zipped install has none
    if isinstance(shipped, Path) and shipped.exists():
        return shipped
    raise MissingResource(f"{name} is not shipped with this mlship installation "
                          f"(looked in {PACKAGE_DIR / DATA_DIR}); reinstall the mlship wheel")


def output_root() -> Path:
    """Where build outputs (``build/...``) go by default: the checkout, else the current directory."""
    return checkout_root() or Path.cwd()


def cdk_feature_flags() -> dict[str, object]:
    """The CDK feature flags of the shipped ``cdk.json`` (its context without mlship's own ``env``
    and ``mlship`` settings): what the constructs are tested with, for apps and projects to start from."""
    import json

    context = json.loads(data_path("cdk.json").read_text(encoding="utf-8"))["context"]
    return {key: value for key, value in context.items() if key not in ("env", "mlship")}
