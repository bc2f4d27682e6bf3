"""The one JSON encoder for numpy values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mlship.runtime.jsonutil import json_default, jsonable, python_value, python_values


def test_python_value_reads_float32_back_by_its_shortest_repr() -> None:
    assert python_value(np.float32(0.1)) == 0.1
    assert python_value(np.float64(0.1)) == 0.1
    assert type(python_value(np.int64(3))) is int and type(python_value(np.bool_(True))) is bool
    assert python_value("a") == "a"


def test_python_values_of_arrays_and_object_arrays() -> None:
    assert python_values(np.array([1, 2], dtype=np.int32)) == [1, 2]
    mixed = np.array([np.int64(1), "yes", np.float32(0.5)], dtype=object)
    assert [type(v) for v in python_values(mixed)] == [int, str, float]


def test_jsonable_makes_nested_values_plain() -> None:
    value = {1: np.array([np.nan, 1.5], dtype=np.float32), "t": (np.inf, np.int8(2)), "b": np.bool_(False),
             "m": np.array([[0.1, 0.2]], dtype=np.float32)}
    out = jsonable(value)
    assert out == {"1": [None, 1.5], "t": [None, 2], "b": False, "m": [[0.1, 0.2]]}
    json.dumps(out, allow_nan=False)  # strict JSON: no NaN token left


def test_jsonable_passes_unknown_values_or_hands_them_to_the_fallback() -> None:
    marker = object()
    assert jsonable([marker])[0] is marker
    assert jsonable({"k": marker}, fallback=lambda v: "x") == {"k": "x"}
    assert jsonable(math.nan) is None


def test_json_default_is_a_dumps_hook_for_numpy_only() -> None:
    text = json.dumps({"a": np.float32(0.25), "b": np.arange(2)}, default=json_default)
    assert json.loads(text) == {"a": 0.25, "b": [0, 1]}
    with pytest.raises(TypeError, match="object"):
        json.dumps({"a": object()}, default=json_default)
