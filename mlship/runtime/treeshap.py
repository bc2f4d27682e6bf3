"""Exact TreeSHAP of a tree ensemble stored with the bundle, in numpy only (serving paths have no
scikit-learn and no shap).

The ensemble is what the bundle's ONNX ``TreeEnsembleClassifier``/``TreeEnsembleRegressor``
computes (structure, thresholds, leaf weights, base values) plus each node's cover (training
samples through it, taken from scikit-learn's trees at export). SHAP values are the
path-dependent ("tree_path_dependent") ones of Lundberg et al., *From local explanations to global
understanding with explainable AI for trees*, Nature MI 2020, computed leaf by leaf as in
GPUTreeShap (Mitchell et al., PeerJ CS 2022): for a leaf reached through the distinct features
``1..d`` with zero fractions ``z_j`` (the share of the training cover kept on the leaf's side by
each feature's splits) and one fractions ``o_j`` (1 when the row satisfies them), feature ``i``
receives ``v (o_i - z_i) sum_k k!(d-1-k)!/d! e_k``, with ``e_k`` the coefficient of ``t^k`` in
``prod_{j != i} (z_j + o_j t)``. Leaves with the same ``d`` are computed together, vectorised over
leaves and rows. Values are in the model's raw output space (before ``post_transform``): log-odds
for boosted classifiers, probability for random forests, the value for regressors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

ROW_CHUNK = 256  # rows per vectorised pass
WORK_ELEMENTS = 2_000_000  # leaves x rows x (depth + 1) per pass: ~16 MB per work array


class TreeShapError(ValueError):
    """The stored ensemble cannot be explained (inconsistent arrays)."""


@dataclass(frozen=True)
class TreeEnsemble:
    """Nodes of every tree (one row per node), leaf weights, base values: the ONNX attributes plus cover."""

    tree: np.ndarray  # tree id of each node
    node: np.ndarray  # node id within its tree
    feature: np.ndarray  # split feature (index into the ensemble's input vector)
    threshold: np.ndarray  # split threshold: ``x <= threshold`` goes to ``true_child``
    true_child: np.ndarray
    false_child: np.ndarray
    missing_true: np.ndarray  # NaN goes to the true child
    is_leaf: np.ndarray
    cover: np.ndarray  # training samples (weighted) through the node
    leaf_tree: np.ndarray  # weights: (tree, node, target) -> weight
    leaf_node: np.ndarray
    leaf_target: np.ndarray
    leaf_weight: np.ndarray
    base_values: np.ndarray  # one per target
    n_features: int
    post_transform: str = "NONE"

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The ensemble as named arrays (``numpy.savez_compressed`` into the bundle), each in the
        narrowest type that holds it exactly (ONNX keeps thresholds and weights in float32)."""
        out = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        for name in ("tree", "node", "feature", "true_child", "false_child", "leaf_tree", "leaf_node", "leaf_target"):
            out[name] = out[name].astype(np.int32)
        for name in ("threshold", "leaf_weight"):
            narrow = out[name].astype(np.float32)
            if np.array_equal(narrow, out[name]):
                out[name] = narrow
        out["post_transform"] = np.asarray(self.post_transform)
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> TreeEnsemble:
        """The ensemble from :meth:`to_arrays`'s arrays (an ``NpzFile`` or a dict)."""
        values = {f.name: np.asarray(arrays[f.name]) for f in fields(cls)}
        values["n_features"] = int(values["n_features"])
        values["post_transform"] = str(values["post_transform"])
        return cls(**values)

    @property
    def n_targets(self) -> int:
        return int(self.base_values.size)


@dataclass(frozen=True)
class _Group:
    """Every leaf whose path has ``d`` distinct features, as arrays over (leaf, position)."""

    feature: np.ndarray  # (L, d) int
    lower: np.ndarray  # (L, d): the leaf's rows have x > lower ...
    upper: np.ndarray  # (L, d): ... and x <= upper
    nan_ok: np.ndarray  # (L, d): a NaN follows the leaf's side of every split on that feature
    zero: np.ndarray  # (L, d): z, the cover fraction kept by that feature's splits
    value: np.ndarray  # (L, K): the leaf's weight per target


class TreeExplainer:
    """Exact path-dependent SHAP values of a :class:`TreeEnsemble`, numpy only."""

    def __init__(self, ensemble: TreeEnsemble):
        self.ensemble = ensemble
        self.groups, self.expected_value = _leaf_groups(ensemble)

    def shap_values(self, x: np.ndarray) -> np.ndarray:
        """SHAP values, shape ``(rows, n_features, n_targets)``, of the ensemble's input rows ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.ensemble.n_features:
            raise TreeShapError(f"expected rows of {self.ensemble.n_features} features, got shape {x.shape}")
        out = np.zeros((x.shape[0], self.ensemble.n_features, self.ensemble.n_targets))
        for start in range(0, x.shape[0], ROW_CHUNK):
            rows = x[start:start + ROW_CHUNK]
            for group in self.groups:
                for part in _leaf_chunks(group, len(rows)):
                    _add_group(out[start:start + ROW_CHUNK], rows, part)
        return out

    def raw_output(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's raw score (before ``post_transform``) for each row: expected value + sum of SHAP."""
        return self.expected_value + self.shap_values(x).sum(axis=1)


def _leaf_groups(ens: TreeEnsemble) -> tuple[list[_Group], np.ndarray]:
    """Every leaf's merged path conditions, grouped by their number of distinct features, and the
    expected raw output (base values + each tree's cover-weighted mean leaf weight)."""
    weights: dict[tuple[int, int], np.ndarray] = {}
    for t, n, k, w in zip(ens.leaf_tree.tolist(), ens.leaf_node.tolist(), ens.leaf_target.tolist(),
                          ens.leaf_weight.tolist(), strict=True):
        weights.setdefault((t, n), np.zeros(ens.n_targets))[k] += w
    expected = np.asarray(ens.base_values, dtype=np.float64).copy()
    by_length: dict[int, list[tuple[list[tuple[int, float, float, bool, float]], np.ndarray]]] = {}
    for tree_id in np.unique(ens.tree).tolist():
        nodes = _tree_nodes(ens, tree_id)
        for path, leaf in _paths(nodes):
            value = weights.get((tree_id, leaf), np.zeros(ens.n_targets))
            expected += value * nodes["cover"][leaf] / nodes["cover"][0]
            merged = _merge(path)
            by_length.setdefault(len(merged), []).append((merged, value))
    groups = [_group(items) for _, items in sorted(by_length.items())]
    return groups, expected


def _tree_nodes(ens: TreeEnsemble, tree_id: int) -> dict[str, dict[int, Any]]:
    """One tree's node attributes keyed by node id (the root is node 0)."""
    rows = np.flatnonzero(ens.tree == tree_id)
    names = ("feature", "threshold", "true_child", "false_child", "missing_true", "is_leaf", "cover")
    nodes = {name: dict(zip(ens.node[rows].tolist(), getattr(ens, name)[rows].tolist(), strict=True))
             for name in names}
    if 0 not in nodes["cover"]:
        raise TreeShapError(f"tree {tree_id} has no root node 0")
    return nodes


def _paths(nodes: dict[str, dict[int, Any]]) -> list[tuple[list[tuple[int, float, float, bool, float]], int]]:
    """Every root-to-leaf path: (feature, threshold, went_true, missing_true, cover fraction) per split."""
    out = []
    stack: list[tuple[int, list[tuple[int, float, float, bool, float]]]] = [(0, [])]
    while stack:
        node, path = stack.pop()
        if nodes["is_leaf"][node]:
            out.append((path, node))
            continue
        cover = max(float(nodes["cover"][node]), 1e-300)
        for child, went_true in ((nodes["true_child"][node], True), (nodes["false_child"][node], False)):
            fraction = float(nodes["cover"][child]) / cover
            step = (nodes["feature"][node], nodes["threshold"][node], went_true, bool(nodes["missing_true"][node]),
                    fraction)
            stack.append((child, [*path, step]))
    return out


def _merge(path: list[tuple[int, float, bool, bool, float]]) -> list[tuple[int, float, float, bool, float]]:
    """A path's splits merged per feature: (feature, lower, upper, nan_ok, zero fraction)."""
    merged: dict[int, list[Any]] = {}
    for feature, threshold, went_true, missing_true, fraction in path:
        entry = merged.setdefault(feature, [feature, -math.inf, math.inf, True, 1.0])
        if went_true:
            entry[2] = min(entry[2], threshold)
        else:
            entry[1] = max(entry[1], threshold)
        entry[3] = entry[3] and (missing_true == went_true)
        entry[4] *= fraction
    return [tuple(e) for e in merged.values()]  # type: ignore[misc]


def _group(items: list[tuple[list[tuple[int, float, float, bool, float]], np.ndarray]]) -> _Group:
    columns = [np.array([[step[i] for step in merged] for merged, _ in items]) for i in range(5)]
    d = len(items[0][0])
    shape = (len(items), d)
    return _Group(feature=columns[0].astype(np.int64).reshape(shape), lower=columns[1].reshape(shape),
                  upper=columns[2].reshape(shape), nan_ok=columns[3].astype(bool).reshape(shape),
                  zero=np.maximum(columns[4].reshape(shape), 1e-300), value=np.stack([v for _, v in items]))


def _leaf_chunks(group: _Group, n_rows: int) -> list[_Group]:
    """``group`` cut into runs of leaves whose work arrays stay within ``WORK_ELEMENTS``."""
    n_leaves, d = group.feature.shape
    size = max(1, WORK_ELEMENTS // max(1, n_rows * (d + 1)))
    if size >= n_leaves:
        return [group]
    return [_Group(*(getattr(group, f.name)[i:i + size] for f in fields(_Group))) for i in range(0, n_leaves, size)]


def _add_group(out: np.ndarray, x: np.ndarray, group: _Group) -> None:
    """Add one group's contributions to ``out`` (rows, features, targets)."""
    n_leaves, d = group.feature.shape
    if d == 0:  # a tree that is a single leaf: its value is all in the expected value
        return
    values = x[:, group.feature]  # (rows, L, d)
    with np.errstate(invalid="ignore"):
        inside = (values > group.lower) & (values <= group.upper)
    one = np.where(np.isnan(values), group.nan_ok, inside).astype(np.float64)  # (rows, L, d)
    zero = np.broadcast_to(group.zero, one.shape)
    poly = np.zeros((*one.shape[:2], d + 1))
    poly[..., 0] = 1.0
    for j in range(d):  # prod_j (z_j + o_j t), coefficients of t^0..t^d
        shifted = np.concatenate([np.zeros((*poly.shape[:2], 1)), poly[..., :-1]], axis=-1)
        poly = poly * zero[..., j:j + 1] + shifted * one[..., j:j + 1]
    k = np.arange(d)
    shapley = np.array([math.factorial(i) * math.factorial(d - 1 - i) for i in k.tolist()]) / math.factorial(d)
    for i in range(d):
        quotient = _divide(poly, zero[..., i], one[..., i])
        weight = quotient @ shapley  # (rows, L)
        contribution = weight * (one[..., i] - zero[..., i])  # (rows, L)
        per_target = contribution[..., None] * group.value  # (rows, L, K)
        np.add.at(out, (slice(None), group.feature[:, i]), per_target)


def _divide(poly: np.ndarray, zero: np.ndarray, one: np.ndarray) -> np.ndarray:
    """``poly / (z + o t)`` for o in {0, 1} per (row, leaf): degree d-1 coefficients."""
    d = poly.shape[-1] - 1
    by_zero = poly[..., :d] / zero[..., None]
    synthetic = np.empty_like(by_zero)  # (t + z) q = poly, from the top coefficient down
    synthetic[..., d - 1] = poly[..., d]
    for i in range(d - 1, 0, -1):
        synthetic[..., i - 1] = poly[..., i] - zero * synthetic[..., i]
    return np.where(one[..., None] > 0, synthetic, by_zero)
