"""The SageMaker inference contract as a WSGI app (one instance per server worker).

* ``GET /ping``: 200 once the bundle is loaded, verified and its golden examples pass; 503
  (with the reason) while loading or after a failed load.
* ``POST /invocations``: ``application/json`` or ``text/csv`` (see :mod:`mlship.runtime.protocol`);
  415 for other media types, 406 when ``Accept`` allows neither, 413 over the size limit, 411
  for a body with neither ``Content-Length`` nor chunked framing, 400 with field errors or for a
  body that cannot be read (bad chunked framing), 405 for other methods. The request id is
  SageMaker's ``X-Amzn-SageMaker-Inference-Id`` header when given.
* ``GET /execution-parameters``: batch-transform hints.

The model loads in a background thread so ``/ping`` answers 503 (not "connection refused")
while it loads; invocations that arrive meanwhile wait for it (up to ``load_wait`` seconds). The
load, its remembered failure (a transient download is retried, at most every 60 s) and the
record sink are :class:`mlship.runtime.lifecycle.ModelLifecycle`'s, as in the prediction Lambda.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from http import HTTPStatus
from typing import Any

from mlship.runtime import protocol
from mlship.runtime.lifecycle import DEFAULT_RETRY_SECONDS, ModelLifecycle
from mlship.serving.settings import ServeSettings

log = logging.getLogger("mlship.serving")


class RequestTimeout(protocol.RequestError):
    """The body did not arrive in time (the server's read timeout passed while reading it)."""

    status, kind = 408, "request_timeout"


class LengthRequired(protocol.RequestError):
    """A body without ``Content-Length`` or chunked framing (read to EOF, it would hold a thread)."""

    status, kind = 411, "length_required"


def status_line(status: int) -> str:
    """``'406 Not Acceptable'``: every status with its reason phrase (``http.HTTPStatus``)."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:  # not a registered status: the class's name
        return f"{status} {HTTPStatus(status // 100 * 100).phrase}"


def load_predictor(model_uri: str, *, threads: int | None = None, public_key: Any = None) -> Any:
    """Load, verify and golden-check the bundle (the lifecycle's loader)."""
    from mlship.runtime.predictor import Predictor

    return Predictor.load(model_uri, public_key=public_key, threads=threads)


def model_lifecycle(model_uri: str, *, threads: int | None = None, public_key: Any = None,
                    sink: Any = None, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> ModelLifecycle[Any]:
    """The lifecycle of one worker's predictor (not started)."""

    def loaded(predictor: Any, seconds: float) -> None:
        log.info("model %s:%s loaded from %s in %.2fs (golden examples pass)", predictor.model_name,
                 predictor.model_version, model_uri, seconds)

    loader = partial(load_predictor, model_uri, threads=threads, public_key=public_key)
    return ModelLifecycle(loader, sink=sink, retry_seconds=retry_seconds, name=model_uri, log=log, on_loaded=loaded)


class InvocationsApp:
    """WSGI callable implementing ``/ping`` and ``/invocations``."""

    def __init__(self, lifecycle: ModelLifecycle[Any], *, max_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES,
                 load_wait: float = 60.0, source: str = "sagemaker"):
        self.lifecycle, self.max_bytes, self.load_wait, self.source = lifecycle, max_bytes, load_wait, source

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        request_id = environ.get("HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID") or uuid.uuid4().hex
        try:
            if path == "/ping":
                return self._ping(method, start_response)
            if path == "/invocations":
                if method != "POST":
                    raise protocol.MethodNotAllowed(f"method {method} is not allowed on /invocations: use POST")
                return self._invoke(environ, request_id, start_response)
            if path == "/execution-parameters" and method == "GET":
                return _respond(start_response, 200, {"MaxConcurrentTransforms": 1, "BatchStrategy": "MULTI_RECORD",
                                                   "MaxPayloadInMB": max(1, self.max_bytes // (1024 * 1024))})
            return _respond(start_response, 404, {"error": f"no route {method} {path}", "request_id": request_id})
        except Exception as exc:  # noqa: BLE001 - statuses, never stack traces
            status, body = protocol.error_answer(exc, request_id)
            if status >= 500:
                log.error("request %s failed (%s): %s", request_id, protocol.error_kind(exc), exc)
            return _respond(start_response, status, body)

    def _ping(self, method: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if method not in ("GET", "HEAD"):
            raise protocol.MethodNotAllowed(f"method {method} is not allowed on /ping: use GET")
        health = self.lifecycle.health()
        if health.status == "loading":
            return _respond(start_response, 503, {"status": "loading"})
        if not health.ok:
            return _respond(start_response, 503, {"status": "failed", "reason": health.reason})
        return _respond(start_response, 200, {"status": "ok", "model": health.model.describe()})

    def _invoke(self, environ: dict[str, Any], request_id: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        media = protocol.response_type(environ.get("HTTP_ACCEPT"))  # 406 before any work
        explain = protocol.explain_request(environ.get("QUERY_STRING"))
        protocol.check_explainable_media(media, explain)
        body = _read_body(environ, self.max_bytes)
        predictor = self.lifecycle.wait(self.load_wait)
        payload = protocol.decode(body, environ.get("CONTENT_TYPE"), max_bytes=self.max_bytes)
        prediction, columns = predictor.predict_with_inputs(payload)
        if self.lifecycle.recording:
            self.lifecycle.record(predictor.inference_records(request_id, prediction, columns, source=self.source,
                                                              data=payload))
        answer = protocol.answer(prediction, request_id)
        if explain is not None:
            answer = protocol.explained(answer, predictor, columns, payload, explain)
        return _respond(start_response, 200, answer, media=media)


def _read_body(environ: dict[str, Any], max_bytes: int) -> bytes:
    try:
        return _read_limited(environ, max_bytes)
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    except OSError:  # the server's body reader: a bad chunk size or terminator, or a body cut short
        raise protocol.RequestError("the request body could not be read: its chunked framing is invalid "
                                    "or it ended before its announced length") from None


def _read_limited(environ: dict[str, Any], max_bytes: int) -> bytes:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    if length:
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n > max_bytes:
            raise protocol.PayloadTooLarge(f"request body is {n} bytes, over the {max_bytes}-byte limit")
        return stream.read(n) if n >= 0 else stream.read(max_bytes + 1)
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise LengthRequired("send the body with a Content-Length or Transfer-Encoding: chunked")
    return stream.read(max_bytes + 1)  # chunked: read one byte past the limit to detect it


def _respond(start_response: Callable[..., Any], status: int, body: dict[str, Any],
          media: str = protocol.JSON) -> list[bytes]:
    """Send ``body`` as JSON (or as CSV rows for a prediction when ``media`` is CSV)."""
    text, content_type = protocol.render(body, media)
    data = text.encode("utf-8")
    headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    if "request_id" in body:
        headers.append(("X-Request-Id", str(body["request_id"])))
    if status == 405:
        headers.append(("Allow", "POST" if "invocations" in str(body.get("error", "")) else "GET"))
    start_response(status_line(status), headers)
    return [data]


def records_writer(settings: ServeSettings) -> Any:
    """A RecordWriter when ``RECORDS_BUCKET`` is set (None otherwise)."""
    if not settings.records_bucket:
        return None
    from mlship.aws.records import RecordWriter

    return RecordWriter(settings.records_bucket, settings.records_prefix)


def flush_periodically(lifecycle: ModelLifecycle[Any], interval: float) -> None:
    """Write the buffered records every ``interval`` seconds, in a daemon thread."""

    def loop() -> None:
        while True:
            time.sleep(interval)
            lifecycle.flush()

    threading.Thread(target=loop, name="mlship-records-flush", daemon=True).start()


def create_app(model_uri: str, *, threads: int | None = None, max_bytes: int = protocol.DEFAULT_MAX_BODY_BYTES,
               load_wait: float = 60.0, public_key: Any = None,
               settings: ServeSettings | None = None) -> InvocationsApp:
    """Build the app and start loading the model in the background (``settings``: records and the
    public key; default read from the environment)."""
    settings = settings or ServeSettings.from_env()
    lifecycle = model_lifecycle(model_uri, threads=threads, public_key=public_key or settings.public_key_source(),
                                sink=records_writer(settings))
    if lifecycle.recording:
        flush_periodically(lifecycle, settings.records_flush_seconds)
    return InvocationsApp(lifecycle.start(), max_bytes=max_bytes, load_wait=load_wait)
