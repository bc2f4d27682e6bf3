"""The explainer files of a bundle, written at export.

- A tree ensemble: its trees with covers (exact TreeSHAP).
- A linear model: its coefficients, intercepts and each input column's mean on the holdout
  (exact contributions, coefficient x (value - mean)).
- Both: the ONNX subgraph that computes the operator's input from the request's fields, and which
  raw field each of that input's columns comes from.
- Any other model: a weighted background of holdout rows for the sampling explainer (approximate),
  with the reason it has no exact one.

Which field feeds which column is measured on the ONNX graph itself: each field of holdout rows is
replaced by other rows' values and the columns that change are that field's (a one-hot block, a
scaled column). A column that two fields move is refused: its contribution could not be given to
one field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mlship.evaluation import background
from mlship.evaluation.linearstats import LINEAR_OPS, linear_model, linear_node
from mlship.evaluation.treestats import TREE_OPS, TreeStatsError, tree_ensemble, tree_node
from mlship.runtime.explain import feature_matrix
from mlship.runtime.manifest import EXPLAIN_DIR
from mlship.runtime.sampling_shap import DEFAULT_BUDGET

TREES_FILE = f"{EXPLAIN_DIR}/trees.npz"
LINEAR_FILE = f"{EXPLAIN_DIR}/linear.npz"
FEATURES_FILE = f"{EXPLAIN_DIR}/features.onnx"
BACKGROUND_FILE = f"{EXPLAIN_DIR}/background.json"
MAPPING_ROWS = 200
SHIFTS = (1, 7, 31)  # rows are shifted by each: a field equal in two neighbouring rows still moves


def write_explainer(out: Path, model: Any, estimator: Any, predictor: Any,
                    columns: dict[str, np.ndarray], budget: int = DEFAULT_BUDGET) -> dict[str, Any]:
    """Write the explainer files into the bundle folder ``out``; return the manifest's ``explain`` entry.

    ``estimator`` is the fitted final estimator, ``predictor`` the bundle's Predictor (its schema
    and feeds), ``columns`` validated holdout rows. A tree ensemble or a linear model gets its exact
    explainer; any other model, or one whose exact explainer cannot be built, the sampling one,
    which spends at most ``budget`` model evaluations per explained row.
    """
    (out / EXPLAIN_DIR).mkdir(exist_ok=True)
    ops = {node.op_type for node in model.graph.node}
    try:
        if ops & set(TREE_OPS):
            return _tree_entry(out, model, estimator, predictor, columns)
        if ops & set(LINEAR_OPS):
            return _linear_entry(out, model, predictor, columns)
        reason = f"{type(estimator).__name__} is neither a tree ensemble nor a linear model"
    except TreeStatsError as exc:
        reason = str(exc)
    return _sampling_entry(out, predictor, columns, reason, budget)


def _tree_entry(out: Path, model: Any, estimator: Any, predictor: Any,
                columns: dict[str, np.ndarray]) -> dict[str, Any]:
    ensemble = tree_ensemble(model, estimator)
    features = _features_model(model, tree_node(model), ensemble.n_features)
    fields = _field_of_each_column(_session(features), predictor, columns, ensemble.n_features)
    np.savez_compressed(out / TREES_FILE, **ensemble.to_arrays())
    entry = {"method": "tree_shap", "trees": TREES_FILE, "columns": fields,
             "output_space": output_space(ensemble.post_transform, predictor.task)}
    return _with_features(out, entry, features)


def _linear_entry(out: Path, model: Any, predictor: Any, columns: dict[str, np.ndarray]) -> dict[str, Any]:
    node = linear_node(model)
    features = _features_model(model, node, None)  # the width is measured: shape inference may not know it
    session = _session(features)
    feeds = predictor.onnx_feeds(columns)
    matrix = feature_matrix(session, feeds, next(iter(feeds)) if session is None else None)
    linear = linear_model(node, matrix.shape[1])
    fields = _field_of_each_column(session, predictor, columns, matrix.shape[1])
    linear.check_outputs(matrix, predictor.predict_columns(columns), predictor.task)
    np.savez_compressed(out / LINEAR_FILE, coef=linear.coef, intercept=linear.intercept,
                        mean=np.nanmean(matrix, axis=0))
    entry = {"method": "linear", "linear": LINEAR_FILE, "columns": fields,
             "output_space": output_space(linear.post_transform, predictor.task)}
    return _with_features(out, entry, features)


def _sampling_entry(out: Path, predictor: Any, columns: dict[str, np.ndarray], reason: str,
                    budget: int) -> dict[str, Any]:
    rows, weights = background.background_rows(predictor.schema, columns)
    (out / BACKGROUND_FILE).write_text(json.dumps({"rows": rows, "weights": weights}) + "\n")
    return {"method": "sampling", "background": BACKGROUND_FILE, "budget": budget,
            "output_space": "probability" if predictor.task == "classification" else "value",
            "reason": f"no exact explainer: {reason}"}


def _with_features(out: Path, entry: dict[str, Any], features: Any) -> dict[str, Any]:
    if features is not None:
        (out / FEATURES_FILE).write_bytes(features.SerializeToString())
        entry["features"] = FEATURES_FILE
    return entry


def _session(features: Any) -> Any:
    import onnxruntime as ort

    return None if features is None else ort.InferenceSession(features.SerializeToString(),
                                                              providers=["CPUExecutionProvider"])


def output_space(post_transform: str, task: str) -> str:
    """What the contributions add up to: the model's score before its output transform."""
    if task != "classification":
        return "value"
    return {"LOGISTIC": "log-odds", "SOFTMAX": "logit"}.get(post_transform, "probability")


def _features_model(model: Any, operator: Any, width: int | None) -> Any:
    """The subgraph from the graph's inputs to ``operator``'s input (the nodes it needs, that
    tensor as the only output); None when that input is the graph's only input."""
    import onnx

    tree_input = operator.input[0]
    inputs = [i.name for i in model.graph.input]
    if inputs == [tree_input]:
        return None
    producers = {out: node for node in model.graph.node for out in node.output}
    needed, wanted = [], [tree_input]
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        node = producers.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        needed.append(node)
        wanted.extend(node.input)
    keep = {id(n) for n in needed}
    graph = onnx.helper.make_graph(
        [n for n in model.graph.node if id(n) in keep], "mlship-explain-features", list(model.graph.input),
        [onnx.helper.make_tensor_value_info(tree_input, onnx.TensorProto.FLOAT, [None, width])],
        initializer=list(model.graph.initializer))
    features = onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    try:
        onnx.checker.check_model(features)
    except onnx.checker.ValidationError as exc:
        raise TreeStatsError(f"cannot cut the {operator.op_type} input out of the graph: {exc}") from None
    return features


def _field_of_each_column(session: Any, predictor: Any, columns: dict[str, np.ndarray],
                          width: int) -> list[str | None]:
    """For each column of the operator's input (``session``: the features subgraph, None when the
    model's input is that matrix), the one request field it is computed from."""
    schema = predictor.schema
    base = {k: v[:MAPPING_ROWS] for k, v in columns.items()}
    tensor_feed = next(iter(predictor.onnx_feeds(base))) if session is None else None
    reference = feature_matrix(session, predictor.onnx_feeds(base), tensor_feed)
    owner: list[str | None] = [None] * width
    for name in schema.names:
        moved = np.zeros(width, dtype=bool)
        for shift in SHIFTS:
            shifted = {**base, name: np.roll(base[name], shift)}
            out = feature_matrix(session, predictor.onnx_feeds(shifted), tensor_feed)
            moved |= ~np.isclose(out, reference, equal_nan=True).all(axis=0)
        for column in np.flatnonzero(moved).tolist():
            if owner[column] is not None:
                raise TreeStatsError(f"column {column} of the model's input matrix depends on both "
                                     f"{owner[column]!r} and {name!r}: its contribution has no one field")
            owner[column] = name
    return owner
