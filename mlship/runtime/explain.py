"""Per-prediction explanations from the bundle: exact TreeSHAP summed back to the request's fields.

The bundle's ``explain`` manifest entry (written at export by :mod:`mlship.evaluation.explain_export`)
names the stored tree ensemble, the ONNX subgraph that turns a request's fields into the
ensemble's input (one-hot blocks, scaled columns) and the field each input column comes from.
A row's contribution of a field is the sum of its columns' SHAP values, so base value plus
contributions equal the model's raw score (:func:`Explanation.output_space`). numpy and
onnxruntime only: this runs in Lambda and on devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.errors import MlshipError
from mlship.runtime.treeshap import TreeEnsemble, TreeExplainer


class ExplainError(MlshipError):
    """The bundle cannot be explained (no stored explainer, or a model family without one)."""


@dataclass(frozen=True)
class Explanation:
    """Base value and each field's contribution, per row and target, in ``output_space``."""

    fields: list[str]
    targets: list[Any]  # the class each target scores, or ["value"]
    base_value: np.ndarray  # (targets,)
    contributions: np.ndarray  # (rows, fields, targets)
    output_space: str  # log-odds | logit | probability | value
    method: str = "tree_shap"
    exact: bool = True

    def records(self, top_k: int | None = None) -> list[dict[str, Any]]:
        """One JSON-ready record per row; ``top_k`` keeps the fields with the largest |contribution|."""
        out = []
        for row in self.contributions:
            per_target = []
            for k, target in enumerate(self.targets):
                values = row[:, k]
                order = np.argsort(-np.abs(values), kind="stable")[:top_k] if top_k else range(len(values))
                per_target.append({"target": target, "base_value": float(self.base_value[k]),
                                   "contributions": {self.fields[i]: float(values[i]) for i in order}})
            out.append({"method": self.method, "exact": self.exact, "output_space": self.output_space,
                        "targets": per_target})
        return out


def feature_matrix(session: Any, feeds: dict[str, np.ndarray], tensor_feed: str | None) -> np.ndarray:
    """The tree ensemble's input rows: the features subgraph's output, or the model's own matrix."""
    if session is None:
        return np.asarray(feeds[tensor_feed], dtype=np.float64)
    return np.asarray(session.run(None, feeds)[0], dtype=np.float64)


class BundleExplainer:
    """The explainer a bundle stores, bound to its Predictor's feeds."""

    def __init__(self, predictor: Any):
        bundle = predictor.bundle
        entry = bundle.manifest.get("explain")
        if not entry:
            raise ExplainError(f"bundle {bundle.name}:{bundle.version} stores no explainer: re-export it with "
                               "this mlship (mlship export) to explain its predictions")
        if entry.get("method") != "tree_shap":
            raise ExplainError(f"model {bundle.name}:{bundle.version} has no exact explainer: "
                               f"{entry.get('reason', 'not a tree ensemble')}")
        self.predictor = predictor
        with np.load(bundle.file(entry["trees"]), allow_pickle=False) as arrays:
            self.trees = TreeExplainer(TreeEnsemble.from_arrays(arrays))
        self.session = None
        if entry.get("features"):
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(bundle.file(entry["features"])),
                                                providers=["CPUExecutionProvider"])
        self.fields = list(predictor.schema.names)
        self.output_space = entry["output_space"]
        columns = entry["columns"]
        self.grouping = np.zeros((len(columns), len(self.fields)))
        for column, name in enumerate(columns):
            if name is not None:
                self.grouping[column, self.fields.index(name)] = 1.0
        self.targets = self._targets()

    def _targets(self) -> list[Any]:
        classes = self.predictor.classes
        if self.predictor.task != "classification" or not classes:
            return ["value"]
        n = self.trees.ensemble.n_targets
        return list(classes[-1:]) if n == 1 else list(classes[:n])

    def explain_columns(self, columns: dict[str, np.ndarray]) -> Explanation:
        """The explanation of validated column arrays (as :class:`InputSchema` produces them)."""
        feeds = self.predictor.onnx_feeds(columns)
        tensor_feed = next(iter(feeds)) if self.session is None else None
        values = self.trees.shap_values(feature_matrix(self.session, feeds, tensor_feed))
        per_field = np.einsum("nwk,wf->nfk", values, self.grouping)
        return Explanation(self.fields, self.targets, self.trees.expected_value, per_field, self.output_space)
