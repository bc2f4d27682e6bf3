"""Spark accumulator parameters for run counts and partial drift accumulators (driver and workers)."""

from __future__ import annotations

from typing import Any

from pyspark.accumulators import AccumulatorParam


class CountsParam(AccumulatorParam):
    """Sums dicts of counters (scored, quarantined, ``kind:<error kind>``)."""

    def zero(self, value: dict[str, int]) -> dict[str, int]:
        return {}

    def addInPlace(self, value1: dict[str, int], value2: dict[str, int]) -> dict[str, int]:  # noqa: N802
        for key, count in value2.items():
            value1[key] = value1.get(key, 0) + count
        return value1


class DriftParam(AccumulatorParam):
    """Merges per-partition :class:`mlship.stats.drift.DriftAccumulator` objects (None is the zero)."""

    def zero(self, value: Any) -> Any:
        return None

    def addInPlace(self, value1: Any, value2: Any) -> Any:  # noqa: N802
        if value1 is None:
            return value2
        if value2 is None:
            return value1
        merged = value1.merge(value2)
        return value1 if merged is None else merged
