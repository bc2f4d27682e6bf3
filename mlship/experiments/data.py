"""Per-unit experiment data: one outcome per unit and arm, in arrival order, from a table.

A table (pandas DataFrame, CSV or Parquet file) has one row per unit with a variant column and an
outcome column; optional columns give the arrival time (for the cumulative plot), latency (ms)
and an error flag (guardrails). Names of the columns and of the two variants are the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlship.experiments.errors import BadOutcomeError, ExperimentInputError, MissingColumnError, UnknownVariantError

_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


@dataclass
class Arm:
    """One variant's units: outcomes, arrival positions (0-based over both arms) and guardrail values."""

    outcome: np.ndarray
    order: np.ndarray
    latency: np.ndarray | None = None
    error: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.outcome.size)


@dataclass
class ExperimentData:
    """Both arms of an experiment, named, plus what was left out and why (reason -> units)."""

    control_name: str
    treatment_name: str
    control: Arm
    treatment: Arm
    excluded: dict[str, int] = field(default_factory=dict)


def read_table(path: str | Path) -> Any:
    """A CSV or Parquet file as a DataFrame (typed error when missing or unreadable)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise ExperimentInputError(f"no such file: {p}")
    name = p.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(p)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(p)
    except Exception as exc:  # pandas/pyarrow raise many types for a broken file
        raise ExperimentInputError(f"cannot read {p}: {exc}") from exc
    raise ExperimentInputError(f"{p}: expected a .csv or .parquet file")


def binary_values(values: Any, what: str) -> np.ndarray:
    """0/1 floats from booleans, 0/1 numbers or their text forms; anything else is refused."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        v = v.item() if isinstance(v, np.generic) else v
        text = str(v).strip().lower()
        if text in _TRUE:
            out[i] = 1.0
        elif text in _FALSE:
            out[i] = 0.0
        else:
            raise BadOutcomeError(f"{what}: a binary metric needs 0/1 or true/false outcomes, got {v!r} (row {i})")
    return out


def numeric_values(values: Any, what: str) -> np.ndarray:
    """Finite floats; text, missing values and infinities are refused with the first bad row."""
    import pandas as pd

    nums = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(nums))
    if bad.size:
        raise BadOutcomeError(f"{what}: {bad.size} value(s) are not finite numbers (first: {_plain(values[bad[0]])!r}, "
                              f"row {int(bad[0])})")
    return nums


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _require(df: Any, columns: dict[str, str | None]) -> None:
    missing = [f"{col!r} ({role})" for role, col in columns.items() if col is not None and col not in df.columns]
    if missing:
        raise MissingColumnError(f"the table has no column {', '.join(missing)}; its columns: "
                                 f"{', '.join(repr(str(c)) for c in df.columns) or 'none'}")


def check_variants(present: list[str], control: str, treatment: str) -> None:
    """Refuse a control or treatment name that is not among the variants seen."""
    if control == treatment:
        raise UnknownVariantError(f"control and treatment are the same variant {control!r}")
    unknown = [v for v in (control, treatment) if v not in present]
    if unknown:
        raise UnknownVariantError(f"variant(s) {', '.join(map(repr, unknown))} not in the data; variants seen: "
                                  f"{', '.join(map(repr, sorted(present))) or 'none'}")


def from_frame(df: Any, *, variant_column: str, outcome_column: str, control: str, treatment: str,
               metric: str, time_column: str | None = None, latency_column: str | None = None,
               error_column: str | None = None) -> ExperimentData:
    """Split a per-unit table into the two arms (rows of other variants are counted as excluded)."""
    _require(df, {"variant": variant_column, "outcome": outcome_column, "time": time_column,
                  "latency": latency_column, "error": error_column})
    if time_column is not None:
        df = df.sort_values(time_column, kind="stable")
    variants = df[variant_column].astype(str).to_numpy()
    check_variants(list(dict.fromkeys(variants)), control, treatment)
    keep = (variants == control) | (variants == treatment)
    excluded = {f"variant {v!r}": int(np.sum(variants == v)) for v in dict.fromkeys(variants[~keep])}
    df, variants = df[keep], variants[keep]
    read = binary_values if metric == "binary" else numeric_values
    outcome = read(df[outcome_column].to_numpy(), f"column {outcome_column!r}")
    latency = numeric_values(df[latency_column].to_numpy(), f"column {latency_column!r}") if latency_column else None
    error = binary_values(df[error_column].to_numpy(), f"column {error_column!r}") if error_column else None
    return split_arms(variants, outcome, control, treatment, latency=latency, error=error, excluded=excluded)


def split_arms(variants: np.ndarray, outcome: np.ndarray, control: str, treatment: str, *,
               latency: np.ndarray | None = None, error: np.ndarray | None = None,
               excluded: dict[str, int] | None = None) -> ExperimentData:
    """Arms from row-aligned arrays already in arrival order."""
    order = np.arange(variants.size)

    def arm(mask: np.ndarray) -> Arm:
        return Arm(outcome[mask], order[mask], None if latency is None else latency[mask],
                   None if error is None else error[mask])

    return ExperimentData(control, treatment, arm(variants == control), arm(variants == treatment), excluded or {})
