"""Request bodies: from a file, or generated from a bundle's golden examples and baseline profile.

Generated bodies are single-record JSON (``{"instances": [record]}``): the golden inputs first (the
rows the bundle promises to answer), then rows drawn from the training profile (numeric features from
the quantile bins with their counts, uniform inside a bin; categorical features from their
frequencies; nulls at the profiled rate), so the model sees realistic values, not constants.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlship.loadtest.errors import BadInput

JSON, CSV = "application/json", "text/csv"
MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit, and SageMaker's


@dataclass(frozen=True)
class Bodies:
    """The bodies a run cycles through, and their content type."""

    items: tuple[bytes, ...]
    content_type: str
    source: str

    def __getitem__(self, i: int) -> bytes:
        return self.items[i % len(self.items)]


def from_file(path: str | Path) -> Bodies:
    """``.jsonl``: one JSON body per line; ``.csv``/``.txt``: one CSV body; else one JSON body."""
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"body file not found: {p}")
    raw = p.read_bytes()
    if p.suffix.lower() == ".jsonl":
        items = tuple(line for line in raw.splitlines() if line.strip())
        for n, line in enumerate(items, 1):
            _check_json(line, f"{p.name} line {n}")
        return _checked(Bodies(items, JSON, str(p)))
    if p.suffix.lower() in (".csv", ".txt"):
        return _checked(Bodies((raw,), CSV, str(p)))
    _check_json(raw, p.name)
    return _checked(Bodies((raw,), JSON, str(p)))


def _check_json(raw: bytes, where: str) -> None:
    try:
        json.loads(raw)
    except ValueError as exc:
        raise BadInput(f"{where} is not valid JSON: {exc}") from None


def _checked(bodies: Bodies) -> Bodies:
    if not bodies.items:
        raise BadInput(f"{bodies.source} holds no request body")
    big = max(len(b) for b in bodies.items)
    if big > MAX_BODY_BYTES:
        raise BadInput(f"{bodies.source}: a body of {big} bytes is over the 6 MB synchronous payload limit")
    return bodies


def from_bundle(uri: str, count: int = 200, seed: int = 0) -> Bodies:
    """``count`` single-record bodies: the bundle's golden inputs, then rows drawn from its profile."""
    from mlship.errors import MlshipError
    from mlship.runtime.sources import open_bundle

    try:
        bundle = open_bundle(uri)
        golden = list(bundle.golden.get("inputs") or [])
        fields = bundle.manifest["input_schema"]["fields"]
    except (MlshipError, OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"cannot read bodies from {uri}: {exc}") from None
    try:
        profile = bundle.profile
    except (MlshipError, OSError, ValueError):  # no (readable) baseline profile: the golden examples alone
        profile = {}
        count = min(count, len(golden))
    rows = golden[:count] + synthetic_rows(profile, fields, max(0, count - len(golden)), seed)
    if not rows:
        raise BadInput(f"{uri} has neither golden examples nor a profile to build requests from")
    return Bodies(tuple(json.dumps({"instances": [r]}).encode() for r in rows), JSON, f"bundle {uri}")


def synthetic_rows(profile: dict[str, Any], fields: list[dict[str, Any]], n: int, seed: int = 0) -> list[dict]:
    """``n`` records drawn feature by feature from the baseline profile (see the module docstring)."""
    rng = np.random.default_rng(seed)
    features = profile.get("features") or {}
    columns = {}
    for spec in fields:
        name = spec["name"]
        columns[name] = _draw(features.get(name) or {}, spec, n, rng)
    return [{name: columns[name][i] for name in columns} for i in range(n)]


def _draw(stats: dict[str, Any], spec: dict[str, Any], n: int, rng: np.random.Generator) -> list[Any]:
    if stats.get("type") == "categorical" and stats.get("frequencies"):
        cats = list(stats["frequencies"])
        weights = np.array([stats["frequencies"][c] for c in cats], dtype=float)
        values: list[Any] = [cats[i] for i in rng.choice(len(cats), n, p=weights / weights.sum())]
    elif spec.get("categories"):
        values = [spec["categories"][i] for i in rng.integers(0, len(spec["categories"]), n)]
    else:
        values = _numeric(stats, spec, n, rng)
    rate = float(stats.get("null_rate") or 0.0) if spec.get("nullable") else 0.0
    nulls = rng.random(n) < rate
    return [None if nulls[i] else values[i] for i in range(n)]


def _numeric(stats: dict[str, Any], spec: dict[str, Any], n: int, rng: np.random.Generator) -> list[Any]:
    edges, counts = stats.get("bin_edges"), stats.get("bin_counts")
    lo = _finite(stats.get("min"), spec.get("minimum"), 0.0)
    hi = _finite(stats.get("max"), spec.get("maximum"), lo + 1.0)
    if edges and counts and len(edges) >= 2:
        inner = np.asarray(counts[: len(edges) - 1], dtype=float)
        if inner.sum() > 0:
            k = rng.choice(len(inner), n, p=inner / inner.sum())
            e = np.asarray(edges, dtype=float)
            drawn = e[k] + rng.random(n) * (e[k + 1] - e[k])
        else:
            drawn = rng.uniform(lo, hi, n)
    else:
        drawn = rng.uniform(lo, hi, n)
    if spec.get("dtype") == "integer":
        return [int(round(v)) for v in drawn]
    return [round(float(v), 4) for v in drawn]


def _finite(*candidates: Any) -> float:
    for c in candidates:
        if isinstance(c, int | float) and math.isfinite(c):
            return float(c)
    return 0.0
