"""A dated price table and the cost per million inferences it gives.

On-demand list prices, us-east-1, in USD, transcribed from the public price pages below on the date
in ``AS_OF`` (they change: check the pages before relying on a figure; other regions differ).
Lambda: https://aws.amazon.com/lambda/pricing/ (per GB-second of duration and per request).
SageMaker real-time inference: https://aws.amazon.com/sagemaker/pricing/ (per instance-hour).
"""

from __future__ import annotations

from typing import Any

AS_OF = "2026-12-01"
SOURCES = ("https://aws.amazon.com/lambda/pricing/", "https://aws.amazon.com/sagemaker/pricing/")
REGION = "us-east-1"

LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}  # first pricing tier
LAMBDA_REQUEST = 0.20 / 1_000_000

SAGEMAKER_HOURLY = {  # real-time inference hosting instances
    "ml.t2.medium": 0.056, "ml.m5.large": 0.115, "ml.m5.xlarge": 0.23, "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102, "ml.c5.xlarge": 0.204, "ml.c5.2xlarge": 0.408, "ml.g4dn.xlarge": 0.7364,
}


def lambda_cost(memory_mb: int, billed_ms: float, architecture: str = "x86_64") -> dict[str, Any]:
    """Cost of a million invocations of ``billed_ms`` each (Lambda rounds duration up to 1 ms)."""
    if architecture not in LAMBDA_GB_SECOND:
        raise ValueError(f"unknown Lambda architecture {architecture!r} (known: {', '.join(LAMBDA_GB_SECOND)})")
    import math

    seconds = math.ceil(billed_ms) / 1000.0
    per_call = memory_mb / 1024.0 * seconds * LAMBDA_GB_SECOND[architecture] + LAMBDA_REQUEST
    return {"basis": "lambda", "memory_mb": memory_mb, "architecture": architecture, "billed_ms": math.ceil(billed_ms),
            "usd_per_million": round(per_call * 1_000_000, 4), **_dated()}


def instance_cost(instance_type: str, instances: int, rps: float) -> dict[str, Any]:
    """Cost of a million inferences on ``instances`` hosts kept busy at ``rps`` (the SLO-meeting rate)."""
    if instance_type not in SAGEMAKER_HOURLY:
        raise ValueError(f"no price for {instance_type!r} in the table of {AS_OF} "
                         f"(known: {', '.join(sorted(SAGEMAKER_HOURLY))})")
    hourly = SAGEMAKER_HOURLY[instance_type] * instances
    usd = hourly / (rps * 3600.0) * 1_000_000 if rps > 0 else None
    return {"basis": "instance", "instance_type": instance_type, "instances": instances, "usd_per_hour": hourly,
            "at_rps": rps, "usd_per_million": None if usd is None else round(usd, 4), **_dated()}


def _dated() -> dict[str, Any]:
    return {"prices_as_of": AS_OF, "region": REGION, "sources": list(SOURCES)}
