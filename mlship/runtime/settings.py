"""Typed process settings read from environment variables, with errors that name the variable.

Two flavours share one contract (``from_env``, ``describe``, ``SettingsError``, ``SettingRow``):

- ``EnvSettings``: a stdlib-only base for frozen dataclasses, for the processes that must not
  import pydantic (the predict Lambda, whose cold start pays every import, and the device
  agent, where pydantic is not installed)::

      @dataclass(frozen=True, kw_only=True)
      class PredictSettings(EnvSettings):
          model_uri: str = setting("MODEL_URI", doc="bundle to serve")
          max_rows: int = setting("MAX_ROWS", 1000, doc="rows per request", minimum=1)

- ``BaseSettingsMixin``: the same two class methods for pydantic-settings ``BaseSettings``
  classes (monitor, batch, serve). It only duck-types pydantic's API, so this module keeps the
  runtime tier free of pydantic.

An empty variable counts as unset (the infra stacks set optional variables to ``""``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, ClassVar, Literal, get_args, get_origin

from mlship.errors import MlshipError


class SettingsError(MlshipError):
    """An environment variable is missing or holds a value its setting cannot take."""

    kind = "settings"

    def __init__(self, variable: str, value: str | None, expected: str):
        self.variable = variable
        self.value = value
        self.expected = expected
        if value is None:
            message = f"environment variable {variable} is required ({expected}) but is not set"
        else:
            message = f"environment variable {variable}={value!r} is invalid: expected {expected}"
        super().__init__(message)


@dataclass(frozen=True)
class SettingRow:
    """One setting as documentation shows it; ``default`` is in environment form ("" = unset)."""

    env: str
    type: str
    default: str
    description: str
    required: bool


def setting(
    env: str,
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    parse: Callable[[str], Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """A dataclass field read from ``env``; no ``default`` makes it required.

    ``parse`` replaces the type-driven parser (it raises ``ValueError`` on a bad value);
    ``minimum`` / ``maximum`` bound numeric settings (inclusive).
    """
    metadata = {"env": env, "doc": doc, "parse": parse, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, dict, set)):
        raise TypeError("setting defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=metadata)


def format_default(value: Any) -> str:
    """A default as it would be written in the environment (``None`` -> "")."""
    if value is None or value is dataclasses.MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list, frozenset, set)):
        return ",".join(str(item) for item in value)
    return str(value)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); ``ValueError`` otherwise."""
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(raw)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (annotation, False)."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1 and len(get_args(annotation)) == 2:
            return members[0], True
    return annotation, False


def type_label(annotation: Any) -> str:
    """A short human description of a setting's type, shared by docs and error messages."""
    inner, optional = _strip_optional(annotation)
    if get_origin(inner) is Literal:
        label = "one of " + ", ".join(str(choice) for choice in get_args(inner))
    elif get_origin(inner) is tuple:
        label = "comma-separated list"
    elif inner is bool:
        label = "boolean (true/false)"
    elif inner is int:
        label = "integer"
    elif inner is float:
        label = "number"
    elif inner is str:
        label = "string"
    elif inner is dict or get_origin(inner) is dict:
        label = "JSON object"
    elif isinstance(inner, type) and issubclass(inner, PurePath):
        label = "path"
    else:
        label = getattr(inner, "__name__", str(inner))
    return label + (" (optional)" if optional else "")


def _parse_typed(raw: str, annotation: Any) -> Any:
    """Parse ``raw`` by ``annotation``; ``ValueError`` when it does not fit."""
    inner, _ = _strip_optional(annotation)
    if get_origin(inner) is Literal:
        for choice in get_args(inner):
            if raw == str(choice):
                return choice
        raise ValueError(raw)
    if get_origin(inner) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if inner is bool:
        return parse_bool(raw)
    if inner is int:
        return int(raw.strip())
    if inner is float:
        number = float(raw.strip())
        if not math.isfinite(number):
            raise ValueError(raw)
        return number
    if inner is str:
        return raw
    raise TypeError(f"no parser for setting type {annotation!r}; pass parse=")


def _check_bounds(env: str, raw: str, value: Any, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise SettingsError(env, raw, f"a value >= {format_default(minimum)}")
    if maximum is not None and value > maximum:
        raise SettingsError(env, raw, f"a value <= {format_default(maximum)}")


class EnvSettings:
    """Base for frozen dataclasses whose fields are ``setting(...)``s; see the module docstring."""

    @classmethod
    def _settings_fields(cls) -> list[tuple[dataclasses.Field[Any], Any]]:
        hints = typing.get_type_hints(cls)
        return [(f, hints[f.name]) for f in dataclasses.fields(cls) if "env" in f.metadata]  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> typing.Self:
        """Read every setting from ``environ``; raises ``SettingsError`` for the first bad one."""
        values: dict[str, Any] = {}
        for field, annotation in cls._settings_fields():
            raw = environ.get(field.metadata["env"], "")
            if raw != "":
                values[field.name] = _parse_field(field, annotation, raw)
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise SettingsError(field.metadata["env"], None, type_label(annotation))
        return cls(**values)

    @classmethod
    def describe(cls) -> list[SettingRow]:
        """One row per setting, in declaration order, for the README configuration table."""
        rows = []
        for field, annotation in cls._settings_fields():
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            default = "" if required else format_default(field.default)
            rows.append(SettingRow(field.metadata["env"], type_label(annotation), default,
                                   field.metadata["doc"], required))
        return rows


def _parse_field(field: dataclasses.Field[Any], annotation: Any, raw: str) -> Any:
    env = field.metadata["env"]
    parser = field.metadata.get("parse")
    try:
        value = parser(raw) if parser else _parse_typed(raw, annotation)
    except ValueError as exc:
        expected = str(exc) if parser and str(exc) else type_label(annotation)
        raise SettingsError(env, raw, expected) from None
    _check_bounds(env, raw, value, field.metadata.get("minimum"), field.metadata.get("maximum"))
    return value


class BaseSettingsMixin:
    """``from_env`` / ``describe`` for pydantic-settings classes: ``class S(BaseSettingsMixin, BaseSettings)``.

    Each field names its variable with ``Field(alias="ENV_NAME", description=...)``. The values
    come only from the mapping given to ``from_env`` (never ``.env`` files or secrets dirs), so
    tests and processes read the same thing; pydantic does the coercion and validation, and its
    ``ValidationError`` becomes a ``SettingsError`` naming the variable.
    """

    model_fields: ClassVar[dict[str, Any]]

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_sources: Any) -> tuple[Any, ...]:
        """Only constructor arguments: ``from_env`` has already read the environment."""
        return (init_settings,)

    @classmethod
    def _env_names(cls) -> dict[str, str]:
        """Field name -> environment variable; every field must name its variable."""
        unnamed = [name for name, info in cls.model_fields.items() if not info.alias]
        if unnamed:
            raise TypeError(f"{cls.__name__}: give {', '.join(unnamed)} a Field(alias='ENV_NAME')")
        return {name: info.alias for name, info in cls.model_fields.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> typing.Self:
        """Read and validate every setting; raises ``SettingsError`` naming the first bad variable."""
        env_names = cls._env_names()
        raw = {env: environ[env] for env in env_names.values() if environ.get(env, "") != ""}
        try:
            return cls(**raw)
        except ValueError as exc:  # pydantic_core.ValidationError is a ValueError
            raise _settings_error(exc, cls.model_fields, env_names, raw) from None

    @classmethod
    def describe(cls) -> list[SettingRow]:
        """One row per setting, in declaration order, for the README configuration table."""
        rows = []
        for name, env in cls._env_names().items():
            info = cls.model_fields[name]
            required = info.is_required()
            default = "" if required else format_default(info.get_default(call_default_factory=True))
            rows.append(SettingRow(env, type_label(info.annotation), default, info.description or "", required))
        return rows


def _settings_error(
    exc: ValueError, fields: Mapping[str, Any], env_names: Mapping[str, str], raw: Mapping[str, str]
) -> SettingsError:
    """The first problem of a pydantic ``ValidationError`` as a ``SettingsError``."""
    errors: list[dict[str, Any]] = exc.errors() if hasattr(exc, "errors") else []  # type: ignore[attr-defined]
    if not errors:
        return SettingsError("(settings)", None, str(exc))
    first = errors[0]
    location = str(first["loc"][0]) if first.get("loc") else ""
    env = env_names.get(location, location)
    if first.get("type") == "missing":
        by_env = {env_names[name]: info for name, info in fields.items()}
        info = fields.get(location) or by_env.get(location)
        return SettingsError(env, None, type_label(info.annotation) if info is not None else "a value")
    message = str(first.get("msg", "a valid value"))
    expected = message.removeprefix("Input should be ").removeprefix("Value error, ")
    return SettingsError(env, raw.get(env), expected)
