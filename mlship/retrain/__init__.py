"""Continuous training: retraining runs triggered by drift or degraded performance (issue 16).

So far: :mod:`mlship.retrain.triggers`, the exactly-once claim of a trigger with a per-model cooldown.
"""
