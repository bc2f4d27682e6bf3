"""The background rows the sampling explainer starts from, chosen at export from the holdout.

k-means (scikit-learn) on the holdout's fields, numeric ones robustly scaled (median and
interquartile range, a missing value at the median) and categorical ones one-hot; each cluster is
represented by its medoid, an actual holdout row (so every category and missing value is one the
model has seen), weighted by the cluster's share of the rows. This is the summary shap's
``kmeans`` background gives, with real rows in place of centroids.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlship.runtime.schema import INTEGER

BACKGROUND_ROWS = 16  # with the sampling budget: 2 permutations at up to 31 fields before rows are dropped
MAX_CATEGORIES = 20  # one-hot columns per categorical field; rarer categories share none


def background_rows(schema: Any, columns: dict[str, np.ndarray], size: int = BACKGROUND_ROWS,
                    seed: int = 0) -> tuple[list[dict[str, Any]], list[float]]:
    """Up to ``size`` holdout rows as JSON records and their weights (summing to 1)."""
    from sklearn.cluster import KMeans

    encoded = _encoded(schema, columns)
    n_rows = encoded.shape[0]
    k = min(size, n_rows)
    fitted = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(encoded)
    rows, weights = [], []
    for cluster in range(k):
        members = np.flatnonzero(fitted.labels_ == cluster)
        if not members.size:
            continue
        distance = ((encoded[members] - fitted.cluster_centers_[cluster]) ** 2).sum(axis=1)
        rows.append(_record(schema, columns, int(members[np.argmin(distance)])))
        weights.append(members.size / n_rows)
    return rows, weights


def _encoded(schema: Any, columns: dict[str, np.ndarray]) -> np.ndarray:
    """The rows as one numeric matrix the clustering's distances are taken on."""
    blocks = []
    for spec in schema.fields:
        values = columns[spec.name]
        if spec.is_numeric:
            numbers = np.asarray(values, dtype=np.float64)
            finite = numbers[np.isfinite(numbers)]
            middle, spread = _centre_and_spread(finite)
            filled = np.where(np.isfinite(numbers), numbers, middle)
            blocks.append(((filled - middle) / spread)[:, None])
        else:
            text = np.asarray(values, dtype=object)
            kinds, counts = np.unique(text.astype(str), return_counts=True)
            common = kinds[np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]]
            blocks.append((text.astype(str)[:, None] == common[None, :]).astype(np.float64))
    return np.hstack(blocks) if blocks else np.zeros((0, 0))


def _centre_and_spread(finite: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range (the standard deviation when that is 0, else 1)."""
    if not finite.size:
        return 0.0, 1.0
    q1, q3 = np.percentile(finite, [25, 75])
    return float(np.median(finite)), float(q3 - q1) or float(np.std(finite)) or 1.0


def _record(schema: Any, columns: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    """One holdout row as the JSON record a client would send."""
    record: dict[str, Any] = {}
    for spec in schema.fields:
        value = columns[spec.name][row]
        if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
            record[spec.name] = None
        elif spec.is_numeric:
            number = float(value)
            record[spec.name] = int(number) if spec.dtype == INTEGER and number.is_integer() else number
        else:
            record[spec.name] = str(value)
    return record
