"""The prediction Lambda's shadow model: a challenger scored on a copy of each captured request.

``SHADOW_MODEL_URI`` (pinned to one version: a bundle path or ``s3://`` URI, or
``mlship://NAME/VERSION``) names the shadow. After the champion has answered, the shadow scores
the same decoded request in one worker thread, and the handler waits for it at most
``SHADOW_BUDGET_MS``: the answer is never delayed by more than the budget and never changed by
the shadow. What the shadow answered (or why it did not) goes into the request's capture line
(:meth:`mlship.runtime.records.ExchangeHeader.line`'s ``shadow`` part), with its model version.

* A shadow still busy with an earlier request (it ran over its budget, and Lambda froze the
  process with it in flight) is **skipped** for this one: shadows never queue up behind the
  champion.
* Only captured requests are shadowed (``CAPTURE_SAMPLING_PERCENTAGE`` bounds the extra cost):
  an uncaptured shadow answer would be computed for nothing.
* A request too large for one log event (about 250 KB) is captured row-wise (``mlship/1``),
  without the shadow's part.
* Every failure is an error kind in the capture line and a ``ShadowErrors`` metric, never a
  failed request: ``timeout``, ``skipped``, ``validation`` (the shadow's schema refuses what the
  champion took), ``model_error`` (non-finite outputs), ``model_unavailable`` (it cannot load).

Stdlib only here; the shadow's predictor is the same :class:`~mlship.runtime.predictor.Predictor`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from mlship.errors import BundleError, ModelOutputError, ValidationError
from mlship.runtime import protocol
from mlship.runtime.lifecycle import ModelLifecycle
from mlship.runtime.records import shadow_part


@dataclass
class ShadowOutcome:
    """What the shadow made of one request."""

    model_name: str | None
    model_version: str | None
    response_text: str | None  # the shadow's JSON answer, None when it has none
    error: str | None  # timeout | skipped | validation | model_error | model_unavailable | internal
    latency_ms: float
    primary_latency_ms: float | None = None  # the champion's, from the event to its answer

    def capture_text(self) -> str:
        """The ``shadow`` part of the capture line."""
        return shadow_part(self.model_name, self.model_version, self.response_text, self.error, self.latency_ms,
                           self.primary_latency_ms)


@dataclass
class _Scored:
    model_name: str
    model_version: str
    response_text: str | None
    error: str | None
    seconds: float


class ShadowScorer:
    """One shadow model, scored in a single worker thread with a wait budget."""

    def __init__(self, uri: str, budget_ms: float, load: Callable[[str], Any]):
        self.uri, self.budget_s = uri, budget_ms / 1000.0
        self._lifecycle: ModelLifecycle[Any] = ModelLifecycle(lambda: load(uri), name=uri)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlship-shadow")
        self._in_flight: Future[_Scored] | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the shadow now (the init phase); a failure is remembered, never raised: each
        shadowed request then reports ``model_unavailable``."""
        with contextlib.suppress(BundleError):
            self._lifecycle.load()

    def score(self, payload: Any, request_id: str) -> ShadowOutcome:
        """Score ``payload`` (the decoded request) within the budget; never raises."""
        started = time.perf_counter()
        with self._lock:
            if self._in_flight is not None and not self._in_flight.done():
                return ShadowOutcome(None, None, None, "skipped", 0.0)
            future = self._in_flight = self._worker.submit(self._predict, payload, request_id)
        try:
            scored = future.result(timeout=self.budget_s)
        except FutureTimeout:
            waited = (time.perf_counter() - started) * 1000.0
            return ShadowOutcome(None, None, None, "timeout", round(waited, 3))
        return ShadowOutcome(scored.model_name, scored.model_version, scored.response_text, scored.error,
                             round(scored.seconds * 1000.0, 3))

    def _predict(self, payload: Any, request_id: str) -> _Scored:
        started = time.perf_counter()
        try:
            predictor = self._lifecycle.load()
        except BundleError:
            return _Scored(None, None, None, "model_unavailable", time.perf_counter() - started)  # type: ignore[arg-type]
        name, version = predictor.model_name, predictor.model_version
        try:
            prediction = predictor.predict(payload)
            text = protocol.dumps(protocol.answer(prediction, request_id))
            return _Scored(name, version, text, None, time.perf_counter() - started)
        except ValidationError:
            error = "validation"
        except ModelOutputError:
            error = "model_error"
        except Exception:  # noqa: BLE001 - a shadow never fails the request
            error = "internal"
        return _Scored(name, version, None, error, time.perf_counter() - started)

    def close(self) -> None:
        """Let the worker thread end (a scoring in flight finishes; nothing new is taken)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        """The shadow's identity for the health answer."""
        health = self._lifecycle.health()
        model = health.model
        return {"uri": self.uri, "status": health.status, "budget_ms": self.budget_s * 1000.0,
                "model": None if model is None else {"name": model.model_name, "version": model.model_version}}
