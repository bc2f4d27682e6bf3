"""Per-prediction explanations from the bundle, summed back to the request's fields.

The bundle's ``explain`` manifest entry (written at export by :mod:`mlship.evaluation.explain_export`)
says which explainer the model has:

- ``tree_shap``: exact TreeSHAP on the stored tree ensemble (:mod:`mlship.runtime.treeshap`);
- ``linear``: exact contributions of a linear model, coefficient x (value - training mean);
- ``sampling``: approximate Shapley values by permutation sampling on a stored background, with a
  bounded number of model evaluations per row (:mod:`mlship.runtime.sampling_shap`).

The exact ones work on the model's own input matrix: an ONNX subgraph turns a request's fields into
it (one-hot blocks, scaled columns) and each of its columns belongs to one field, whose
contribution is the sum of its columns'. Base value plus contributions equal the model's output in
``output_space``. numpy and onnxruntime only: this runs in Lambda and on devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlship.errors import MlshipError
from mlship.runtime import sampling_shap
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
    model_calls: int | None = None  # model evaluations per row, for the sampling explainer

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
            record: dict[str, Any] = {"method": self.method, "exact": self.exact,
                                      "output_space": self.output_space, "targets": per_target}
            if self.model_calls is not None:
                record["model_calls"] = self.model_calls
            out.append(record)
        return out


def feature_matrix(session: Any, feeds: dict[str, np.ndarray], tensor_feed: str | None) -> np.ndarray:
    """The tree ensemble's input rows: the features subgraph's output, or the model's own matrix."""
    if session is None:
        return np.asarray(feeds[tensor_feed], dtype=np.float64)
    return np.asarray(session.run(None, feeds)[0], dtype=np.float64)


def load_explainer(predictor: Any) -> Any:
    """The explainer the bundle stores, bound to ``predictor``; :class:`ExplainError` when there is none."""
    bundle = predictor.bundle
    entry = bundle.manifest.get("explain")
    if not entry or entry.get("method") not in EXPLAINERS:
        why = f" ({entry['reason']})" if entry and entry.get("reason") else ""
        raise ExplainError(f"bundle {bundle.name}:{bundle.version} stores no explainer{why}: re-export it with "
                           "this mlship (mlship export) to explain its predictions")
    return EXPLAINERS[entry["method"]](predictor, entry)


def field_grouping(columns: list[str | None], fields: list[str]) -> np.ndarray:
    """(input columns, fields) 0/1 matrix: which field each column of the model's input comes from."""
    grouping = np.zeros((len(columns), len(fields)))
    for column, name in enumerate(columns):
        if name is not None:
            grouping[column, fields.index(name)] = 1.0
    return grouping


def explained_targets(predictor: Any, n_targets: int) -> list[Any]:
    """The class each target scores (the positive class alone for one), or ``["value"]``."""
    classes = predictor.classes
    if predictor.task != "classification" or not classes:
        return ["value"]
    return list(classes[-1:]) if n_targets == 1 else list(classes[:n_targets])


class _MatrixExplainer:
    """An exact explainer on the model's input matrix, whose columns are summed back to fields."""

    method = ""
    exact = True
    model_calls: int | None = None

    def __init__(self, predictor: Any, entry: dict[str, Any]):
        bundle = predictor.bundle
        self.predictor = predictor
        self.session = None
        if entry.get("features"):
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(bundle.file(entry["features"])),
                                                providers=["CPUExecutionProvider"])
        self.fields = list(predictor.schema.names)
        self.output_space = entry["output_space"]
        self.grouping = field_grouping(entry["columns"], self.fields)

    def matrix(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The model's input rows for validated columns."""
        feeds = self.predictor.onnx_feeds(columns)
        return feature_matrix(self.session, feeds, next(iter(feeds)) if self.session is None else None)

    def column_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Base value (targets,) and (rows, columns, targets) contributions of the input columns."""
        raise NotImplementedError

    @property
    def targets(self) -> list[Any]:
        """What each explained target scores (:func:`explained_targets`)."""
        return explained_targets(self.predictor, self.n_targets)

    n_targets = 1

    def explain_columns(self, columns: dict[str, np.ndarray]) -> Explanation:
        """The explanation of validated column arrays (as :class:`InputSchema` produces them)."""
        base, values = self.column_values(self.matrix(columns))
        per_field = np.einsum("nwk,wf->nfk", values, self.grouping)
        return Explanation(self.fields, self.targets, base, per_field, self.output_space, self.method)


class TreeShapExplainer(_MatrixExplainer):
    """Exact path-dependent TreeSHAP on the stored tree ensemble."""

    method = "tree_shap"

    def __init__(self, predictor: Any, entry: dict[str, Any]):
        super().__init__(predictor, entry)
        with np.load(predictor.bundle.file(entry["trees"]), allow_pickle=False) as arrays:
            self.trees = TreeExplainer(TreeEnsemble.from_arrays(arrays))
        self.n_targets = self.trees.ensemble.n_targets

    def column_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.trees.expected_value, self.trees.shap_values(matrix)


class LinearExplainer(_MatrixExplainer):
    """Exact contributions of a linear score: coefficient x (column - its training mean)."""

    method = "linear"

    def __init__(self, predictor: Any, entry: dict[str, Any]):
        super().__init__(predictor, entry)
        with np.load(predictor.bundle.file(entry["linear"]), allow_pickle=False) as arrays:
            self.coef = np.asarray(arrays["coef"], dtype=np.float64)  # (targets, columns)
            self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            self.mean = np.asarray(arrays["mean"], dtype=np.float64)
        self.base = self.intercept + self.coef @ self.mean
        self.n_targets = len(self.base)

    def column_values(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.base, (matrix - self.mean)[:, :, None] * self.coef.T[None, :, :]


class SamplingExplainer:
    """Approximate Shapley values of the model's output by permutation sampling on a stored background."""

    method = "sampling"
    exact = False

    def __init__(self, predictor: Any, entry: dict[str, Any]):
        import json

        self.predictor = predictor
        self.fields = list(predictor.schema.names)
        self.output_space = entry["output_space"]
        stored = json.loads(predictor.bundle.file(entry["background"]).read_text())
        batch = predictor.schema.validate(stored["rows"])
        batch.raise_for_errors()
        self.plan = sampling_shap.plan(len(self.fields), batch.columns, np.asarray(stored["weights"]),
                                       int(entry.get("budget", sampling_shap.DEFAULT_BUDGET)))
        self.base = sampling_shap.base_value(self.outputs, self.plan)
        self.targets = explained_targets(self.predictor, len(self.base))
        self.model_calls = self.plan.evaluations

    def outputs(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """(rows, targets): the probability of each explained class, or the regression value."""
        prediction = self.predictor.predict_columns(columns)
        if self.predictor.task != "classification":
            return np.asarray(prediction.values, dtype=np.float64).reshape(-1, 1)
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
        return probabilities[:, -1:] if probabilities.shape[1] == 2 else probabilities

    def explain_columns(self, columns: dict[str, np.ndarray]) -> Explanation:
        """The explanation of validated column arrays (as :class:`InputSchema` produces them)."""
        n_rows = len(columns[self.fields[0]]) if self.fields else 0
        values = (sampling_shap.shapley_values(self.outputs, columns, self.fields, self.plan) if n_rows
                  else np.zeros((0, len(self.fields), len(self.base))))
        return Explanation(self.fields, self.targets, self.base, values, self.output_space, self.method,
                           exact=False, model_calls=self.plan.evaluations)


EXPLAINERS: dict[str, Any] = {"tree_shap": TreeShapExplainer, "linear": LinearExplainer,
                              "sampling": SamplingExplainer}
