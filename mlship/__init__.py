"""mlship: one signed ONNX bundle, every AWS target.

The flow's Python API (:mod:`mlship.api`) is reachable from the package, loaded on first use so
that ``import mlship`` stays as light as the runtime tier needs (the Lambda and devices import
``mlship.runtime`` only)::

    import mlship
    exported = mlship.export(pipeline, holdout, label="churned", out="bundles/churn-1", name="churn")
    predictor = mlship.Predictor.load(exported.path)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("Predictor", "export", "verify", "register", "evaluate", "promote", "drift", "rollout", "MissingExtra",
        "ExportResult", "VerifyResult", "Registered", "DriftReport")


def __getattr__(name: str) -> Any:
    if name in _API:
        # by name, not `from mlship import api`: modules of every tier read `mlship.__version__`, and a
        # static import here would make each of them look (to the tier contracts) as if it imported
        # the top of the stack
        return getattr(importlib.import_module("mlship.api"), name)
    raise AttributeError(f"module 'mlship' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
