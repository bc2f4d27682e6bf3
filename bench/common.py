"""Timing helpers shared by the benchmarks: medians and percentiles, results as JSON."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    """Seconds per call for ``n`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99),
            "min": min(values), "n": len(values)}


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "when": datetime.now(UTC).isoformat(timespec="seconds")}


def write_results(area: str, table: list[dict[str, Any]], raw: dict[str, Any]) -> Path:
    """Write ``bench/results/<area>.json`` with the README table rows and the raw numbers."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{area}.json"
    path.write_text(json.dumps({"area": area, "machine": machine(), "table": table, "raw": raw}, indent=2) + "\n")
    return path
