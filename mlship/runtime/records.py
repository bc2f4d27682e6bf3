"""The inference record format: one JSON line per scored row, for monitoring and audits.

This module only builds, encodes and parses records (standard library); writing them to S3 and
reading them back is :mod:`mlship.aws.records`.

Layout (one gzip'd JSON Lines object per flush)::

    s3://BUCKET/PREFIX/model=NAME/version=VERSION/date=YYYY-MM-DD/hour=HH/YYYYMMDDTHHMMSSZ-<uuid>.jsonl.gz

One line per scored row::

    {"request_id": "...", "row": 0, "time": "2026-11-23T10:00:00.123Z", "source": "lambda",
     "model": {"name": "churn", "version": "1"},
     "inputs": {"tenure_months": 3, ...},
     "outputs": {"prediction": 1, "probabilities": [0.2, 0.8]}}      # or {"prediction": 12.3}

Capture lines (the prediction Lambda's, off the request path): one JSON line per captured
request on the function's stdout; a CloudWatch Logs subscription filter sends them to Firehose,
which writes them gzip'd under the same ``model=/version=/date=/hour=`` layout::

    {"capture": "mlship/1", "request_id": "...", "time": "...", "source": "lambda",
     "model": {"name": "churn", "version": "1"}, "variant": "7", "alias": "live",
     "rows": [{"inputs": {...}, "outputs": {...}}, ...]}

``variant`` is what answered (the Lambda function version), ``alias`` the qualifier the caller
invoked.

Exchange lines (``mlship/2``, what the Lambda writes for a request that fits one log event) hold the
request and the answer as they were exchanged, like SageMaker data capture: the JSON body itself
(``request``) or CSV text (``request_csv``), and the JSON answer (``response``)::

    {"capture": "mlship/2", "request_id": "...", "time": "...", "source": "lambda",
     "model": {"name": "churn", "version": "1"}, "variant": "7", "alias": "live",
     "request": {"instances": [...]}, "response": {"predictions": [...], "probabilities": [...], ...}}

Writing one is string concatenation of texts the request already produced (nothing is converted or
encoded per row while a client waits); :func:`parse_line` expands it into the same records a
``mlship/1`` line gives (with ``variant`` and ``alias``), the inputs being the values the client
sent. It also reads the CloudWatch Logs envelopes Firehose delivers when it does not extract the
messages itself (``{"messageType": "DATA_MESSAGE", "logEvents": [...]}``, as moto does).

Late ground-truth labels are JSON Lines under ``s3://BUCKET/LABELS_PREFIX/model=NAME/...``
with ``{"request_id": "...", "row": 0, "label": 1}``; ``(request_id, row)`` is the join key.
:func:`parse_line` also reads SageMaker data-capture lines (``captureData``/``eventMetadata``).
"""

from __future__ import annotations

import base64
import codecs
import csv
import gzip
import io
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from mlship.runtime.jsonutil import json_default, jsonable

DEFAULT_PREFIX = "inference-records"
CAPTURE_FORMAT = "mlship/1"  # the ``capture`` key of a row-wise capture line
EXCHANGE_FORMAT = "mlship/2"  # the ``capture`` key of an exchange line (request and answer texts)
CAPTURE_PREFIX = "mlship/"  # what every capture format starts with (the subscription filter matches it)
_DECODER = json.JSONDecoder()
# one encoder for every capture line: json.dumps with arguments builds a new encoder per call
_CAPTURE_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=json_default)
LABELS_PREFIX = "labels"
_CHUNK = 1 << 20  # bytes of a stored object inflated and decoded at a time


def utc_now() -> datetime:
    return datetime.now(UTC)


_second: tuple[int, str] = (-1, "")  # a whole second and its "YYYY-MM-DDTHH:MM:SS": formatted once


def now_iso() -> str:
    """:func:`iso` of now, formatting the date and time once per second (it runs per answered request)."""
    global _second
    now = time.time()
    second = int(now)
    cached = _second  # one read of an immutable pair: safe against a concurrent update
    if cached[0] != second:
        cached = _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((now - second) * 1000):03d}Z"


def iso(ts: datetime) -> str:
    """``2026-11-23T10:00:00.123Z`` (milliseconds, truncated; ``isoformat`` is several times faster
    than ``strftime``, and this runs once per answered request)."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def object_key(prefix: str, model_name: str, model_version: str, ts: datetime) -> str:
    """The S3 key of one batch of records written at ``ts``."""
    ts = ts.astimezone(UTC)
    return (f"{prefix.strip('/')}/model={model_name}/version={model_version}/date={ts:%Y-%m-%d}/hour={ts:%H}/"
            f"{ts:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}.jsonl.gz")


def input_rows(columns: Mapping[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Validated columns back to one JSON-ready dict per row (the ``inputs`` of each record)."""
    if not names:
        return []
    plain = [jsonable(columns[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*plain, strict=True)]


def make_records(request_id: str, model_name: str, model_version: str, inputs: list[dict[str, Any]],
                 outputs: list[dict[str, Any]], *, source: str, ts: datetime | None = None) -> list[dict]:
    """One record per row of a request (inputs and outputs are row-aligned)."""
    stamp = iso(ts) if ts is not None else now_iso()
    return [{"request_id": request_id, "row": i, "time": stamp, "source": source,
             "model": {"name": model_name, "version": model_version}, "inputs": inp, "outputs": out}
            for i, (inp, out) in enumerate(zip(inputs, outputs, strict=True))]


def capture_line(records: list[dict[str, Any]], *, variant: str | None, alias: str | None = None) -> str:
    """Records of one request (from :func:`make_records`, consecutive rows) as one capture line (no newline)."""
    first = records[0]
    doc = {"capture": CAPTURE_FORMAT, "request_id": first["request_id"], "time": first["time"],
           "source": first["source"], "model": first["model"], "variant": variant, "alias": alias,
           "rows": [{"inputs": rec["inputs"], "outputs": rec["outputs"]} for rec in records]}
    if first.get("row"):
        doc["first_row"] = first["row"]  # a large request split over several lines
    return _CAPTURE_ENCODER.encode(doc)


class ExchangeHeader:
    """The part of an exchange line that is the same for every request of one source, model,
    variant and alias, encoded once; :meth:`line` adds the request's own parts."""

    def __init__(self, source: str, model_name: str, model_version: str, variant: str | None, alias: str | None):
        self.tail = _CAPTURE_ENCODER.encode({"source": source, "model": {"name": model_name, "version": model_version},
                                             "variant": variant, "alias": alias})[1:-1]

    def line(self, request_id: str, time_text: str, request_text: str, request_is_json: bool,
             response_text: str, shadow_text: str | None = None) -> str:
        """One ``mlship/2`` line (no newline). ``request_text`` must be a JSON document the request
        decoder accepted, or CSV text; ``response_text`` a JSON document; ``shadow_text`` a
        :func:`shadow_part`. A JSON document's newlines can only be whitespace (JSON strings cannot
        hold one raw), so they become spaces: one log event."""
        if request_is_json:
            request = '"request":' + _one_line(request_text)
        else:
            request = '"request_csv":' + encode_basestring_ascii(request_text)
        shadow = "" if shadow_text is None else ',"shadow":' + shadow_text
        return (f'{{"capture":"{EXCHANGE_FORMAT}","request_id":{encode_basestring_ascii(request_id)},'
                f'"time":{encode_basestring_ascii(time_text)},{self.tail},{request},'
                f'"response":{_one_line(response_text)}{shadow}}}')


def shadow_part(model_name: str | None, model_version: str | None, response_text: str | None, error: str | None,
                latency_ms: float, primary_latency_ms: float | None = None) -> str:
    """The ``shadow`` object of an exchange line: the shadow model, its JSON answer (or null), why
    it has none (``error``), how long it took and how long the champion took to its answer."""
    head = _CAPTURE_ENCODER.encode({"model": {"name": model_name, "version": model_version}, "error": error,
                                    "latency_ms": latency_ms, "primary_latency_ms": primary_latency_ms})
    return f'{head[:-1]},"response":{"null" if response_text is None else _one_line(response_text)}}}'


def exchange_line(header: Mapping[str, Any], request_text: str, request_is_json: bool, response_text: str) -> str:
    """One ``mlship/2`` line from ``header`` (request_id, time, source, model, variant, alias) and
    the request and answer texts (see :meth:`ExchangeHeader.line`)."""
    model = header["model"]
    head = ExchangeHeader(header["source"], model["name"], model["version"], header.get("variant"), header.get("alias"))
    return head.line(header["request_id"], header["time"], request_text, request_is_json, response_text)


def _one_line(json_text: str) -> str:
    if "\n" in json_text or "\r" in json_text:
        return json_text.replace("\r", " ").replace("\n", " ")
    return json_text


def _expand_exchange(doc: dict[str, Any], feature_names: list[str] | None, shadow: bool) -> list[dict[str, Any]]:
    common = {key: doc.get(key) for key in ("request_id", "time", "source", "model", "variant", "alias")}
    if "request_csv" in doc:
        inputs = _csv_inputs(str(doc["request_csv"]), feature_names)
    else:
        inputs = _json_inputs(doc.get("request"))
    outputs = _outputs(doc.get("response"))
    records = [{**common, "row": i, "inputs": inp, "outputs": outputs[i] if i < len(outputs) else {"prediction": None}}
               for i, inp in enumerate(inputs)]
    part = doc.get("shadow")
    if shadow and isinstance(part, dict):
        records += _shadow_records(common, inputs, part)
    return records


def _shadow_records(common: dict[str, Any], inputs: list[Any], part: dict[str, Any]) -> list[dict[str, Any]]:
    """The shadow's records of one exchange: the champion's inputs, the shadow's model and outputs
    (``None`` with ``shadow_error`` when it has none), ``role: shadow``."""
    outputs = _outputs(part.get("response"))
    base = {**common, "model": part.get("model"), "role": "shadow", "shadow_error": part.get("error"),
            "shadow_latency_ms": part.get("latency_ms"), "primary_latency_ms": part.get("primary_latency_ms")}
    return [{**base, "row": i, "inputs": inp, "outputs": outputs[i] if i < len(outputs) else None}
            for i, inp in enumerate(inputs)]


def _json_inputs(body: Any) -> list[Any]:
    """The records of a JSON request (``{"instances": [...]}``, one record or a list of them)."""
    inputs = body.get("instances", body) if isinstance(body, dict) else body
    if isinstance(inputs, dict):
        return [inputs]
    return inputs if isinstance(inputs, list) else []


def _csv_inputs(text: str, feature_names: list[str] | None) -> list[dict[str, Any]]:
    """The rows of a CSV request as records (a header row, when it names the features, is skipped)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if feature_names and rows and [c.strip() for c in rows[0]] == feature_names:
        rows = rows[1:]
    names = feature_names or [f"f{i}" for i in range(len(rows[0]) if rows else 0)]
    return [dict(zip(names, (_num(c) for c in r), strict=False)) for r in rows]


def _outputs(body: Any) -> list[dict[str, Any]]:
    """One ``outputs`` dict per row of a JSON answer (``prediction``, and ``probabilities`` when answered)."""
    if not isinstance(body, dict):
        return []
    predictions = body.get("predictions") or []
    if "probabilities" not in body:
        return [{"prediction": p} for p in predictions]
    probabilities = body.get("probabilities")
    return [{"prediction": p, "probabilities": probabilities[i] if probabilities and i < len(probabilities) else None}
            for i, p in enumerate(predictions)]


def _expand_capture(doc: dict[str, Any]) -> list[dict[str, Any]]:
    common = {key: doc.get(key) for key in ("request_id", "time", "source", "model", "variant", "alias")}
    first = int(doc.get("first_row") or 0)
    return [{**common, "row": first + i, "inputs": row.get("inputs"), "outputs": row.get("outputs")}
            for i, row in enumerate(doc.get("rows") or [])]


def _log_envelope(doc: dict[str, Any], feature_names: list[str] | None, shadow: bool) -> list[dict[str, Any]]:
    """The capture lines among a CloudWatch Logs subscription envelope's events (other lines are skipped)."""
    if doc.get("messageType") != "DATA_MESSAGE":
        return []  # CONTROL_MESSAGE: CloudWatch Logs checking the destination
    records: list[dict[str, Any]] = []
    for event in doc.get("logEvents") or []:
        message = str(event.get("message", "")).strip()
        if message.startswith("{") and CAPTURE_PREFIX in message:
            records.extend(parse_line(message, feature_names, shadow=shadow))
    return records


def encode(records: Iterable[dict[str, Any]]) -> bytes:
    """gzip'd JSON Lines."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for rec in records:
            gz.write(json.dumps(rec, separators=(",", ":"), default=json_default).encode() + b"\n")
    return buf.getvalue()


def iter_lines(body: bytes) -> Iterator[str]:
    """Lines of a (possibly gzip'd) JSON Lines object, split on ``\\n``.

    Inflated and decoded a chunk at a time: a Firehose object (up to 128 MB before compression)
    is never held decompressed, so reading it costs its stored size plus one chunk.
    """
    carry = ""
    decoder = codecs.getincrementaldecoder("utf-8")()
    chunks = _inflated(body) if body[:2] == b"\x1f\x8b" else _pieces(body)
    for chunk in chunks:
        *lines, carry = (carry + decoder.decode(chunk)).split("\n")
        yield from _stored_lines(lines)
    yield from _stored_lines([carry + decoder.decode(b"", final=True)])


def _stored_lines(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if "}{" in line:  # Firehose with no delimiter: JSON documents back to back
            yield from _documents(line)
        elif line.strip():
            yield line


def _pieces(body: bytes) -> Iterator[memoryview]:
    view = memoryview(body)
    for start in range(0, len(body), _CHUNK):
        yield view[start:start + _CHUNK]


def _inflated(body: bytes) -> Iterator[bytes]:
    """The decompressed chunks of a gzip body, member after member, as ``gzip.decompress`` reads it
    (a truncated member raises ``EOFError``, trailing bytes that are no member ``gzip.BadGzipFile``)."""
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
        while chunk := stream.read(_CHUNK):
            yield chunk


def _documents(text: str) -> Iterator[str]:
    """The JSON documents of ``text`` (back to back); text that does not parse is yielded as is."""
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos == end:
            return
        try:
            _, stop = _DECODER.raw_decode(text, pos)
        except ValueError:
            yield text[pos:]  # the caller's parser reports it as a bad line
            return
        yield text[pos:stop]
        pos = stop


def parse_line(line: str, feature_names: list[str] | None = None, *, shadow: bool = False) -> list[dict[str, Any]]:
    """Parse one stored line into mlship records (a data-capture line may hold many rows);
    ``shadow`` adds the shadow model's records (``role: shadow``) of the Lambda's exchange lines."""
    doc = json.loads(line)
    if not isinstance(doc, dict):
        return [doc]
    if "captureData" in doc:
        return _parse_data_capture(doc, feature_names)
    if doc.get("capture") == EXCHANGE_FORMAT:
        return _expand_exchange(doc, feature_names, shadow)
    if doc.get("capture") == CAPTURE_FORMAT:
        return _expand_capture(doc)
    if "logEvents" in doc and "messageType" in doc:
        return _log_envelope(doc, feature_names, shadow)
    return [doc]


def data_capture_variant(key: str) -> str | None:
    """The variant of a SageMaker data-capture object from its key
    (``PREFIX/ENDPOINT/VARIANT/yyyy/mm/dd/hh/FILE.jsonl``: the lines themselves do not name it)."""
    parts = key.split("/")
    if len(parts) >= 7 and all(p.isdigit() for p in parts[-5:-1]) and len(parts[-5]) == 4:
        return parts[-6]
    return None


def object_records(key: str, body: bytes, feature_names: list[str] | None = None, *, shadow: bool = False,
                   on_bad_line: Any = None) -> Iterator[dict[str, Any]]:
    """The records of one stored object: every line parsed (:func:`parse_line`), data-capture
    records given their variant from the key. A line that does not parse raises, or, with
    ``on_bad_line``, is passed to it and skipped."""
    variant = data_capture_variant(key)
    for line in iter_lines(body):
        try:
            records = parse_line(line, feature_names, shadow=shadow)
        except (ValueError, KeyError, TypeError):
            if on_bad_line is None:
                raise
            on_bad_line(line)
            continue
        for rec in records:
            if variant is not None and isinstance(rec, dict) and rec.get("source") == "data-capture":
                rec.setdefault("variant", variant)
            yield rec


def _decode_capture(part: dict[str, Any]) -> str:
    data = part.get("data", "")
    return base64.b64decode(data).decode("utf-8") if part.get("encoding") == "BASE64" else data


def _parse_data_capture(doc: dict[str, Any], feature_names: list[str] | None) -> list[dict[str, Any]]:
    """SageMaker data capture: ``captureData.endpointInput/endpointOutput`` + ``eventMetadata``."""
    cap, meta = doc["captureData"], doc.get("eventMetadata", {})
    req_text = _decode_capture(cap.get("endpointInput", {}))
    resp_text = _decode_capture(cap.get("endpointOutput", {}))
    req_type = cap.get("endpointInput", {}).get("observedContentType", "")
    inputs = _csv_inputs(req_text, feature_names) if "csv" in req_type else _json_inputs(json.loads(req_text))
    try:
        out_body = json.loads(resp_text)
    except json.JSONDecodeError:
        out_body = {}
    preds = out_body.get("predictions", []) if isinstance(out_body, dict) else []
    probs = out_body.get("probabilities") if isinstance(out_body, dict) else None
    model = out_body.get("model", {}) if isinstance(out_body, dict) else {}
    request_id = meta.get("eventId") or meta.get("inferenceId") or uuid.uuid4().hex
    ts = meta.get("inferenceTime", "")
    records = []
    for i, inp in enumerate(inputs):
        out: dict[str, Any] = {"prediction": preds[i] if i < len(preds) else None}
        if probs is not None and i < len(probs):
            out["probabilities"] = probs[i]
        records.append({"request_id": request_id, "row": i, "time": ts, "source": "data-capture",
                        "model": {"name": model.get("name"), "version": model.get("version")},
                        "inputs": inp, "outputs": out})
    return records


def _num(cell: str) -> Any:
    try:
        return float(cell)
    except ValueError:
        return cell if cell != "" else None
