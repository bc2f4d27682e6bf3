"""Prediction Lambda: API Gateway REST (v1), HTTP API (v2), Function URL and direct invocation.

A thin adapter: it turns the event into ``(method, body bytes, content type, request id)``,
hands the body to :mod:`mlship.runtime.protocol` (decoding, status mapping) and the shared
:class:`~mlship.runtime.predictor.Predictor` (validation, prediction), and turns the answer back into
the event's response shape. Powertools provides structured logs and, with ``MLSHIP_TRACING=1``,
X-Ray subsegments (off, the X-Ray SDK is never imported: it is most of a
cold start, and Lambda's active tracing still records the function's segment). EMF metrics
(:mod:`emf`, one pre-rendered line per request): ``Latency``, ``Rows``, ``CaptureErrors``, and
``Errors`` by ``ErrorKind``; dimensions ``Model`` and ``Version``.

Inference capture (:mod:`capture`): by default one JSON line per captured request on stdout, which
the log subscription and Firehose deliver to S3, so answering makes no network call;
``CAPTURE_MODE=s3`` is the old per-request PutObject, ``off`` none; ``CAPTURE_SAMPLING_PERCENTAGE``
samples. Each record names the function version that answered (``variant``) and the alias invoked.

Configuration: the environment, read only through :class:`settings.PredictSettings` (``MODEL_URI``,
``PREDICT_BACKEND``, ``SAGEMAKER_ENDPOINT_NAME``, ``CAPTURE_MODE``, ``RECORDS_BUCKET``/``RECORDS_PREFIX``,
``MLSHIP_PUBLIC_KEY``, ``MAX_BODY_BYTES``, ``ORT_THREADS``, ``MLSHIP_EAGER_LOAD``, ...). A missing
or invalid value is logged and answered 503 naming the variable, as a bundle that cannot load is.
The model's load, its remembered failure and the retry of a transient download are
:class:`mlship.runtime.lifecycle.ModelLifecycle`'s.

Direct invocation payloads: the JSON request itself (``{"instances": [...]}``, a record or a
list of records), or an envelope ``{"body": "...", "contentType": "text/csv",
"isBase64Encoded": false}``; the answer is the response document with a ``statusCode`` key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import importlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from mlship.errors import BundleError, FieldError, ValidationError
from mlship.runtime import protocol
from mlship.runtime.hashing import json_type
from mlship.runtime.lifecycle import ModelLifecycle
from mlship.runtime.settings import SettingsError

if __package__:  # the repository: functions.predict.handler
    from .capture import Capture, CaptureFailed, Exchange, invoked_alias, open_capture
    from .emf import EmfWriter
    from .settings import InitSettings, PredictSettings
else:  # the Lambda asset: functions/predict/*.py sit flat at its root
    from capture import Capture, CaptureFailed, Exchange, invoked_alias, open_capture  # type: ignore[no-redef]
    from emf import EmfWriter  # type: ignore[no-redef]
    from settings import InitSettings, PredictSettings  # type: ignore[no-redef]

if TYPE_CHECKING:
    from functions.predict.shadow import ShadowOutcome, ShadowScorer

INIT = InitSettings.from_env()
NAMESPACE = INIT.namespace
logger = Logger(service=INIT.service)
metrics = EmfWriter(NAMESPACE)


def _tracer() -> Any:
    """Powertools' Tracer when ``MLSHIP_TRACING`` is on (its import loads the X-Ray SDK and botocore)."""
    if not INIT.tracing:
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=INIT.service)


tracer = _tracer()

LOAD_RETRY_SECONDS = 60.0  # a failed transient download is retried at most this often
HEALTH_PATHS = ("/health", "/ping")


@dataclass
class Request:
    """What the handler needs from any event shape."""

    kind: str  # rest-v1 | http-v2 | function-url | direct
    method: str
    path: str
    body: bytes
    content_type: str | None
    request_id: str
    accept: str | None = None
    headers: dict[str, str] | None = None  # lower-cased names (HTTP events)
    query: str | dict[str, Any] | None = None  # the raw query string (v2) or its parameters (v1)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    rows: int = 0
    error_kind: str | None = None
    # set by a backend whose answer is to be captured: the row-wise records, built only if needed
    records: Callable[[], list[dict[str, Any]]] | None = None
    payload: Any = None  # the decoded request, for the shadow (captured answers only)
    media: str = protocol.JSON  # the negotiated answer type (errors are always JSON)


# ---------------------------------------------------------------------------- backends
class OnnxBackend:
    """In-process prediction with the shared predictor (the default)."""

    name = "onnx"

    def __init__(self, uri: str, *, threads: int | None = None, public_key: str | bytes | None = None):
        from mlship.runtime.predictor import Predictor

        self.predictor = Predictor.load(uri, threads=threads, public_key=public_key)
        self.model_name, self.model_version = self.predictor.model_name, self.predictor.model_version

    def invoke(self, req: Request, max_bytes: int, record: bool,
               explain: protocol.ExplainRequest | None = None) -> Answer:
        payload = protocol.decode(req.body, req.content_type, max_bytes=max_bytes)
        prediction, columns = self.predictor.predict_with_inputs(payload)
        body = protocol.answer(prediction, req.request_id)
        if explain is not None:
            body = protocol.explained(body, self.predictor, columns, payload, explain)
        answer = Answer(200, body, rows=len(prediction))
        if record:
            answer.records = partial(self.predictor.inference_records, req.request_id, prediction, columns,
                                     source="lambda", data=payload)
            answer.payload = payload
        return answer

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, **self.predictor.describe()}


def _unavailable(req: Request, reason: str) -> Answer:
    body = {"error": "endpoint unavailable", "reason": reason, "kind": "endpoint_unavailable",
            "request_id": req.request_id}
    return Answer(503, body, error_kind="endpoint_unavailable")


class SageMakerBackend:
    """Proxy to a SageMaker endpoint (``sagemaker-runtime.invoke_endpoint``); the endpoint's
    container (``mlship serve``) validates and predicts, and records via data capture."""

    name = "sagemaker"

    def __init__(self, endpoint: str, experiment: Experiment | None = None):
        self.endpoint, self.experiment = endpoint, experiment
        self.model_name, self.model_version = endpoint, "endpoint"

    def invoke(self, req: Request, max_bytes: int, record: bool,  # noqa: ARG002
               explain: protocol.ExplainRequest | None = None) -> Answer:
        from botocore.exceptions import BotoCoreError, ClientError

        from mlship.aws.clients import client

        protocol.check_size(req.body, max_bytes)
        mtype = protocol.resolve_media_type(req.content_type, req.body)
        target = self.experiment.variant_for(req, mtype) if self.experiment else None
        try:
            resp = client("sagemaker-runtime").invoke_endpoint(
                EndpointName=self.endpoint, ContentType=mtype, Accept=protocol.JSON, Body=req.body,
                InferenceId=req.request_id[:64], **({"TargetVariant": target} if target else {}))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") == "ModelError":
                original = int(exc.response.get("OriginalStatusCode") or err.get("OriginalStatusCode") or 502)
                message = exc.response.get("OriginalMessage") or err.get("OriginalMessage") or ""
                try:
                    body = json.loads(message)
                except ValueError:
                    body = {"error": message or "the endpoint's model failed"}
                status = original if 400 <= original < 600 else 502
                return Answer(status, {**body, "request_id": req.request_id},
                              error_kind=body.get("kind", "model"))
            return _unavailable(req, err.get("Message", str(exc)))
        except BotoCoreError as exc:
            return _unavailable(req, str(exc))
        body = json.loads(resp["Body"].read())
        body["request_id"] = req.request_id
        body.setdefault("variant", resp.get("InvokedProductionVariant"))
        rows = len(body.get("predictions") or [])
        model = body.get("model") or {}
        self.model_name = model.get("name", self.model_name)
        self.model_version = model.get("version", self.model_version)
        if explain is not None:
            body["explanations"] = None
            body["explanation_unavailable"] = ("explanations are answered by the function's own model "
                                               "(MODEL_URI), not through a SageMaker endpoint")
        return Answer(200, body, rows=rows)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "endpoint": self.endpoint}


# ---------------------------------------------------------------------------- configuration and model
@dataclass
class Service:
    """One configuration of the function: its settings (None when invalid) and the model's lifecycle."""

    settings: PredictSettings | None
    lifecycle: ModelLifecycle[Any]
    capture: Capture | None = None
    shadow: ShadowScorer | None = None

    @property
    def max_body_bytes(self) -> int:
        return self.settings.max_body_bytes if self.settings else protocol.DEFAULT_MAX_BODY_BYTES

    @property
    def metrics_on(self) -> bool:
        """Whether EMF metrics are written (``POWERTOOLS_METRICS_DISABLED`` unset or false)."""
        return not (self.settings and self.settings.metrics_disabled)


_service: Service | None = None


def service() -> Service:
    """The current configuration, read from the environment on first use (and after :func:`reset`)."""
    global _service
    if _service is None:
        _service = _configure()
    return _service


def reset() -> None:
    """Forget the configuration and the model: the next request reads the environment again."""
    global _service
    if _service is not None and _service.shadow is not None:
        _service.shadow.close()
    _service = None


def load_backend(force: bool = False) -> Any:
    """The loaded backend (``force``: re-read the configuration and load again); raises BundleError."""
    if force:
        reset()
    return service().lifecycle.load()


def _configure() -> Service:
    try:
        settings = PredictSettings.from_env()
    except SettingsError as exc:
        refusal = BundleError(str(exc))  # answered 503 like a bundle that cannot load, naming the variable

        def refuse() -> Any:
            raise refusal

        return Service(None, ModelLifecycle(refuse, retry_seconds=LOAD_RETRY_SECONDS, log=logger))
    name = settings.sagemaker_endpoint if settings.backend == "sagemaker" else settings.model_uri
    lifecycle = ModelLifecycle(partial(open_backend, settings), retry_seconds=LOAD_RETRY_SECONDS, name=name,
                               log=logger, on_loaded=_log_loaded)
    shadow = None
    if settings.shadow_model_uri:  # imported only then: its thread pool is a cold-start cost
        scorer = importlib.import_module(f"{__package__}.shadow" if __package__ else "shadow").ShadowScorer
        shadow = scorer(settings.shadow_model_uri, settings.shadow_budget_ms, partial(_open_shadow, settings))
    return Service(settings, lifecycle, open_capture(settings, settings.function_version or None), shadow)


def _open_shadow(settings: PredictSettings, uri: str) -> Any:
    """The shadow's predictor, loaded like the champion's (the shadow scorer's loader)."""
    from mlship.runtime.predictor import Predictor

    return Predictor.load(uri, threads=settings.ort_threads or None, public_key=settings.public_key or None)


@dataclass
class Experiment:
    """An A/B test on the endpoint's production variants: a request carrying a unit id (header, or
    a field shared by its records) goes to the unit's variant, every time; others by the weights."""

    weights: list[tuple[str, float]]
    salt: str
    header: str
    field: str = ""

    def unit(self, req: Request, media: str) -> str | None:
        """The request's unit id, or None."""
        value = (req.headers or {}).get(self.header.lower())
        if value or not self.field or media != protocol.JSON:
            return value or None
        try:
            records = protocol.parse_json(req.body)
        except ValidationError:
            return None  # the endpoint's container names the problem
        units = {str(r.get(self.field)) for r in records if isinstance(r, dict) and r.get(self.field) is not None}
        return units.pop() if len(units) == 1 else None  # several units in one request: by the weights

    def variant_for(self, req: Request, media: str) -> str | None:
        """The unit's variant (``TargetVariant``), or None to let the endpoint's weights decide."""
        from mlship.runtime.assignment import assign

        unit = self.unit(req, media)
        return None if unit is None else assign(unit, self.weights, self.salt)


def open_backend(settings: PredictSettings) -> Any:
    """The configured backend, loaded (the lifecycle's loader)."""
    if settings.backend == "sagemaker":
        experiment = None
        if settings.ab_variants:
            from mlship.runtime.assignment import parse_weights

            salt = settings.ab_salt or settings.sagemaker_endpoint
            experiment = Experiment(parse_weights(settings.ab_variants), salt, settings.ab_unit_header,
                                    settings.ab_unit_field)
        return SageMakerBackend(settings.sagemaker_endpoint, experiment)
    return OnnxBackend(settings.model_uri, threads=settings.ort_threads or None,
                       public_key=settings.public_key or None)  # PEM text or a path


def _log_loaded(backend: Any, seconds: float) -> None:
    logger.info("model loaded", extra={"model": backend.describe(), "load_seconds": round(seconds, 3)})


# ---------------------------------------------------------------------------- event adaptation
def _decode_body(body: str | None, is_base64: bool) -> bytes:
    if not body:
        return b""
    if is_base64:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            message = "isBase64Encoded is true but the body is not valid base64"
            raise ValidationError([FieldError(None, None, "malformed", message)]) from None
    return body.encode("utf-8")


class MalformedEvent(protocol.RequestError):
    """An event whose shape no API Gateway, Function URL or direct invocation produces."""

    status, kind = 400, "malformed_event"


def _optional(doc: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if value is not None and not isinstance(value, types):
        raise MalformedEvent(f"event {where}{key} must be {_type_names(types)}, got a JSON {json_type(value)}")
    return value


def _type_names(types: type | tuple[type, ...]) -> str:
    names = {str: "a string", bool: "a boolean", dict: "an object"}
    group = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(t, t.__name__) for t in group)


def _check_headers(event: dict[str, Any]) -> None:
    headers = _optional(event, "headers", dict, "")
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise MalformedEvent(f"event header {name!r} must map a string to a string")


def _check_http_event(event: dict[str, Any], version: int) -> None:
    """Refuse, with a message, the fields this adapter reads when they have the wrong type."""
    context = _optional(event, "requestContext", dict, "") or {}
    _optional(context, "requestId", str, "requestContext.")
    _optional(event, "body", str, "")
    _optional(event, "isBase64Encoded", bool, "")
    _check_headers(event)
    if version == 1:
        if not isinstance(event.get("httpMethod"), str):
            raise MalformedEvent("event httpMethod must be a string")
        _optional(event, "path", str, "")
        _optional(event, "queryStringParameters", dict, "")
        _optional(event, "multiValueQueryStringParameters", dict, "")
        return
    http = context.get("http")
    if not isinstance(http, dict) or not isinstance(http.get("method"), str):
        raise MalformedEvent("a version 2.0 event needs requestContext.http.method (a string)")
    _optional(context, "domainName", str, "requestContext.")
    _optional(event, "rawPath", str, "")
    _optional(event, "rawQueryString", str, "")


def parse_event(event: Any, context: Any) -> Request:
    """Recognise the event shape and extract the request (see the module docstring).

    Raises :class:`MalformedEvent` (400) for an event of a known shape with fields of the wrong
    type: such an event is the caller's mistake, never a server error.
    """
    try:
        return _parse_event(event, getattr(context, "aws_request_id", None) or "local")
    except (TypeError, AttributeError, KeyError, ValueError, RecursionError) as exc:
        logger.info("malformed event", extra={"error": type(exc).__name__})  # the class, for the operator only
        raise MalformedEvent("the event cannot be read: a field has an unexpected type or shape") from None


def _event_kind(event: Any) -> str:
    """The response shape an event expects (API Gateway needs statusCode/headers/body)."""
    if isinstance(event, dict) and ("httpMethod" in event or event.get("version") == "2.0"):
        return "rest-v1" if "httpMethod" in event else "http-v2"
    return "direct"


def _http_request(kind: str, event: dict[str, Any], method: str, path: str | None, fallback_id: str) -> Request:
    """The request of an API Gateway (v1, v2) or Function URL event, once :func:`_check_http_event`
    has checked the types of the fields read here (read from the dict: Powertools' event classes
    cost an import at cold start and a case-insensitive header copy per access)."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    request_id = (event.get("requestContext") or {}).get("requestId") or fallback_id
    body = _decode_body(event.get("body"), bool(event.get("isBase64Encoded")))
    query = event.get("rawQueryString") if kind != "rest-v1" else (
        event.get("multiValueQueryStringParameters") or event.get("queryStringParameters"))
    return Request(kind, method.upper(), path or "/", body, headers.get("content-type"), request_id,
                   headers.get("accept"), headers, query)


def _parse_event(event: Any, fallback_id: str) -> Request:
    if isinstance(event, dict) and "httpMethod" in event and "requestContext" in event:
        _check_http_event(event, version=1)
        return _http_request("rest-v1", event, event["httpMethod"], event.get("path"), fallback_id)
    if isinstance(event, dict) and event.get("version") == "2.0" and "requestContext" in event:
        _check_http_event(event, version=2)
        context = event["requestContext"]
        kind = "function-url" if ".lambda-url." in (context.get("domainName") or "") else "http-v2"
        return _http_request(kind, event, context["http"]["method"], event.get("rawPath"), fallback_id)
    if isinstance(event, dict) and "body" in event and ("contentType" in event or "isBase64Encoded" in event):
        _optional(event, "contentType", str, "")
        _optional(event, "isBase64Encoded", bool, "")
        body = event.get("body")
        if not isinstance(body, str):
            body = json.dumps(body)
        return Request("direct", "POST", "/", _decode_body(body, bool(event.get("isBase64Encoded"))),
                       event.get("contentType"), fallback_id)
    return Request("direct", "POST", "/", json.dumps(event).encode("utf-8"), protocol.JSON, fallback_id)


def _render(answer: Answer) -> tuple[str, str]:
    """The body text; an answer JSON cannot carry (NaN from a proxied endpoint) is a model error."""
    try:
        return protocol.render(answer.body, answer.media)
    except (ValueError, TypeError) as exc:
        logger.error("answer cannot be encoded", extra={"error": f"{type(exc).__name__}: {exc}"})
        answer.status, answer.error_kind = 500, "model_error"
        answer.body = {"error": "model error", "reason": "the model's answer is not valid JSON (non-finite number)",
                       "kind": "model_error", "request_id": answer.body.get("request_id")}
        return protocol.render(answer.body, protocol.JSON)


def _response(req: Request, answer: Answer, rendered: tuple[str, str]) -> dict[str, Any]:
    """The event's response shape around the rendered body (:func:`_render` ran first: it may
    have turned the answer into a model error)."""
    if req.kind == "direct":
        return {"statusCode": answer.status, **answer.body}
    text, content_type = rendered
    headers = {"Content-Type": content_type, "X-Request-Id": req.request_id}
    if answer.status == 405:
        headers["Allow"] = "POST"
    return {"statusCode": answer.status, "headers": headers, "body": text, "isBase64Encoded": False}


def _metric_lines(backend: Any, answer: Answer, latency_ms: float, capture_failed: bool,
                  shadow: ShadowOutcome | None) -> str:
    dims = {"Model": str(getattr(backend, "model_name", None) or "unknown"),
            "Version": str(getattr(backend, "model_version", None) or "unknown")}
    values = [("Latency", "Milliseconds", latency_ms), ("Rows", "Count", answer.rows)]
    if capture_failed:
        values.append(("CaptureErrors", "Count", 1))
    if shadow is not None:
        values.append(("ShadowLatency", "Milliseconds", shadow.latency_ms))
        if shadow.error:
            values.append(("ShadowErrors", "Count", 1))
    text = metrics.line(dims, values)
    if answer.error_kind:
        text += metrics.line({**dims, "ErrorKind": answer.error_kind}, [("Errors", "Count", 1)])
    return text


def _captured(current: Service, answer: Answer) -> bool:
    """Whether this answer is captured (a model error made by :func:`_render` is not)."""
    return answer.records is not None and answer.status == 200 and current.capture is not None


def _shadow(current: Service, req: Request, answer: Answer, started: float) -> ShadowOutcome | None:
    """The shadow's outcome for a captured answer (after the champion answered; within its budget)."""
    if current.shadow is None or not _captured(current, answer):
        return None
    primary_ms = round((time.perf_counter() - started) * 1000.0, 3)
    outcome = current.shadow.score(answer.payload, req.request_id)
    outcome.primary_latency_ms = primary_ms
    return outcome


def _capture(current: Service, backend: Any, req: Request, answer: Answer, rendered: tuple[str, str],
             context: Any, shadow: ShadowOutcome | None) -> tuple[str, bool]:
    """This invocation's capture text (written with the metrics, before the answer: Lambda may
    freeze the process after it) and whether a capture failed (counted, never raised)."""
    if not _captured(current, answer):
        return "", False
    text, content_type = rendered
    json_request = protocol.resolve_media_type(req.content_type, req.body) == protocol.JSON
    exchange = Exchange(req.request_id, str(backend.model_name), str(backend.model_version),
                        protocol.body_text(req.body) if json_request else req.body.decode("utf-8", "replace"),
                        json_request,
                        text if content_type == protocol.JSON else protocol.dumps(answer.body), answer.records,
                        None if shadow is None else shadow.capture_text())
    try:
        return current.capture.render(exchange, invoked_alias(context)), False  # type: ignore[union-attr]
    except CaptureFailed as exc:
        logger.warning("inference capture failed", extra={"error": str(exc)})
        return "", True


def _write(text: str) -> None:
    """Capture and metric lines in one write and one flush (stdout, looked up per call: Lambda's
    runtime and tests replace it); a stream that fails is ignored, the answer stands."""
    if not text:
        return
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        return


def handle(req: Request, current: Service) -> tuple[Answer, Any]:
    """Route one request: health check, method check, backend call, error mapping."""
    backend = None
    try:
        backend = current.lifecycle.load()
        if req.method == "GET" and req.path.rstrip("/").endswith(HEALTH_PATHS):
            body = {"status": "ok", "model": backend.describe(), "request_id": req.request_id}
            return Answer(200, body), backend
        if req.method != "POST":
            raise protocol.MethodNotAllowed(f"method {req.method} is not allowed: POST a JSON or CSV body")
        media = protocol.response_type(req.accept)  # 406 before any work
        explain = protocol.explain_request(req.query)  # a bad parameter is a 400 before any work
        protocol.check_explainable_media(media, explain)
        record = current.capture is not None and current.capture.sampled()
        answer = backend.invoke(req, current.max_body_bytes, record=record, explain=explain)
        answer.media = media
        return answer, backend
    except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a stack trace
        status, body = protocol.error_answer(exc, req.request_id)
        kind = protocol.error_kind(exc)
        if status >= 500:
            logger.error("request failed", extra={"status": status, "kind": kind, "error": str(exc)})
        else:
            logger.info("request refused", extra={"status": status, "kind": kind})
        return Answer(status, body, error_kind=kind), backend


_cold_start = True


def _log_context(context: Any) -> None:
    """The keys Powertools' ``inject_lambda_context`` adds to every log line, set by hand: the
    decorator rebuilds the formatter and re-reads the environment on every invocation. Every key
    is overwritten per invocation, so nothing leaks from one request into the next."""
    global _cold_start
    request_id = getattr(context, "aws_request_id", None) or "local"
    logger.append_keys(cold_start=_cold_start, function_name=getattr(context, "function_name", "UNDEFINED"),
                       function_memory_size=getattr(context, "memory_limit_in_mb", 128),
                       function_arn=getattr(context, "invoked_function_arn", "UNDEFINED"),
                       function_request_id=request_id, request_id=request_id, event_kind=None)
    if logger.sampling_rate and not _cold_start:
        logger.refresh_sample_rate_calculation()  # as the decorator does (POWERTOOLS_LOGGER_SAMPLE_RATE)
    _cold_start = False


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda entry point (``handler.handler``)."""
    _log_context(context)
    return _traced(event, context)


def answer_event(event: Any, context: Any) -> dict[str, Any]:
    """One invocation: parse, handle, capture, metrics, response."""
    started = time.perf_counter()
    current = service()
    try:
        req = parse_event(event, context)
    except Exception as exc:  # noqa: BLE001 - a malformed event is a 400, not a crash
        req = Request(_event_kind(event), "POST", "/", b"", None, getattr(context, "aws_request_id", "local"))
        status, body = protocol.error_answer(exc, req.request_id)
        answer, backend = Answer(status, body, error_kind=protocol.error_kind(exc)), None
    else:
        logger.append_keys(request_id=req.request_id, event_kind=req.kind)
        answer, backend = handle(req, current)
    rendered = _render(answer)
    shadow = _shadow(current, req, answer, started)
    out, capture_failed = _capture(current, backend, req, answer, rendered, context, shadow)
    latency_ms = (time.perf_counter() - started) * 1000.0
    if current.metrics_on:
        out += _metric_lines(backend, answer, latency_ms, capture_failed, shadow)
    _write(out)
    if tracer is not None:
        tracer.put_annotation(key="status", value=answer.status)
    return _response(req, answer, rendered)


_traced = tracer.capture_lambda_handler(answer_event, capture_response=False) if tracer else answer_event


def _load_during_init() -> None:
    """Load in the init phase (full CPU, not billed to the first request); a failure, invalid
    settings included, is logged now and remembered: requests answer 503."""
    current = service()
    if current.settings is None or current.settings.eager_load:
        with contextlib.suppress(BundleError):
            current.lifecycle.load()
        if current.shadow is not None:
            current.shadow.load()
    # What init built (modules, the sessions) lives as long as the process: out of the collector's
    # reach, full collections no longer walk it (they are the warm path's longest pauses).
    gc.freeze()


if INIT.function_name:
    _load_during_init()
