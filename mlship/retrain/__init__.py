"""Continuous training: retraining runs triggered by drift or degraded performance (issue 16).

:mod:`~mlship.retrain.triggers` (exactly-once claims with a cooldown), :mod:`~mlship.retrain.trainer`
(the user's training entry point), :mod:`~mlship.retrain.validate` (the fresh batch against the
champion), :mod:`~mlship.retrain.data` (reading it), :mod:`~mlship.retrain.pipeline` (the steps).
"""
