"""The phases of a load test: warm-up, then either one constant rate or a stairs search for the
highest rate meeting the SLO, a stress step beyond it (how it fails) and a recovery step (whether it
comes back when the load drops). Every run is bounded by a total duration and a request budget."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from mlship.loadtest.bodies import Bodies
from mlship.loadtest.engine import PhaseRun, Sample, closed_loop, open_loop
from mlship.loadtest.errors import BadInput
from mlship.loadtest.summary import Slo, failure_mode, judge, summarize, timeline
from mlship.loadtest.targets import Target

MAX_RATE = 20_000.0


@dataclass
class Plan:
    """What to run. ``rate`` set: one constant phase; else ``rates`` are the stairs."""

    slo: Slo
    rates: list[float] = field(default_factory=list)
    rate: float | None = None
    step_duration: float = 5.0
    warmup: float = 1.0
    stress_factor: float = 1.5
    stress: bool = True
    max_duration: float = 300.0
    max_requests: int = 200_000
    timeout: float = 5.0
    max_outstanding: int = 1024
    closed_loop: bool = False  # also measure a closed loop at the same rate (constant mode)
    closed_concurrency: int = 1  # its workers (each waits for its answer before the next send)

    def check(self) -> None:
        """Refuse limits that would not bound the run or make no sense."""
        rates = [self.rate] if self.rate is not None else self.rates
        if not rates:
            raise BadInput("give a rate (--rate) or stairs (--rates / --start-rate, --step, --max-rate)")
        if any(r <= 0 or r > MAX_RATE for r in rates):
            raise BadInput(f"rates must be > 0 and <= {MAX_RATE:g} requests/s")
        if sorted(rates) != rates:
            raise BadInput("stairs rates must increase")
        for name, value in (("step duration", self.step_duration), ("timeout", self.timeout),
                            ("max duration", self.max_duration)):
            if not value > 0:
                raise BadInput(f"{name} must be > 0")
        if self.warmup < 0 or self.max_requests < 1 or self.max_outstanding < 1 or self.stress_factor <= 1 \
                or self.closed_concurrency < 1:
            raise BadInput("warm-up >= 0, max requests >= 1, max outstanding >= 1, stress factor > 1 and "
                           "closed-loop workers >= 1 required")
        if self.slo.p99_ms <= 0 or not 0 <= self.slo.error_rate <= 1:
            raise BadInput("the SLO needs p99 > 0 ms and an error rate between 0 and 1")


class _Budget:
    """Time and requests left; a phase that would not fit is cut short, never run over."""

    def __init__(self, plan: Plan):
        self.plan, self.requests, self.stopped = plan, plan.max_requests, ""
        self.started = time.monotonic()

    def fit(self, rate: float, duration: float) -> float:
        """The duration this phase may run (0: stop here); a phase cut short says which limit cut it."""
        used = time.monotonic() - self.started
        room = self.plan.max_duration - used - self.plan.timeout  # an answer may take the timeout after the last send
        length = min(duration, room, self.requests / rate)
        if length < duration:
            self.stopped = "max requests" if self.requests / rate < min(duration, room) else "max duration"
        return length if length > 0.5 or (length > 0 and length == self.requests / rate) else 0.0

    def spend(self, run: PhaseRun) -> None:
        self.requests -= len(run.samples)


async def run_plan(target: Target, bodies: Bodies, plan: Plan) -> dict[str, Any]:
    """Run the plan against a started target; returns the phases (summaries, samples, timeline)."""
    budget = _Budget(plan)
    runs: list[tuple[PhaseRun, dict[str, Any]]] = []

    async def phase(name: str, rate: float, duration: float, *, slo: bool = True) -> dict[str, Any] | None:
        length = budget.fit(rate, duration)
        if length <= 0:
            return None
        run = await open_loop(target, bodies, name, rate, length, max_requests=budget.requests,
                              max_outstanding=plan.max_outstanding)
        budget.spend(run)
        summary = summarize(run, plan.slo if slo else None)
        runs.append((run, summary))
        return summary

    if plan.warmup > 0:
        await phase("warm-up", (plan.rate or plan.rates[0]), plan.warmup, slo=False)
    if plan.rate is not None:
        result = await _constant(phase, plan, target, bodies, runs, budget)
    else:
        result = await _stairs(phase, plan)
        if result.get("recovery"):
            result["recovery"]["verdict"] = recovery_verdict(runs[-1][0], plan.slo)
        if result.get("stress"):
            result["stress"]["failure_mode"] = failure_mode(result["stress"])
    result["stopped_by"] = budget.stopped or None
    result["runs"] = runs
    return result


async def _constant(phase: Any, plan: Plan, target: Target, bodies: Bodies, runs: list, budget: _Budget) -> dict:
    assert plan.rate is not None
    step = await phase(f"constant {plan.rate:g}/s", plan.rate, plan.step_duration)
    out: dict[str, Any] = {"mode": "constant", "steps": [step] if step else [],
                           "knee": step if step and step["meets_slo"] else None}
    if plan.closed_loop and budget.fit(plan.rate, plan.step_duration) > 0:
        closed = await closed_loop(target, bodies, f"closed loop {plan.rate:g}/s", plan.rate,
                                   budget.fit(plan.rate, plan.step_duration), max_requests=budget.requests,
                                   concurrency=plan.closed_concurrency)
        budget.spend(closed)
        summary = summarize(closed, plan.slo)
        runs.append((closed, summary))
        out["closed_loop"] = summary
    return out


async def _stairs(phase: Any, plan: Plan) -> dict[str, Any]:
    steps, knee, failed_at = [], None, None
    for rate in plan.rates:
        step = await phase(f"step {rate:g}/s", rate, plan.step_duration)
        if step is None:
            break
        steps.append(step)
        if not step["meets_slo"]:
            failed_at = rate
            break
        knee = step
    out: dict[str, Any] = {"mode": "stairs", "steps": steps, "knee": knee, "first_failing_rps": failed_at}
    if not plan.stress or not steps:
        return out
    base = knee["target_rps"] if knee else plan.rates[0]
    stress_rate = min(MAX_RATE, max(failed_at or 0.0, (failed_at or base) * plan.stress_factor))
    out["stress"] = await phase(f"stress {stress_rate:g}/s", stress_rate, plan.step_duration)
    recovery_rate = base / 2  # the load clearly drops: half the highest good rate (or of the first step)
    recovery = await phase(f"recovery {recovery_rate:g}/s", recovery_rate, plan.step_duration)
    if recovery is not None:
        out["recovery"] = recovery
    return out


def recovery_verdict(run: PhaseRun, slo: Slo) -> dict[str, Any]:
    """Did the target come back after the stress step? Judged on the second half of the recovery
    phase; ``recovered_after_s``: the first second from which every later second meets the SLO."""
    half = [s for s in run.samples if s.intended >= run.duration / 2]
    cut = half[0].intended if half else run.duration / 2  # the tail's schedule starts at its first request
    tail = PhaseRun(run.name, run.target_rps, run.duration - cut, max(run.elapsed - cut, run.duration - cut), half,
                    run.max_outstanding)
    ok, why = judge(summarize(tail), slo)
    buckets = timeline(run, 0.0)
    after = None
    for i in range(len(buckets)):
        if all(b["errors"] == 0 and (b["p99_ms"] or 0) <= slo.p99_ms for b in buckets[i:]):
            after = buckets[i]["t"]
            break
    return {"recovered": ok, "why_not": why, "recovered_after_s": after}


def phase_samples(runs: list[tuple[PhaseRun, dict[str, Any]]]) -> list[tuple[float, PhaseRun]]:
    """Each run with its start offset in the whole test (phases run back to back)."""
    out, offset = [], 0.0
    for run, _summary in runs:
        out.append((offset, run))
        offset += run.elapsed
    return out


def run_sync(target: Target, bodies: Bodies, plan: Plan) -> dict[str, Any]:
    """Start the target, run the plan in a fresh event loop, close the target."""

    async def main() -> dict[str, Any]:
        await target.start(plan.max_outstanding, plan.timeout)
        try:
            return await run_plan(target, bodies, plan)
        finally:
            await target.close()

    return asyncio.run(main())


__all__ = ["Plan", "Sample", "phase_samples", "recovery_verdict", "run_plan", "run_sync"]
