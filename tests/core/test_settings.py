"""The settings bases: parsing, validation messages that name the variable, defaults, docs rows."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings

from mlship.errors import MlshipError
from mlship.runtime.settings import BaseSettingsMixin, EnvSettings, SettingRow, SettingsError, setting, type_label


@dataclass(frozen=True, kw_only=True)
class Example(EnvSettings):
    model_uri: str = setting("EX_MODEL_URI", doc="bundle to load")
    port: int = setting("EX_PORT", 8080, doc="listen port", minimum=1, maximum=65535)
    timeout: float = setting("EX_TIMEOUT", 2.5)
    label: str | None = setting("EX_LABEL", None)
    verbose: bool = setting("EX_VERBOSE", False)
    mode: Literal["fast", "safe"] = setting("EX_MODE", "safe")
    origins: tuple[str, ...] = setting("EX_ORIGINS", ("a", "b"))
    limits: dict | None = setting("EX_LIMITS", None, parse=json.loads)


def _error(environ: dict[str, str]) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        Example.from_env(environ)
    return caught.value


def test_defaults_apply_when_unset_or_empty() -> None:
    settings = Example.from_env({"EX_MODEL_URI": "s3://b/m.tar.gz", "EX_PORT": "", "EX_LABEL": ""})
    assert settings == Example(model_uri="s3://b/m.tar.gz")
    assert (settings.port, settings.timeout, settings.label, settings.verbose) == (8080, 2.5, None, False)
    assert (settings.mode, settings.origins, settings.limits) == ("safe", ("a", "b"), None)


def test_values_are_parsed_by_type() -> None:
    settings = Example.from_env({
        "EX_MODEL_URI": "m", "EX_PORT": " 9000 ", "EX_TIMEOUT": "0.5", "EX_LABEL": "x",
        "EX_VERBOSE": "Yes", "EX_MODE": "fast", "EX_ORIGINS": " p, q ,,", "EX_LIMITS": '{"k": 1}',
    })
    assert settings.port == 9000 and settings.timeout == 0.5 and settings.label == "x"
    assert settings.verbose is True and settings.mode == "fast"
    assert settings.origins == ("p", "q") and settings.limits == {"k": 1}


def test_settings_are_frozen() -> None:
    settings = Example.from_env({"EX_MODEL_URI": "m"})
    with pytest.raises(FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_missing_required_names_the_variable() -> None:
    error = _error({})
    assert isinstance(error, MlshipError) and error.kind == "settings"
    assert (error.variable, error.value) == ("EX_MODEL_URI", None)
    assert str(error) == "environment variable EX_MODEL_URI is required (string) but is not set"


def test_empty_required_counts_as_missing() -> None:
    assert _error({"EX_MODEL_URI": ""}).variable == "EX_MODEL_URI"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("EX_PORT", "eighty", "integer"),
    ("EX_PORT", "80.5", "integer"),
    ("EX_PORT", "0", "a value >= 1"),
    ("EX_PORT", "70000", "a value <= 65535"),
    ("EX_TIMEOUT", "soon", "number"),
    ("EX_TIMEOUT", "nan", "number"),
    ("EX_VERBOSE", "maybe", "boolean (true/false)"),
    ("EX_MODE", "turbo", "one of fast, safe"),
])
def test_bad_value_names_variable_value_and_expectation(variable: str, value: str, expected: str) -> None:
    error = _error({"EX_MODEL_URI": "m", variable: value})
    assert (error.variable, error.value, error.expected) == (variable, value, expected)
    assert str(error) == f"environment variable {variable}={value!r} is invalid: expected {expected}"


def test_custom_parser_errors_become_settings_errors() -> None:
    error = _error({"EX_MODEL_URI": "m", "EX_LIMITS": "{not json"})
    assert error.variable == "EX_LIMITS" and error.value == "{not json"


def test_describe_lists_every_setting_in_environment_form() -> None:
    rows = Example.describe()
    assert [row.env for row in rows] == [
        "EX_MODEL_URI", "EX_PORT", "EX_TIMEOUT", "EX_LABEL", "EX_VERBOSE", "EX_MODE", "EX_ORIGINS", "EX_LIMITS"]
    assert rows[0] == SettingRow("EX_MODEL_URI", "string", "", "bundle to load", True)
    assert rows[1] == SettingRow("EX_PORT", "integer", "8080", "listen port", False)
    by_env = {row.env: row for row in rows}
    assert by_env["EX_LABEL"].type == "string (optional)" and by_env["EX_LABEL"].default == ""
    assert by_env["EX_VERBOSE"].default == "false"
    assert by_env["EX_MODE"].type == "one of fast, safe"
    assert by_env["EX_ORIGINS"].default == "a,b"


def test_mutable_defaults_are_refused() -> None:
    with pytest.raises(TypeError):
        setting("X", [])


def test_runtime_settings_import_no_pydantic() -> None:
    code = "import sys, mlship.runtime.settings; print(any(m.startswith('pydantic') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class HeavyExample(BaseSettingsMixin, BaseSettings):
    model_uri: str = Field(alias="HX_MODEL_URI", description="bundle to load")
    window_hours: float = Field(1.0, alias="HX_WINDOW_HOURS", gt=0, description="hours per window")
    mode: Literal["emf", "api"] = Field("emf", alias="HX_MODE")
    enabled: bool = Field(True, alias="HX_ENABLED")


def test_pydantic_settings_read_only_the_given_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HX_WINDOW_HOURS", "not read")
    settings = HeavyExample.from_env({"HX_MODEL_URI": "m", "HX_ENABLED": "off", "HX_MODE": ""})
    assert (settings.model_uri, settings.window_hours, settings.mode, settings.enabled) == ("m", 1.0, "emf", False)


@pytest.mark.parametrize(("environ", "variable", "value"), [
    ({}, "HX_MODEL_URI", None),
    ({"HX_MODEL_URI": "m", "HX_WINDOW_HOURS": "soon"}, "HX_WINDOW_HOURS", "soon"),
    ({"HX_MODEL_URI": "m", "HX_WINDOW_HOURS": "-1"}, "HX_WINDOW_HOURS", "-1"),
    ({"HX_MODEL_URI": "m", "HX_MODE": "both"}, "HX_MODE", "both"),
    ({"HX_MODEL_URI": "m", "HX_ENABLED": "maybe"}, "HX_ENABLED", "maybe"),
])
def test_pydantic_errors_name_the_variable(environ: dict[str, str], variable: str, value: str | None) -> None:
    with pytest.raises(SettingsError) as caught:
        HeavyExample.from_env(environ)
    assert (caught.value.variable, caught.value.value) == (variable, value)
    assert variable in str(caught.value)


def test_pydantic_missing_message_matches_the_stdlib_style() -> None:
    with pytest.raises(SettingsError) as caught:
        HeavyExample.from_env({})
    assert str(caught.value) == "environment variable HX_MODEL_URI is required (string) but is not set"


def test_pydantic_describe_uses_the_same_rows() -> None:
    assert HeavyExample.describe() == [
        SettingRow("HX_MODEL_URI", "string", "", "bundle to load", True),
        SettingRow("HX_WINDOW_HOURS", "number", "1.0", "hours per window", False),
        SettingRow("HX_MODE", "one of emf, api", "emf", "", False),
        SettingRow("HX_ENABLED", "boolean (true/false)", "true", "", False),
    ]


@pytest.mark.parametrize(("annotation", "label"), [
    (str, "string"), (int | None, "integer (optional)"), (float, "number"), (bool, "boolean (true/false)"),
    (Literal["a", "b"], "one of a, b"), (tuple[str, ...], "comma-separated list"), (dict, "JSON object"),
    (dict[str, int], "JSON object"), (Path | None, "path (optional)"),
])
def test_type_labels(annotation: object, label: str) -> None:
    assert type_label(annotation) == label


def test_pydantic_fields_must_name_their_variable() -> None:
    class Unnamed(BaseSettingsMixin, BaseSettings):
        port: int = 8080

    with pytest.raises(TypeError, match="port"):
        Unnamed.from_env({})
