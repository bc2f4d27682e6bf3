"""The explainer files of a bundle, written at export: the tree ensemble with covers, the ONNX
subgraph that computes the ensemble's input from the request's fields, and which raw field each
of that input's columns comes from.

Which field feeds which column is measured on the ONNX graph itself: each field of holdout rows is
replaced by other rows' values and the columns that change are that field's (a one-hot block, a
scaled column). A column that two fields move is refused: its contribution could not be given to
one field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlship.evaluation.treestats import TreeStatsError, tree_ensemble, tree_node
from mlship.runtime.explain import feature_matrix

EXPLAIN_DIR = "explain"
TREES_FILE = f"{EXPLAIN_DIR}/trees.npz"
FEATURES_FILE = f"{EXPLAIN_DIR}/features.onnx"
MAPPING_ROWS = 200
SHIFTS = (1, 7, 31)  # rows are shifted by each: a field equal in two neighbouring rows still moves


def write_explainer(out: Path, model: Any, estimator: Any, predictor: Any,
                    columns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write the explainer files into the bundle folder ``out``; return the manifest's ``explain`` entry.

    ``estimator`` is the fitted final estimator, ``predictor`` the bundle's Predictor (its schema
    and feeds), ``columns`` validated holdout rows. A model mlship cannot explain exactly gets
    ``{"method": "none", "reason": ...}``.
    """
    try:
        ensemble = tree_ensemble(model, estimator)
        features = _features_model(model, ensemble.n_features)
        fields = _field_of_each_column(features, predictor, columns, ensemble.n_features)
    except TreeStatsError as exc:
        return {"method": "none", "reason": str(exc)}
    (out / EXPLAIN_DIR).mkdir(exist_ok=True)
    np.savez_compressed(out / TREES_FILE, **ensemble.to_arrays())
    entry: dict[str, Any] = {"method": "tree_shap", "trees": TREES_FILE, "columns": fields,
                             "output_space": output_space(ensemble, predictor.task)}
    if features is not None:
        (out / FEATURES_FILE).write_bytes(features.SerializeToString())
        entry["features"] = FEATURES_FILE
    return entry


def output_space(ensemble: Any, task: str) -> str:
    """What the contributions add up to: the model's score before its output transform."""
    if task != "classification":
        return "value"
    return {"LOGISTIC": "log-odds", "SOFTMAX": "logit"}.get(ensemble.post_transform, "probability")


def _features_model(model: Any, width: int) -> Any:
    """The subgraph from the graph's inputs to the tree operator's input (the nodes it needs, that
    tensor as the only output); None when that input is the graph's only input."""
    import onnx

    tree_input = tree_node(model).input[0]
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
        raise TreeStatsError(f"cannot cut the tree ensemble's input out of the graph: {exc}") from None
    return features


def _field_of_each_column(features: Any, predictor: Any, columns: dict[str, np.ndarray],
                          width: int) -> list[str | None]:
    """For each column of the ensemble's input, the one request field it is computed from."""
    import onnxruntime as ort

    schema = predictor.schema
    session = None if features is None else ort.InferenceSession(features.SerializeToString(),
                                                                   providers=["CPUExecutionProvider"])
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
                raise TreeStatsError(f"column {column} of the tree ensemble's input depends on both "
                                     f"{owner[column]!r} and {name!r}: its contribution has no one field")
            owner[column] = name
    return owner
