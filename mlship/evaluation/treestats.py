"""What exact TreeSHAP needs, taken at export: the ONNX tree ensemble's attributes plus each node's
cover from scikit-learn's fitted trees (ONNX has no cover).

The ONNX node ids are scikit-learn's node indices (skl2onnx keeps them), and each ONNX tree is
checked against the scikit-learn tree it is paired with (split features, thresholds to float32,
children) before its covers are used, so a pairing that does not hold raises
:class:`TreeStatsError` instead of giving wrong explanations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlship.errors import MlshipError
from mlship.runtime.treeshap import TreeEnsemble

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


class TreeStatsError(MlshipError):
    """The model has no tree ensemble mlship can explain exactly, or its trees do not line up."""


def one_node(model: Any, ops: tuple[str, ...], what: str) -> Any:
    """The graph's one node whose operator is in ``ops``; :class:`TreeStatsError` naming ``what`` otherwise."""
    found = [n for n in model.graph.node if n.op_type in ops]
    if len(found) != 1:
        raise TreeStatsError(f"expected one {what} operator in the ONNX graph, found {len(found)}")
    return found[0]


def tree_node(model: Any) -> Any:
    """The graph's one ``TreeEnsembleClassifier``/``TreeEnsembleRegressor`` node."""
    return one_node(model, TREE_OPS, "tree ensemble")


def tree_ensemble(model: Any, estimator: Any) -> TreeEnsemble:
    """The bundle's ONNX tree ensemble with the covers of ``estimator``'s trees (the fitted model)."""
    import onnx

    node = tree_node(model)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    targets = np.asarray(attrs[f"{prefix}_ids"], dtype=np.int64)
    n_targets = int(targets.max()) + 1 if targets.size else 1
    modes = [m.decode() if isinstance(m, bytes) else m for m in attrs["nodes_modes"]]
    unsupported = sorted({m for m in modes if m not in ("BRANCH_LEQ", "LEAF")})
    if unsupported:
        raise TreeStatsError(f"split modes {unsupported} are not supported by the exact explainer")
    tree = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(attrs["nodes_nodeids"], dtype=np.int64)
    ensemble = TreeEnsemble(
        tree=tree, node=node_ids, feature=np.asarray(attrs["nodes_featureids"], dtype=np.int64),
        threshold=np.asarray(attrs["nodes_values"], dtype=np.float64),
        true_child=np.asarray(attrs["nodes_truenodeids"], dtype=np.int64),
        false_child=np.asarray(attrs["nodes_falsenodeids"], dtype=np.int64),
        missing_true=np.asarray(attrs.get("nodes_missing_value_tracks_true") or [0] * tree.size, dtype=bool),
        is_leaf=np.asarray([m == "LEAF" for m in modes]), cover=_covers(tree, node_ids, attrs, estimator),
        leaf_tree=np.asarray(attrs[f"{prefix}_treeids"], dtype=np.int64),
        leaf_node=np.asarray(attrs[f"{prefix}_nodeids"], dtype=np.int64), leaf_target=targets,
        leaf_weight=np.asarray(attrs[f"{prefix}_weights"], dtype=np.float64),
        base_values=np.asarray(attrs.get("base_values") or [0.0] * n_targets, dtype=np.float64),
        n_features=int(getattr(estimator, "n_features_in_", 0)) or operator_width(model, node),
        post_transform=_text(attrs.get("post_transform", "NONE")))
    return ensemble


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def operator_width(model: Any, node: Any) -> int:
    """The width of an operator's input vector (from the graph's shape information)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    name = node.input[0]
    for info in [*inferred.graph.input, *inferred.graph.value_info]:
        if info.name == name:
            dims = info.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].dim_value > 0:
                return int(dims[1].dim_value)
    raise TreeStatsError(f"the {node.op_type} input {name!r} has no known width")


def _sklearn_trees(estimator: Any) -> list[dict[str, np.ndarray]]:
    """Each fitted tree's arrays, in the order skl2onnx numbers the ONNX trees."""
    if hasattr(estimator, "_predictors"):  # HistGradientBoosting*: iteration-major, then class
        return [{"feature": p.nodes["feature_idx"], "threshold": p.nodes["num_threshold"],
                 "left": p.nodes["left"], "right": p.nodes["right"], "leaf": p.nodes["is_leaf"].astype(bool),
                 "cover": p.nodes["count"].astype(np.float64)} for stage in estimator._predictors for p in stage]
    trees = getattr(estimator, "estimators_", None)
    if trees is None and hasattr(estimator, "tree_"):
        trees = [estimator]
    if trees is None:
        raise TreeStatsError(f"{type(estimator).__name__} is not a tree ensemble mlship can explain exactly")
    flat = list(np.asarray(trees, dtype=object).reshape(-1))  # GradientBoosting*: (stages, classes)
    return [{"feature": t.tree_.feature, "threshold": t.tree_.threshold, "left": t.tree_.children_left,
             "right": t.tree_.children_right, "leaf": t.tree_.children_left < 0,
             "cover": t.tree_.weighted_n_node_samples.astype(np.float64)} for t in flat]


def _covers(tree: np.ndarray, node_ids: np.ndarray, attrs: dict[str, Any], estimator: Any) -> np.ndarray:
    """The cover of every ONNX node, from the scikit-learn tree it is checked to be."""
    trees = _sklearn_trees(estimator)
    n_onnx = int(tree.max()) + 1 if tree.size else 0
    if n_onnx != len(trees):
        raise TreeStatsError(f"the ONNX model has {n_onnx} trees, the fitted model {len(trees)}")
    features = np.asarray(attrs["nodes_featureids"])
    thresholds = np.asarray(attrs["nodes_values"], dtype=np.float64)
    true_ids = np.asarray(attrs["nodes_truenodeids"])
    cover = np.zeros(tree.size)
    for t, arrays in enumerate(trees):
        rows = np.flatnonzero(tree == t)
        ids = node_ids[rows]
        if ids.max(initial=-1) >= len(arrays["cover"]):
            raise TreeStatsError(f"ONNX tree {t} has node ids beyond its scikit-learn tree's")
        split = ~arrays["leaf"][ids]
        same = (np.array_equal(features[rows][split], arrays["feature"][ids][split])
                and np.allclose(thresholds[rows][split], arrays["threshold"][ids][split].astype(np.float32),
                                rtol=1e-6, atol=1e-6)
                and np.array_equal(true_ids[rows][split], arrays["left"][ids][split]))
        if not same:
            raise TreeStatsError(f"ONNX tree {t} does not match scikit-learn tree {t}: cannot take its covers")
        cover[rows] = arrays["cover"][ids]
    return cover
