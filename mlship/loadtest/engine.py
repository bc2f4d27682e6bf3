"""The schedulers: open-model arrivals (the load test) and a closed loop (for comparison only).

Open model: request ``i`` of a phase is *intended* at ``start + i / rate`` and sent then whatever
is still outstanding; its latency runs from the intended time to the end of the response. A stall
in the target therefore shows as the queue it builds (every request scheduled during it waits), the
way a user population sees it: the wrk2 / Vegeta correction for coordinated omission. Requests
still outstanding at the limit are not sent and count as ``dropped`` (the client protects itself
and the report says so).

Closed loop: ``concurrency`` workers each send, wait for the answer, then send again (paced to the
same rate); latency runs from the *actual* send. A stalled target just receives fewer requests, so
the stall hides in the tail: this is what closed-loop tools report, kept to show the difference.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from mlship.loadtest.bodies import Bodies
from mlship.loadtest.targets import Target


@dataclass(frozen=True)
class Sample:
    """One request: offsets in seconds from the phase start."""

    intended: float  # when the schedule said to send it
    sent: float      # when it was sent (later than intended if the client fell behind)
    done: float      # when the answer (or the failure) ended
    outcome: str     # ok | status:NNN | timeout | error:KIND | dropped

    @property
    def latency(self) -> float:
        """Seconds from the intended send time to the end of the answer (what a user waits)."""
        return self.done - self.intended

    @property
    def service(self) -> float:
        """Seconds from the actual send (what a closed-loop tool reports)."""
        return self.done - self.sent


@dataclass(frozen=True)
class PhaseRun:
    """The samples of one phase and how long it ran."""

    name: str
    target_rps: float
    duration: float  # planned seconds of arrivals
    elapsed: float   # seconds until the last answer ended (at least ``duration``)
    samples: list[Sample]
    max_outstanding: int
    mode: str = "open"


async def open_loop(target: Target, bodies: Bodies, name: str, rate: float, duration: float, *,
                    max_requests: int, max_outstanding: int) -> PhaseRun:
    """Send ``min(rate * duration, max_requests)`` requests on the open-model schedule."""
    loop = asyncio.get_running_loop()
    count = max(1, min(int(round(rate * duration)), max_requests))
    start = loop.time() + 0.01
    samples: list[Sample] = []
    tasks: set[asyncio.Task[None]] = set()
    peak = 0

    async def one(i: int, intended: float) -> None:
        sent = loop.time() - start
        outcome = await target.send(bodies[i], bodies.content_type)
        samples.append(Sample(intended, sent, loop.time() - start, outcome))

    for i in range(count):
        intended = i / rate
        delay = start + intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_outstanding:
            now = loop.time() - start
            samples.append(Sample(intended, now, now, "dropped"))
            continue
        task = asyncio.create_task(one(i, intended))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        peak = max(peak, len(tasks))
    if tasks:
        await asyncio.gather(*tasks)
    elapsed = max(duration, loop.time() - start)
    samples.sort(key=lambda s: s.intended)
    return PhaseRun(name, rate, duration, elapsed, samples, peak)


async def closed_loop(target: Target, bodies: Bodies, name: str, rate: float, duration: float, *,
                      concurrency: int = 1, max_requests: int = 100_000) -> PhaseRun:
    """``concurrency`` workers, each waiting for its answer before the next send (paced to ``rate``);
    a worker that falls behind its pace skips the missed slots, as closed-loop tools do."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    samples: list[Sample] = []
    interval = concurrency / rate
    budget = [min(max_requests, int(round(rate * duration)))]

    async def worker(w: int) -> None:
        slot = w * interval / concurrency
        while slot < duration and budget[0] > 0:
            budget[0] -= 1
            delay = start + slot - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time() - start
            outcome = await target.send(bodies[len(samples)], bodies.content_type)
            done = loop.time() - start
            samples.append(Sample(sent, sent, done, outcome))
            slot = max(slot + interval, done)  # coordinated omission: missed slots are never sent

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    samples.sort(key=lambda s: s.intended)
    return PhaseRun(name, rate, duration, max(duration, loop.time() - start), samples, concurrency, "closed")


def wall_clock() -> float:
    """Seconds since the epoch (report timestamps)."""
    return time.time()
