"""Project defaults for the CLI: ``mlship.toml``, or ``[tool.mlship]`` in ``pyproject.toml``, found
in the working directory or the nearest parent that has one.

    # mlship.toml
    registry_bucket = "my-registry"
    signing_key = "keys/mlship.key"      # paths are relative to the file
    public_key = "keys/mlship.pub"
    thresholds = "gate.yaml"

Precedence: a command's flag, then the environment variable, then the file. The file only fills
environment variables that are unset (``MLSHIP_REGISTRY_BUCKET``, ``MLSHIP_SIGNING_KEY``,
``MLSHIP_PUBLIC_KEY``, ``MLSHIP_GATE_THRESHOLDS``), which every loader and option already reads,
so there is one resolution path for all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlship.errors import MlshipError

FILE_NAME = "mlship.toml"
VARIABLES = {"registry_bucket": "MLSHIP_REGISTRY_BUCKET", "signing_key": "MLSHIP_SIGNING_KEY",
             "public_key": "MLSHIP_PUBLIC_KEY", "thresholds": "MLSHIP_GATE_THRESHOLDS"}
PATHS = ("signing_key", "public_key", "thresholds")


class DefaultsError(MlshipError):
    """The project's defaults file is not readable or names unknown keys."""

    kind = "cli_defaults"


class ProjectDefaults(BaseModel):
    """What ``mlship.toml`` / ``[tool.mlship]`` may set (unknown keys are refused by name)."""

    model_config = ConfigDict(extra="forbid")

    registry_bucket: str | None = None
    signing_key: str | None = None
    public_key: str | None = None
    thresholds: str | None = None


def find_defaults(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``mlship.toml`` (or a ``pyproject.toml`` with ``[tool.mlship]``) from ``start``
    upwards, with its table; None when there is none."""
    import tomllib

    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name, table in ((FILE_NAME, ()), ("pyproject.toml", ("tool", "mlship"))):
            path = folder / name
            if not path.is_file():
                continue
            try:
                doc: Any = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise DefaultsError(f"{path} is not readable TOML: {exc}") from None
            for key in table:
                doc = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(doc, dict):
                return path, doc
    return None


def load_defaults(start: Path | None = None) -> tuple[Path | None, ProjectDefaults]:
    """The project's defaults (empty without a file), paths made absolute against the file."""
    found = find_defaults(start)
    if found is None:
        return None, ProjectDefaults()
    path, table = found
    try:
        defaults = ProjectDefaults.model_validate(table)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DefaultsError(f"{path}: {problems} (keys: {', '.join(ProjectDefaults.model_fields)})") from None
    updates = {k: str((path.parent / v).resolve()) for k in PATHS if (v := getattr(defaults, k))}
    return path, defaults.model_copy(update=updates)


def apply_defaults(environ: dict[str, str] | None = None, start: Path | None = None) -> dict[str, str]:
    """Fill the unset environment variables from the project's defaults; return what was set."""
    environ = os.environ if environ is None else environ
    _path, defaults = load_defaults(start)
    applied = {}
    for key, variable in VARIABLES.items():
        value = getattr(defaults, key)
        if value and not environ.get(variable):
            environ[variable] = applied[variable] = value
    return applied
