"""Shadow variants on the plane: a copy of each request sent to the shadow, off the answer path.

SageMaker answers every ``InvokeEndpoint`` from a production variant and replicates a share of the
requests to the configuration's ``ShadowProductionVariants``; the shadow's answers are captured,
never returned. :class:`ShadowMirror` does the replication: a bounded queue and a few worker
threads, so the client's answer and latency never depend on the shadow. A full queue drops the
copy and counts it (``dropped``) instead of blocking the request.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("mlship.local.plane.shadow")


@dataclass(frozen=True)
class ShadowCopy:
    """One request to replay on a shadow variant."""

    endpoint: str
    fleet: Any  # the Fleet whose shadow gets the copy (held with acquire() until the copy is done)
    variant: Any  # the shadow FleetVariant
    body: bytes
    headers: dict[str, str]
    event_id: str
    inference_id: str | None
    time: float
    capture: bool  # the production line of this request was sampled: capture the shadow's too


class ShadowMirror:
    """A bounded background queue of shadow copies, replayed by ``workers`` threads."""

    def __init__(self, replay: Callable[[ShadowCopy], None], *, workers: int = 8, capacity: int = 1000):
        self.replay, self.workers = replay, workers
        self.submitted = self.dropped = self.failed = 0
        self._queue: queue.Queue[ShadowCopy | None] = queue.Queue(capacity)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, copy: ShadowCopy) -> bool:
        """Queue ``copy`` without waiting; False (and counted as dropped) when the queue is full."""
        self._start()
        copy.fleet.acquire()  # the fleet's drain waits for queued copies too
        try:
            self._queue.put_nowait(copy)
        except queue.Full:
            copy.fleet.release()
            with self._lock:
                self.dropped += 1
            return False
        with self._lock:
            self.submitted += 1
        return True

    def _start(self) -> None:
        with self._lock:
            if self._threads:
                return
            for index in range(self.workers):
                thread = threading.Thread(target=self._work, name=f"shadow-{index}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            copy = self._queue.get()
            try:
                if copy is None:
                    return
                self.replay(copy)
            except Exception:  # noqa: BLE001 - a shadow failure is counted and logged, never raised
                with self._lock:
                    self.failed += 1
                log.exception("shadow copy to %s/%s failed", copy.endpoint if copy else "?",
                              copy.variant.name if copy else "?")
            finally:
                if copy is not None:
                    copy.fleet.release()
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every queued copy has been replayed."""
        self._queue.join()

    def close(self, timeout: float = 10.0) -> None:
        """Drop the copies still queued (a stopping plane waits for no shadow), then stop the workers."""
        with self._lock:
            threads, self._threads = self._threads, []
        while True:
            try:
                copy = self._queue.get_nowait()
            except queue.Empty:
                break
            if copy is not None:
                copy.fleet.release()
                self.dropped += 1
            self._queue.task_done()
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join(timeout)
