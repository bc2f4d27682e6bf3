"""``mlship loadtest`` as a call: parse the target, build the bodies, run the plan, cost it, report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlship.loadtest import prices
from mlship.loadtest.bodies import Bodies
from mlship.loadtest.errors import BadInput
from mlship.loadtest.plan import Plan, run_sync
from mlship.loadtest.report import build_report, write_report
from mlship.loadtest.targets import LambdaTarget, Target, parse_target


@dataclass
class CostBasis:
    """What the target costs: a Lambda memory size, or instances of a type (optional)."""

    memory_mb: int | None = None
    architecture: str = "x86_64"
    instance_type: str | None = None
    instances: int = 1

    def check(self) -> None:
        if self.instance_type is not None and self.instance_type not in prices.SAGEMAKER_HOURLY:
            raise BadInput(f"no price for instance type {self.instance_type!r} in the table of {prices.AS_OF} "
                           f"(known: {', '.join(sorted(prices.SAGEMAKER_HOURLY))})")
        if self.architecture not in prices.LAMBDA_GB_SECOND:
            raise BadInput(f"unknown architecture {self.architecture!r}")
        if self.instances < 1 or (self.memory_mb is not None and not 128 <= self.memory_mb <= 10240):
            raise BadInput("instances must be >= 1 and Lambda memory between 128 and 10240 MB")


@dataclass
class Outcome:
    """A finished load test: the report, its files, and whether the SLO was met."""

    report: dict[str, Any]
    paths: tuple[Path, Path]
    runs: list[Any]

    @property
    def met_slo(self) -> bool:
        return self.report["knee"] is not None


def loadtest(target_text: str, bodies: Bodies, plan: Plan, out_dir: str | Path, *,
             cost: CostBasis | None = None, model: dict[str, Any] | None = None) -> Outcome:
    """Run a bounded load test against ``target_text`` and write ``loadtest.json`` / ``.html``."""
    target = parse_target(target_text)
    plan.check()
    cost = cost or CostBasis()
    cost.check()
    result = run_sync(target, bodies, plan)
    answered = sum(s["requests"] - s["dropped"] - s["errors"].get("error:connect", 0) for _r, s in result["runs"])
    if answered == 0:
        from mlship.loadtest.errors import LoadTestError

        raise LoadTestError(f"{target.label} answered no request (cannot connect): nothing to report")
    report = build_report(result, plan, target=target.label, model=model, cost=_cost(target, result, cost),
                          bodies={"source": bodies.source, "count": len(bodies.items),
                                  "content_type": bodies.content_type})
    if hasattr(target, "retries"):
        report["sdk_retries"] = target.retries
    paths = write_report(report, result["runs"], out_dir)
    return Outcome(report, paths, result["runs"])


def _cost(target: Target, result: dict[str, Any], basis: CostBasis) -> dict[str, Any] | None:
    """Cost per million at the SLO-meeting rate: Lambda by memory and duration, else by instance-hour."""
    point = result.get("knee")
    if point is None:
        return None
    if isinstance(target, LambdaTarget):
        memory = basis.memory_mb or target.memory_mb()
        if memory is None:
            return None
        # the client-side p50 includes the network and the invoke API: an upper bound on billed duration
        out = prices.lambda_cost(memory, point["service_ms"]["p50"] or 1.0, basis.architecture)
        out["billed_ms_basis"] = "client-side p50 (upper bound of the billed duration)"
        return out
    if basis.instance_type:
        return prices.instance_cost(basis.instance_type, basis.instances, point["achieved_rps"])
    return None
