"""Sticky assignment of a unit (a user, a device, an account) to an experiment's variant.

A unit id is hashed with the experiment's salt to a point in [0, 1); the variants own consecutive
shares of [0, 1) in proportion to their weights, so a unit keeps its variant on every request,
and changing the salt re-randomises every unit (a new experiment). This is the scheme of
GrowthBook's and Optimizely's SDKs (deterministic hash buckets), with SHA-256 as the hash. Stdlib
only: it runs in the prediction Lambda.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

Weights = Sequence[tuple[str, float]]


def unit_point(unit: str, salt: str) -> float:
    """The unit's point in [0, 1) for this salt (uniform over units)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(unit: str, weights: Weights, salt: str) -> str:
    """The variant that owns the unit's point (weights need not sum to 1)."""
    total = sum(w for _, w in weights)
    point = unit_point(unit, salt) * total
    for name, weight in weights:
        if point < weight:
            return name
        point -= weight
    return weights[-1][0]  # the point rounded onto the top edge


def parse_weights(text: str) -> list[tuple[str, float]]:
    """``"blue=0.5,green=0.5"`` → ``[("blue", 0.5), ("green", 0.5)]``; raises ValueError naming the
    part that is not ``NAME=WEIGHT`` with a positive weight, or a repeated name."""
    weights: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, raw = part.partition("=")
        try:
            weight = float(raw)
        except ValueError:
            weight = -1.0
        if not sep or not name.strip() or not weight > 0 or weight == float("inf"):
            raise ValueError(f"{part!r} is not NAME=WEIGHT with a positive weight")
        if name.strip() in {n for n, _ in weights}:
            raise ValueError(f"variant {name.strip()!r} is named twice")
        weights.append((name.strip(), weight))
    if len(weights) < 2:
        raise ValueError("an experiment needs at least two variants (NAME=WEIGHT,NAME=WEIGHT)")
    return weights
