"""Reference training pipelines for demos and tests (scikit-learn; never on a serving path)."""

from __future__ import annotations

from typing import Any

from mlship.local.datasets import CHURN_CATEGORICAL, CHURN_LABEL, CHURN_NUMERIC

KINDS = ("hgb", "logreg", "rf", "gb", "mlp", "knn", "svc")


def make_estimator(kind: str, task: str = "classification", seed: int = 0) -> Any:
    """An unfitted estimator of a named family."""
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm

    if task == "regression":
        return {"hgb": ensemble.HistGradientBoostingRegressor(max_iter=80, random_state=seed),
                "rf": ensemble.RandomForestRegressor(n_estimators=50, random_state=seed, n_jobs=1),
                "gb": ensemble.GradientBoostingRegressor(random_state=seed),
                "ridge": linear_model.Ridge(),
                "mlp": neural_network.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=seed),
                }[kind]
    return {"hgb": ensemble.HistGradientBoostingClassifier(max_iter=80, random_state=seed),
            "logreg": linear_model.LogisticRegression(max_iter=2000),
            "rf": ensemble.RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1),
            "gb": ensemble.GradientBoostingClassifier(n_estimators=60, random_state=seed),
            "mlp": neural_network.MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=seed),
            "knn": neighbors.KNeighborsClassifier(n_neighbors=15),
            "svc": svm.SVC(probability=True, random_state=seed),
            }[kind]


def churn_pipeline(kind: str = "hgb", seed: int = 0) -> Any:
    """ColumnTransformer(median-impute + StandardScaler numeric + OneHotEncoder categorical) -> estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    pre = ColumnTransformer([
        ("num", numeric, CHURN_NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CHURN_CATEGORICAL),
    ])
    return Pipeline([("pre", pre), ("model", make_estimator(kind, seed=seed))])


def split(df: Any, test_size: float = 0.3, seed: int = 0) -> tuple[Any, Any]:
    """Deterministic train/holdout split."""
    from sklearn.model_selection import train_test_split

    train, holdout = train_test_split(df, test_size=test_size, random_state=seed)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def train_pipeline(df: Any, kind: str = "hgb", label: str = CHURN_LABEL, seed: int = 0) -> Any:
    """Fit a churn pipeline of the given family on a DataFrame."""
    pipe = churn_pipeline(kind, seed)
    pipe.fit(df.drop(columns=[label]), df[label])
    return pipe
