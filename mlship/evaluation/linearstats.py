"""What the exact linear explainer needs, read from the bundle's ONNX graph: the one
``LinearClassifier``/``LinearRegressor`` operator's coefficients, intercepts and output transform.

Before they are stored, the score they give on the holdout is checked against the bundle's own
outputs (through the operator's output transform), so a linear operator that is not the model's
last step (a stacked model, a calibrated one) is refused with :class:`TreeStatsError` and the model
gets the sampling explainer instead of wrong exact values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.evaluation.treestats import TreeStatsError, one_node

LINEAR_OPS = ("LinearClassifier", "LinearRegressor")
TOLERANCE = 1e-4  # float32 scores through onnxruntime against the same score in float64


@dataclass(frozen=True)
class LinearModel:
    """A linear score per target: ``intercept + coef @ x``, then ``post_transform``."""

    coef: np.ndarray  # (targets, columns)
    intercept: np.ndarray  # (targets,)
    post_transform: str

    def scores(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, targets) raw scores in float64."""
        return matrix @ self.coef.T + self.intercept

    def check_outputs(self, matrix: np.ndarray, prediction: Any, task: str) -> None:
        """Raise :class:`TreeStatsError` unless these scores give the bundle's outputs for ``matrix``."""
        scores = self.scores(matrix)
        if task != "classification":
            expected, got = np.asarray(prediction.values, dtype=np.float64).reshape(-1), scores[:, 0]
        elif self.post_transform == "LOGISTIC":
            expected = np.asarray(prediction.probabilities, dtype=np.float64)
            got = 1.0 / (1.0 + np.exp(-scores))
            if expected.shape[1] == 2 and scores.shape[1] == 1:
                got = np.column_stack([1.0 - got[:, 0], got[:, 0]])
            got = got / got.sum(axis=1, keepdims=True)
        elif self.post_transform == "SOFTMAX":
            expected = np.asarray(prediction.probabilities, dtype=np.float64)
            shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
            got = shifted / shifted.sum(axis=1, keepdims=True)
        else:
            raise TreeStatsError(f"a linear classifier with output transform {self.post_transform} "
                                 "has no probability its scores explain")
        finite = np.isfinite(expected).all(axis=-1) if expected.ndim > 1 else np.isfinite(expected)
        if not np.allclose(got[finite], expected[finite], atol=TOLERANCE, rtol=0):
            raise TreeStatsError("the linear operator's scores do not give the model's outputs: it is not "
                                 "the model's last step")


def linear_node(model: Any) -> Any:
    """The graph's one ``LinearClassifier``/``LinearRegressor`` node."""
    return one_node(model, LINEAR_OPS, "linear")


def linear_model(node: Any, width: int) -> LinearModel:
    """The :class:`LinearModel` of a linear operator whose input has ``width`` columns (the positive
    class's row alone for a binary classifier, whose two rows are each other's negatives)."""
    import onnx

    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    coefficients = np.asarray(attrs["coefficients"], dtype=np.float64)
    if coefficients.size % width:
        raise TreeStatsError(f"{coefficients.size} coefficients do not fill rows of the input's width {width}")
    n_targets = coefficients.size // width
    coef = coefficients.reshape(n_targets, width)
    intercept = np.asarray(attrs.get("intercepts") or [0.0] * n_targets, dtype=np.float64).reshape(n_targets)
    post = attrs.get("post_transform", b"NONE")
    post = post.decode() if isinstance(post, bytes) else str(post)
    if node.op_type == "LinearClassifier" and n_targets == 2:
        coef, intercept = coef[1:], intercept[1:]
    return LinearModel(coef, intercept, post)
