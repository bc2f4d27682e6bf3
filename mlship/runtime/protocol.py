"""The HTTP prediction protocol shared by the Lambda handler and ``mlship serve``.

Request bodies are ``application/json`` (``{"instances": [{...}, ...]}``, a single record
``{...}`` or a bare list of records) or ``text/csv`` (with or without a header row). A missing
``Content-Type`` is sniffed (``{``/``[`` means JSON, anything else CSV); any other media type
is refused. Validation and prediction are the predictor's; this module only decodes bodies,
shapes answers and maps errors to HTTP statuses:

======================================  ======  ===========================
error                                   status  ``kind`` (metric dimension)
======================================  ======  ===========================
:class:`~mlship.errors.ValidationError`  400    ``validation``
body over the size limit                 413    ``too_large``
unsupported ``Content-Type``             415    ``unsupported_media_type``
``Accept`` neither JSON nor CSV          406    ``not_acceptable``
wrong HTTP method                        405    ``method_not_allowed``
model not loaded / golden check failed   503    ``model_unavailable``
model output NaN or infinite             500    ``model_error``
anything else                            500    ``internal`` (no details)
======================================  ======  ===========================

Answers are JSON unless the ``Accept`` header prefers ``text/csv``: then one line per input row,
no header, ``prediction`` followed by the class probabilities in ``classes`` order (regression:
the value), the shape SageMaker Batch Transform joins back to its input lines. Errors are JSON.

Imports only the standard library, numpy and the mlship core (it ships in the Lambda asset).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from mlship.errors import BundleError, FieldError, MlshipError, ModelOutputError, ValidationError
from mlship.runtime.hashing import json_type

JSON = "application/json"
CSV = "text/csv"
SUPPORTED_TYPES = (JSON, CSV)
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit and SageMaker's


class RequestError(MlshipError):
    """A request the protocol refuses before validation (size, media type, method)."""

    status = 400
    kind = "bad_request"


class PayloadTooLarge(RequestError):
    status, kind = 413, "too_large"


class UnsupportedMediaType(RequestError):
    status, kind = 415, "unsupported_media_type"


class MethodNotAllowed(RequestError):
    status, kind = 405, "method_not_allowed"


class NotAcceptable(RequestError):
    status, kind = 406, "not_acceptable"


class BadParameter(RequestError):
    status, kind = 400, "bad_parameter"


MAX_TOP_K = 10_000
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


@dataclass(frozen=True)
class ExplainRequest:
    """``explain=true`` (and ``top_k``) in a request's query string."""

    top_k: int | None = None


def explain_request(query: str | Mapping[str, Any] | None) -> ExplainRequest | None:
    """The ``explain`` and ``top_k`` query parameters (a raw query string or a parsed mapping);
    None when no explanation is asked for. A value that is not one of them is a 400 naming it."""
    if not query:  # the common request: no query string at all
        return None
    params = parse_qs(query, keep_blank_values=True) if isinstance(query, str) else dict(query)
    explain, top_k = _parameter(params, "explain"), _parameter(params, "top_k")
    if explain is None or explain.strip().lower() in _FALSE:
        if top_k is not None:
            raise BadParameter("top_k is only used with explain=true")
        return None
    if explain.strip().lower() not in _TRUE:
        raise BadParameter(f"explain must be true or false, got {explain[:40]!r}")
    if top_k is None:
        return ExplainRequest()
    if not top_k.strip().isdigit() or not 1 <= int(top_k) <= MAX_TOP_K:
        raise BadParameter(f"top_k must be a whole number from 1 to {MAX_TOP_K}, got {top_k[:40]!r}")
    return ExplainRequest(int(top_k))


def _parameter(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if isinstance(value, (list, tuple)):
        if len(value) > 1:
            raise BadParameter(f"{name} is given {len(value)} times: give it once")
        value = value[0] if value else None
    return None if value is None else str(value)


def explained(body: dict[str, Any], predictor: Any, columns: dict[str, Any] | None, payload: Any,
              request: ExplainRequest) -> dict[str, Any]:
    """``body`` with each row's explanation added, or ``explanation_unavailable`` saying why there
    is none (a model family without an exact explainer, a bundle exported before explainers)."""
    from mlship.runtime.explain import ExplainError

    try:
        if columns is None:  # the one-record fast path kept no columns
            columns = predictor.schema.validate(payload).columns
        body["explanations"] = predictor.explainer().explain_columns(columns).records(request.top_k)
    except ExplainError as exc:
        body["explanations"] = None
        body["explanation_unavailable"] = str(exc)
    return body


def check_explainable_media(media: str, request: ExplainRequest | None) -> None:
    """Explanations are answered as JSON: a CSV answer cannot carry them (406 before any work)."""
    if request is not None and media != JSON:
        raise NotAcceptable(f"explanations are answered as {JSON}: send Accept: {JSON} with explain=true")


def response_type(accept: str | None) -> str:
    """The answer's media type for an ``Accept`` header (RFC 9110 media ranges with ``q``).

    JSON when the header is missing or allows anything (``*/*``, ``application/*``); CSV when
    ``text/csv`` (or ``text/*``) ranks higher; the first listed wins a tie. Raises
    :class:`NotAcceptable` when neither can be given.
    """
    if not accept or not accept.strip():
        return JSON
    best, best_q = None, 0.0
    for part in accept.split(","):
        media, *params = (field.strip() for field in part.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        for candidate in SUPPORTED_TYPES:  # JSON first: */* means JSON
            if media in (candidate, "*/*", candidate.split("/")[0] + "/*"):
                if q > best_q:
                    best, best_q = candidate, q
                break
    if best is None:
        raise NotAcceptable(f"cannot answer with {accept.strip()!r}: accept {JSON} or {CSV}")
    return best


def render(body: Mapping[str, Any], media: str) -> tuple[str, str]:
    """The response text and its ``Content-Type``: CSV rows for a successful prediction when
    ``media`` is CSV (see the module docstring), compact JSON for everything else."""
    if media != CSV or "predictions" not in body:
        return dumps(body), JSON
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    probabilities = body.get("probabilities")
    for i, prediction in enumerate(body["predictions"]):
        writer.writerow([prediction, *(probabilities[i] if probabilities else ())])
    return out.getvalue(), CSV


def _malformed(message: str) -> ValidationError:
    return ValidationError([FieldError(None, None, "malformed", message)])


def media_type(content_type: str | None) -> str | None:
    """``'Application/JSON; charset=utf-8'`` -> ``'application/json'`` (None when absent)."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def check_size(body: bytes, max_bytes: int) -> None:
    """Raise :class:`PayloadTooLarge` when ``body`` exceeds ``max_bytes``."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes, over the {max_bytes}-byte limit")


def resolve_media_type(content_type: str | None, body: bytes) -> str:
    """The media type to parse ``body`` as; raise :class:`UnsupportedMediaType` for others."""
    mtype = media_type(content_type)
    if mtype is None:
        head = body.lstrip()[:1]
        return JSON if head in (b"{", b"[") else CSV
    if mtype in (JSON, "application/x-json", "text/json") or mtype.endswith("+json"):
        return JSON
    if mtype in (CSV, "application/csv", "text/x-csv"):
        return CSV
    raise UnsupportedMediaType(f"unsupported Content-Type {mtype!r}: send {JSON} or {CSV}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


# Built once: json.loads and json.dumps with options build a new decoder or encoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def body_text(body: bytes) -> str:
    """UTF-8 text without a leading byte-order mark (the C codec: ``utf-8-sig`` is Python code)."""
    text = body.decode("utf-8")
    return text[1:] if text.startswith("\ufeff") else text


def parse_json(body: bytes) -> list[Any]:
    """Decode a JSON body into a list of records (raise ValidationError when malformed)."""
    try:
        text = body_text(body)
    except UnicodeDecodeError as exc:
        raise _malformed(f"body is not UTF-8: {exc}") from None
    if not text or text.isspace():
        raise ValidationError([FieldError(None, None, "empty", "request body is empty")])
    try:
        doc = _DECODER.decode(text)
    except ValueError as exc:  # JSONDecodeError, the NaN/Infinity rejection, over-long integers
        raise _malformed(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _malformed("body is not valid JSON: nested too deeply") from None
    if type(doc) is dict or isinstance(doc, Mapping):  # (the exact type first: the ABC check costs more)
        if "instances" not in doc:
            return [doc]
        extra = [k for k in doc if k != "instances"]
        if extra:
            raise ValidationError([FieldError(None, str(k), "unexpected_field",
                                              "unexpected top-level key (expected only 'instances')")
                                   for k in extra])
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise _malformed(f"'instances' must be a list of records, got a JSON {json_type(instances)}")
        return instances
    if isinstance(doc, list):
        return doc
    raise _malformed('expected {"instances": [...]}, a record or a list of records, '
                     f"got a JSON {json_type(doc)}")


def decode(body: bytes, content_type: str | None, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Any:
    """Check the size and media type of a body and decode it into predictor input.

    Returns a list of records (JSON) or the CSV bytes (the schema parses CSV itself).
    """
    check_size(body, max_bytes)
    mtype = resolve_media_type(content_type, body)
    if mtype == JSON:
        return parse_json(body)
    if not body.strip():
        raise ValidationError([FieldError(None, None, "empty", "request body is empty")])
    return body


def answer(prediction: Any, request_id: str) -> dict[str, Any]:
    """The success body: predictions, probabilities/classes (or values), model and request id."""
    body = prediction.to_dict()
    body["request_id"] = request_id
    return body


def error_kind(exc: BaseException) -> str:
    """The ``ErrorKind`` metric dimension of an exception."""
    if isinstance(exc, ValidationError):
        return "validation"
    if isinstance(exc, RequestError):
        return exc.kind
    if isinstance(exc, BundleError):
        return "model_unavailable"
    if isinstance(exc, ModelOutputError):
        return "model_error"
    return "internal"


def error_answer(exc: BaseException, request_id: str) -> tuple[int, dict[str, Any]]:
    """Map an exception to ``(status, body)``; never includes a stack trace."""
    if isinstance(exc, ValidationError):
        body = exc.to_dict()
        status = 400
    elif isinstance(exc, RequestError):
        status, body = exc.status, {"error": str(exc), "kind": exc.kind}
    elif isinstance(exc, BundleError):
        status, body = 503, {"error": "model unavailable", "reason": str(exc), "kind": "model_unavailable"}
    elif isinstance(exc, ModelOutputError):
        status, body = 500, {"error": "model error", "reason": str(exc), "kind": "model_error"}
    else:
        status, body = 500, {"error": "internal error", "kind": "internal"}
    body["request_id"] = request_id
    return status, body


def dumps(body: Mapping[str, Any]) -> str:
    """Compact JSON (numbers are already finite: NaN would be a bug, so fail loudly)."""
    return _ENCODER.encode(body)
