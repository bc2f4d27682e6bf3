"""Accumulator updates from a transformation, applied again when Spark recomputes a partition."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.xdist_group("batch-spark")


def test_a_recomputed_partition_counts_once(spark: Any) -> None:
    from mlship.batch.accumulators import PartitionsParam, total_counts
    from pyspark.accumulators import AddingAccumulatorParam

    sc = spark.sparkContext
    keyed = sc.accumulator({}, PartitionsParam())
    summed = sc.accumulator(0, AddingAccumulatorParam(0))

    def count(index: int, rows: Any) -> Any:
        n = sum(1 for _ in rows)
        keyed.add({index: {"rows": n}})
        summed.add(n)
        return [n]

    mapped = sc.parallelize(range(40), 4).mapPartitionsWithIndex(count)  # not cached: each action recomputes
    assert mapped.sum() == 40 and mapped.count() == 4
    assert summed.value == 80  # the hazard: every partition's update applied twice
    assert total_counts(keyed.value) == {"rows": 40}
    assert sorted(keyed.value) == [0, 1, 2, 3]


def test_drift_partials_merge_in_partition_order_without_touching_the_stored_ones(churn_bundle: Any) -> None:
    import numpy as np
    from mlship.batch.accumulators import merged_partials

    from mlship.runtime.predictor import Predictor
    from mlship.stats.drift import DriftAccumulator

    profile = Predictor.load(churn_bundle).bundle.profile
    numeric = next(name for name, feature in profile["features"].items() if feature.get("type") == "numeric")
    parts = {}
    for partition in (2, 0, 1):
        partial = DriftAccumulator(profile)
        partial.update({numeric: np.arange(10.0) + partition})
        parts[partition] = partial
    first, second = merged_partials(parts), merged_partials(parts)  # the accumulator's value is read more than once
    assert first.rows == second.rows == 30 and [p.rows for p in parts.values()] == [10, 10, 10]
    assert first.result().to_dict() == second.result().to_dict()
    assert merged_partials({}) is None
