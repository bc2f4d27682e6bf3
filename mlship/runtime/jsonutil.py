"""The one conversion of numpy values to plain JSON-ready Python values.

Every document mlship writes (responses, inference records, reports, manifests' metadata)
goes through :func:`jsonable`, or :func:`json_default` as a ``json.dumps(default=...)`` hook, so
that numpy scalars, arrays, non-finite floats and non-string keys are written one way everywhere.
This module imports only numpy: it runs in Lambda, on devices and in Spark workers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def python_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else unchanged.

    A float narrower than float64 is read back through its shortest repr (float32 0.1 becomes
    0.1, not 0.10000000149011612), which is the value a client sent and expects back.
    """
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def python_values(values: Any) -> list[Any]:
    """The items of an array (or any iterable) as Python values (labels, classes, groups)."""
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        return values.tolist()  # already Python scalars (only object arrays can hold numpy ones)
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [python_value(v) for v in items]


def jsonable(value: Any, *, fallback: Callable[[Any], Any] | None = None) -> Any:
    """``value`` with numpy scalars and arrays made Python, NaN and infinity made None and keys made str.

    Mappings, lists, tuples and arrays are converted recursively. A value of any other type is
    returned as is, or passed to ``fallback`` when given (e.g. ``repr`` for free-form metadata).
    """
    if isinstance(value, np.ndarray):
        flat = _flat_values(value) if value.ndim == 1 else None
        if flat is not None:
            return flat
        narrow = value.dtype.kind == "f" and value.dtype.itemsize < 8  # keep its scalars for python_value
        return [jsonable(v, fallback=fallback) for v in (value if narrow else value.tolist())]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, fallback=fallback) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, fallback=fallback) for v in value]
    value = python_value(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return fallback(value) if fallback is not None else value


def _flat_values(array: np.ndarray) -> list[Any] | None:
    """A 1-D array of numbers or strings as :func:`jsonable` makes it, without converting each item
    on its own (inference records convert every validated column); None for any other array."""
    kind = array.dtype.kind
    if kind in "biu":
        return array.tolist()
    if kind == "f":
        if array.dtype.itemsize >= 8:
            items = array.tolist()
        elif len(array) < 16:  # the shortest repr of each narrow float (see python_value)
            items = [float(str(v)) for v in array]
        else:  # the same digits, one conversion for the whole array
            items = [float(text) for text in array.astype(str).tolist()]
        return [v if math.isfinite(v) else None for v in items]
    if kind in "OU":
        items = array.tolist()
        if all(type(v) is str for v in items):
            return items
    return None


def json_default(value: Any) -> Any:
    """A ``json.dumps(default=...)`` hook: numpy scalars and arrays as :func:`jsonable` writes them."""
    if isinstance(value, (np.generic, np.ndarray)):
        return jsonable(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
