"""The validation step: fresh labelled data is checked against the champion's contract before
anything is trained on it (issue 16, item 2).

Checks, each a named result with its measured value and limit:

* ``rows``: at least ``min_rows`` labelled rows;
* ``label``: the label column is present and has no nulls; for a classifier every class of the
  champion appears with at least ``min_class_share`` of the rows and no unknown class appears
  (a batch missing a class would train a model that can never predict it);
* ``schema``: the rows the champion's input schema refuses (``InputSchema.validate_columns``,
  the serving paths' own validation) are at most ``max_invalid_share``;
* ``nulls``: per feature, the null rate exceeds the baseline profile's by at most
  ``max_null_increase`` (a broken upstream join shows as nulls, not as drift);
* ``ranges`` (reported, never failing: drift is why the run exists): per numeric feature, the
  share of values outside the baseline's observed [min, max].

A batch that fails any check stops the run with this report; it is never trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Limits:
    """What a fresh batch must meet."""

    min_rows: int = 500
    min_class_share: float = 0.01
    max_invalid_share: float = 0.01
    max_null_increase: float = 0.10


@dataclass
class Check:
    name: str
    passed: bool
    value: Any
    limit: Any
    detail: str = ""


@dataclass
class ValidationReport:
    """Every check of one batch; ``passed`` when all that can fail passed."""

    rows: int
    checks: list[Check] = field(default_factory=list)
    ranges: dict[str, float] = field(default_factory=dict)  # share outside the baseline's range

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failed check."""
        return [f"{c.name}: {c.detail or f'{c.value} vs limit {c.limit}'}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "passed": self.passed, "checks": [asdict(c) for c in self.checks],
                "ranges": self.ranges}


def validate_batch(frame: Any, label: str, manifest: dict[str, Any], profile: dict[str, Any],
                   limits: Limits = Limits()) -> ValidationReport:
    """Check ``frame`` (features and ``label``) against the champion's manifest and baseline profile."""
    from mlship.runtime.schema import InputSchema

    report = ValidationReport(rows=len(frame))
    report.checks.append(Check("rows", len(frame) >= limits.min_rows, len(frame), limits.min_rows,
                               "" if len(frame) >= limits.min_rows else
                               f"{len(frame)} labelled rows, fewer than the {limits.min_rows} required"))
    report.checks += _label_checks(frame, label, manifest, limits)
    schema = InputSchema.from_dict(manifest["input_schema"])
    features = {name: frame[name].to_numpy() for name in schema.names if name in frame.columns}
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        report.checks.append(Check("schema", False, missing, [], f"columns missing: {', '.join(missing)}"))
        return report
    batch = schema.validate_columns(features, allow_extra=True)
    invalid = float(np.mean(~batch.valid)) if len(frame) else 0.0
    report.checks.append(Check("schema", invalid <= limits.max_invalid_share, round(invalid, 4),
                               limits.max_invalid_share, _first_errors(batch) if invalid > limits.max_invalid_share
                               else ""))
    report.checks += _null_checks(frame, schema.names, profile, limits)
    report.ranges = _out_of_range(frame, schema, profile)
    return report


def _label_checks(frame: Any, label: str, manifest: dict[str, Any], limits: Limits) -> list[Check]:
    if label not in frame.columns:
        return [Check("label", False, None, label, f"no label column {label!r}")]
    values = frame[label]
    nulls = int(values.isna().sum())
    if nulls:
        return [Check("label", False, nulls, 0, f"{nulls} rows without a label")]
    classes = (manifest.get("output_schema") or {}).get("classes")
    if manifest.get("task") != "classification" or not classes:
        return [Check("label", True, len(values), None)]
    shares = values.astype(str).value_counts(normalize=True).to_dict()
    known = {str(c) for c in classes}
    unknown = sorted(set(shares) - known)
    rare = sorted(c for c in known if shares.get(c, 0.0) < limits.min_class_share)
    problems = [f"unknown classes {unknown}" if unknown else "",
                f"classes under {limits.min_class_share:.0%} of the rows: {rare}" if rare else ""]
    detail = "; ".join(filter(None, problems))
    return [Check("label", not unknown and not rare, {c: round(s, 4) for c, s in shares.items()},
                  limits.min_class_share, detail)]


def _first_errors(batch: Any) -> str:
    reasons = batch.row_reasons()
    sample = "; ".join(f"row {row}: {why}" for row, why in list(reasons.items())[:3])
    return f"{len(reasons)} rows the champion's schema refuses ({sample})"


def _null_checks(frame: Any, names: list[str], profile: dict[str, Any], limits: Limits) -> list[Check]:
    worse = {}
    for name in names:
        baseline = float(((profile.get("features") or {}).get(name) or {}).get("null_rate") or 0.0)
        rate = float(frame[name].isna().mean()) if len(frame) else 0.0
        if rate - baseline > limits.max_null_increase:
            worse[name] = (round(rate, 4), round(baseline, 4))
    detail = "; ".join(f"{n}: {r:.1%} null vs {b:.1%} in the baseline" for n, (r, b) in worse.items())
    return [Check("nulls", not worse, {n: r for n, (r, _) in worse.items()}, limits.max_null_increase, detail)]


def _out_of_range(frame: Any, schema: Any, profile: dict[str, Any]) -> dict[str, float]:
    import pandas as pd

    out = {}
    for spec in schema.fields:
        stats = (profile.get("features") or {}).get(spec.name) or {}
        if not spec.is_numeric or stats.get("min") is None:
            continue
        values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(dtype=np.float64)  # refused: NaN
        finite = values[np.isfinite(values)]
        if finite.size:
            out[spec.name] = round(float(np.mean((finite < stats["min"]) | (finite > stats["max"]))), 4)
    return out
