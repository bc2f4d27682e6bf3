"""The training contract: the user's trainer is ``package.module:function``, called with a pandas
DataFrame of fresh labelled rows (features and the label column) and returning a fitted
scikit-learn estimator or Pipeline (``retrain.trainer`` in the configuration; the demo's is
``mlship.local.train:train_pipeline``). Each way it can go wrong is its own error, which stops
the run at the training step with that reason."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from mlship.errors import MlshipError


class TrainerError(MlshipError):
    """The trainer could not give a fitted estimator (the run stops at the training step)."""

    kind = "trainer"


class TrainerImportError(TrainerError):
    """The entry point does not name an importable callable."""


class TrainerFailed(TrainerError):
    """The trainer raised."""


class NotAnEstimator(TrainerError):
    """The trainer returned something that is not a fitted scikit-learn estimator."""


def load_trainer(entry_point: str) -> Callable[..., Any]:
    """The callable ``package.module:function`` names."""
    module_name, sep, attribute = entry_point.partition(":")
    if not sep or not module_name or not attribute:
        raise TrainerImportError(f"trainer {entry_point!r} is not package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import is the trainer's, named for the user
        raise TrainerImportError(f"trainer {entry_point!r}: cannot import {module_name}: "
                                 f"{type(exc).__name__}: {exc}") from None
    trainer = getattr(module, attribute, None)
    if not callable(trainer):
        raise TrainerImportError(f"trainer {entry_point!r}: {module_name} has no callable {attribute!r}")
    return trainer


def train(entry_point: str, frame: Any) -> Any:
    """Call the trainer on ``frame`` and check that it returned a fitted estimator."""
    trainer = load_trainer(entry_point)
    try:
        model = trainer(frame)
    except Exception as exc:  # noqa: BLE001 - the user's code: its failure stops the run with its reason
        raise TrainerFailed(f"trainer {entry_point!r} raised {type(exc).__name__}: {exc}") from None
    check_fitted(entry_point, model)
    return model


def check_fitted(entry_point: str, model: Any) -> None:
    """Refuse what is not a fitted scikit-learn estimator (sklearn's own ``check_is_fitted``)."""
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(model, BaseEstimator) or not hasattr(model, "predict"):
        raise NotAnEstimator(f"trainer {entry_point!r} returned a {type(model).__name__}, not a scikit-learn "
                             "estimator or Pipeline with predict()")
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise NotAnEstimator(f"trainer {entry_point!r} returned an unfitted {type(model).__name__}") from None
