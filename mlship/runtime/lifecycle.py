"""Load a model once, remember a failure, retry a transient one, hand inference records to a sink.

The one model lifecycle of the prediction Lambda and of each ``mlship serve`` worker:

* :meth:`ModelLifecycle.load` loads in the calling thread (the Lambda: during init, or on the
  first request); :meth:`~ModelLifecycle.start` loads in a background thread and
  :meth:`~ModelLifecycle.wait` waits for it (``serve``: ``/ping`` answers 503 "loading" meanwhile).
* A failure is remembered and raised again at once, so an endpoint with a bad bundle answers 503
  without re-reading it on every request. Only a :class:`~mlship.errors.TransientDownloadError`
  (throttling, a 5xx answer, a lost connection) is retried, at most every ``retry_seconds``; a
  bundle that is missing, tampered with or fails its golden examples stays failed.
* Whatever else the loader raises becomes a :class:`~mlship.errors.BundleError` too (``unexpected``
  words it), so a load never crashes the process.
* :meth:`~ModelLifecycle.record` and :meth:`~ModelLifecycle.flush` hand inference records to the
  optional sink; they log and never raise (records never fail a prediction).

Stdlib only: the loader and the sink bring their own dependencies (onnxruntime, boto3).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from mlship.errors import BundleError, TransientDownloadError

DEFAULT_RETRY_SECONDS = 60.0

ModelT = TypeVar("ModelT")
_default_log = logging.getLogger("mlship.runtime.lifecycle")


class RecordSink(Protocol):
    """Where inference records go (``mlship.aws.records.RecordWriter`` is one)."""

    def add(self, records: list[dict[str, Any]]) -> None:
        """Buffer records."""

    def flush(self) -> Any:
        """Write what is buffered."""


@dataclass(frozen=True)
class Health(Generic[ModelT]):
    """What a health check answers: ``status`` is ``ok``, ``loading`` or ``failed``."""

    status: str
    model: ModelT | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def unexpected_failure(_exc: Exception) -> BundleError:
    """What callers see of a loader's unexpected exception: no exception text (it is in the log)."""
    return BundleError("model failed to load: an unexpected error (details in the log)")


class ModelLifecycle(Generic[ModelT]):
    """One model's load state and record sink (thread-safe); see the module docstring.

    ``log`` is a :class:`logging.Logger` or anything with its methods (Powertools' ``Logger``);
    ``on_loaded(model, seconds)`` reports a success (default: an info line); ``name`` says what
    is loaded, for the log.
    """

    def __init__(self, loader: Callable[[], ModelT], *, sink: RecordSink | None = None,
                 retry_seconds: float = DEFAULT_RETRY_SECONDS, name: str = "", log: Any = None,
                 on_loaded: Callable[[ModelT, float], None] | None = None,
                 unexpected: Callable[[Exception], BundleError] = unexpected_failure,
                 clock: Callable[[], float] = time.monotonic):
        self.sink, self.retry_seconds, self.name = sink, retry_seconds, name
        self._loader, self._unexpected, self._clock = loader, unexpected, clock
        self._log = log if log is not None else _default_log
        self._on_loaded = on_loaded or self._log_loaded
        self._model: ModelT | None = None
        self._error: BundleError | None = None
        self._failed_at = 0.0
        self._loading = False  # a load is under way (in this thread or the background one)
        self._background = False  # start() was used: health checks start a due retry
        self._changed = threading.Condition()  # guards the fields above, held only briefly
        self._one_load = threading.Lock()  # held for a whole load: one at a time

    # ------------------------------------------------------------------ loading
    @property
    def recording(self) -> bool:
        """Whether predictions should be turned into records (a sink is configured)."""
        return self.sink is not None

    def load(self) -> ModelT:
        """The model, loading it now if needed; raises the remembered :class:`BundleError`."""
        with self._one_load:
            with self._changed:
                if self._model is not None:
                    return self._model
                if self._error is not None and not self._retry_due():
                    raise self._error
                self._loading = True
            return self._attempt()

    def start(self) -> ModelLifecycle[ModelT]:
        """Load in a background thread, unless loaded, loading, or failed with no retry due."""
        with self._changed:
            self._background = True
            if self._loading or self._model is not None or (self._error is not None and not self._retry_due()):
                return self
            self._loading = True
        threading.Thread(target=self._load_in_background, name="mlship-model-load", daemon=True).start()
        return self

    def wait(self, timeout: float) -> ModelT:
        """The model once the background load is done; :class:`BundleError` when it is still
        loading after ``timeout`` seconds, or failed."""
        self.start()  # nothing unless a retry is due
        with self._changed:
            if not self._changed.wait_for(lambda: not self._loading, timeout):
                raise BundleError("the model is still loading")
            if self._model is not None:
                return self._model
            raise self._error or BundleError("the model is not loaded")

    def health(self) -> Health[ModelT]:
        """The state a health check reports (it starts a due retry when loading in the background)."""
        if self._background:
            self.start()
        with self._changed:
            if self._model is not None:
                return Health("ok", self._model)
            if self._loading or self._error is None:
                return Health("loading")
            return Health("failed", reason=str(self._error))

    def _retry_due(self) -> bool:
        return (isinstance(self._error, TransientDownloadError)
                and self._clock() - self._failed_at >= self.retry_seconds)

    def _load_in_background(self) -> None:
        with self._one_load, contextlib.suppress(BundleError):  # remembered: wait() and health() answer it
            self._attempt()

    def _attempt(self) -> ModelT:
        """Run the loader once (``_loading`` is set); remember and report the outcome."""
        if self._error is not None:
            self._log.info("retrying the model load after a transient failure: %s", self._error)
        started = time.perf_counter()
        try:
            model = self._loader()
        except BundleError as exc:
            self._failed(exc)
            raise
        except Exception as exc:  # noqa: BLE001 - any load failure must become a 503, not a crash
            self._log.exception("model failed to load%s: unexpected %s", self._from(), type(exc).__name__)
            error = self._unexpected(exc)
            self._failed(error, logged=True)
            raise error from None
        with self._changed:
            self._model, self._error, self._loading = model, None, False
            self._changed.notify_all()
        self._on_loaded(model, time.perf_counter() - started)
        return model

    def _failed(self, error: BundleError, logged: bool = False) -> None:
        if not logged:
            self._log.error("model failed to load%s: %s", self._from(), error)
        with self._changed:
            self._error, self._failed_at, self._loading = error, self._clock(), False
            self._changed.notify_all()

    def _from(self) -> str:
        return f" from {self.name}" if self.name else ""

    def _log_loaded(self, model: ModelT, seconds: float) -> None:  # noqa: ARG002 - the hook's signature
        self._log.info("model loaded%s in %.2fs", self._from(), seconds)

    # ------------------------------------------------------------------ records
    def record(self, records: list[dict[str, Any]]) -> None:
        """Hand records to the sink; a failure is logged, never raised."""
        if self.sink is None or not records:
            return
        try:
            self.sink.add(records)
        except Exception as exc:  # noqa: BLE001 - records never fail a prediction
            self._log.warning("could not buffer inference records: %s", exc)

    def flush(self) -> None:
        """Write the sink's buffered records; a failure is logged, never raised."""
        if self.sink is None or not _has_buffered(self.sink):
            return
        try:
            self.sink.flush()
        except Exception as exc:  # noqa: BLE001 - records never fail serving
            self._log.warning("could not write inference records: %s", exc)


def _has_buffered(sink: RecordSink) -> bool:
    size = getattr(sink, "__len__", None)
    return size is None or size() > 0
