"""The training contract (the user's ``package.module:function``) and the validation step that
stops a bad batch before anything is trained on it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.retrain.trainer import NotAnEstimator, TrainerFailed, TrainerImportError, load_trainer, train
from mlship.retrain.validate import Limits, validate_batch


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's training package on sys.path, with good and bad trainers."""
    (tmp_path / "my_trainers.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "def good(frame):\n"
        "    return LogisticRegression().fit(frame[['x']], frame['y'])\n"
        "def raises(frame):\n"
        "    raise KeyError('no column z')\n"
        "def returns_dict(frame):\n"
        "    return {'model': 1}\n"
        "def unfitted(frame):\n"
        "    return LogisticRegression()\n"
        "not_callable = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_trainers"
    sys.modules.pop("my_trainers", None)


def _frame() -> Any:
    import pandas as pd

    return pd.DataFrame({"x": np.arange(40.0), "y": [0, 1] * 20})


def test_a_good_trainer_returns_a_fitted_estimator(user_code):
    model = train(f"{user_code}:good", _frame())
    assert model.predict(_frame()[["x"]]).shape == (40,)


@pytest.mark.parametrize(("entry", "error", "named"), [
    ("my_trainers", TrainerImportError, "package.module:function"),
    ("no_such_package.mod:fit", TrainerImportError, "cannot import no_such_package"),
    ("my_trainers:missing", TrainerImportError, "no callable 'missing'"),
    ("my_trainers:not_callable", TrainerImportError, "no callable"),
    ("my_trainers:raises", TrainerFailed, "KeyError"),
    ("my_trainers:returns_dict", NotAnEstimator, "returned a dict"),
    ("my_trainers:unfitted", NotAnEstimator, "unfitted LogisticRegression"),
])
def test_each_way_a_trainer_fails_is_named(user_code, entry, error, named):
    with pytest.raises(error, match=named):
        train(entry, _frame())


def test_the_demo_trainer_honours_the_contract():
    from mlship.local.datasets import make_churn

    assert callable(load_trainer("mlship.local.train:train_pipeline"))
    model = train("mlship.local.train:train_pipeline", make_churn(600, seed=3))
    assert hasattr(model, "predict_proba")


@pytest.fixture(scope="module")
def contract(churn_bundle: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from mlship.runtime.sources import open_bundle

    bundle = open_bundle(churn_bundle)
    return bundle.manifest, bundle.profile


def _fresh(n: int = 800, seed: int = 11, shift: float = 0.0) -> Any:
    from mlship.local.datasets import make_churn

    return make_churn(n, seed=seed, shift=shift)


def test_a_fresh_batch_passes_and_drift_is_reported_not_refused(contract):
    manifest, profile = contract
    report = validate_batch(_fresh(shift=1.5), "churned", manifest, profile)
    assert report.passed, report.failures()
    assert max(report.ranges.values()) > 0  # shifted values beyond the baseline's range: reported only
    assert {c.name for c in report.checks} == {"rows", "label", "schema", "nulls"}


def test_bad_batches_stop_with_the_reason(contract):
    manifest, profile = contract
    few = validate_batch(_fresh(100), "churned", manifest, profile)
    assert not few.passed and "fewer than the 500 required" in few.failures()[0]
    no_label = validate_batch(_fresh().drop(columns="churned"), "churned", manifest, profile)
    assert any("no label column" in f for f in no_label.failures())
    one_class = _fresh()
    one_class["churned"] = 0
    assert any("classes under 1%" in f for f in validate_batch(one_class, "churned", manifest, profile).failures())
    nulls = _fresh()
    nulls.loc[nulls.index[:200], "age"] = np.nan
    assert any("age: 25.0% null" in f for f in validate_batch(nulls, "churned", manifest, profile).failures())
    junk = _fresh()
    junk["tenure_months"] = junk["tenure_months"].astype(object)
    junk.loc[junk.index[:100], "tenure_months"] = "lots"
    refused = validate_batch(junk, "churned", manifest, profile, Limits())
    assert any(f.startswith("schema: 100 rows the champion's schema refuses") for f in refused.failures())
    missing = validate_batch(_fresh().drop(columns="age"), "churned", manifest, profile)
    assert any("columns missing: age" in f for f in missing.failures())
