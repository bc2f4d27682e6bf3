"""Online experiments: A/B test analysis and shadow agreement reports.

A/B tests, for notebooks and the ``mlship abtest analyze`` command::

    from mlship.experiments import AbTestConfig, analyze_table
    result = analyze_table("units.csv", variant_column="arm", outcome_column="converted",
                           control="A", treatment="B", config=AbTestConfig(mde=0.05, sequential=True))
    result.decision, result.reasons, result.to_dict()

The names below are imported on first use, so importing one module of the package (e.g. a shadow
report) does not load scipy and statsmodels.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AbTestConfig": "config", "Guardrails": "guardrails", "analyze": "analysis", "analyze_table": "analysis",
    "analyze_s3": "analysis", "AbTestResult": "results", "ExperimentData": "data", "from_frame": "data",
    "read_table": "data", "from_records": "labelled", "load_s3": "labelled", "read_labels": "labelled",
    "write_report": "report", "sample_size_binary": "power", "sample_size_continuous": "power",
    "sample_size_sequential": "power", "srm_check": "srm", "beta_binomial": "binary",
    "two_proportion_z": "binary", "welch_t": "continuous", "relative_lift": "continuous",
    "ExperimentInputError": "errors", "MissingColumnError": "errors", "UnknownVariantError": "errors",
    "NoLabelsError": "errors", "TooFewUnitsError": "errors", "BadOutcomeError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
