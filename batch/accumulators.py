"""Spark accumulators of a batch run: per-partition counts and drift partials (driver and workers).

Spark applies an accumulator update made inside a transformation (the scoring UDF) once per
*successful task*, and a partition can succeed more than once: a lost executor's finished work
recomputed, a stage retried, a speculative copy. So every update is keyed by its partition id,
and a partition's latest value replaces its earlier one instead of adding to it: the same
partition scored again yields the same counts and the same drift partial (its input rows are
the same), so totals and drift statistics are exact under any number of task retries.
"""

from __future__ import annotations

import copy
from typing import Any

from pyspark.accumulators import AccumulatorParam


class PartitionsParam(AccumulatorParam):
    """``{partition id: value}``; a partition's newer value replaces the older one."""

    def zero(self, value: dict[int, Any]) -> dict[int, Any]:
        return {}

    def addInPlace(self, value1: dict[int, Any], value2: dict[int, Any]) -> dict[int, Any]:  # noqa: N802
        value1.update(value2)
        return value1


def total_counts(per_partition: dict[int, dict[str, int]] | None) -> dict[str, int]:
    """The run's counters (scored, quarantined, ``kind:<error kind>``): the sum over partitions."""
    totals: dict[str, int] = {}
    for counts in (per_partition or {}).values():
        for key, count in counts.items():
            totals[key] = totals.get(key, 0) + count
    return totals


def merged_partials(per_partition: dict[int, Any] | None) -> Any:
    """One partial from the partitions' partials with an in-place ``merge`` (drift accumulators,
    the monitor's window partials), merged in partition order (so a run and its retried twin merge
    identically); None when there are none."""
    merged = None
    for partition in sorted(per_partition or {}):
        partial = per_partition[partition]  # type: ignore[index]
        if merged is None:
            merged = copy.deepcopy(partial)  # merge is in place: the stored partials stay as they came
        else:
            combined = merged.merge(partial)
            merged = merged if combined is None else combined
    return merged
