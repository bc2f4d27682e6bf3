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

Late ground-truth labels are JSON Lines under ``s3://BUCKET/LABELS_PREFIX/model=NAME/...``
with ``{"request_id": "...", "row": 0, "label": 1}``; ``(request_id, row)`` is the join key.
:func:`parse_line` also reads SageMaker data-capture lines (``captureData``/``eventMetadata``).
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from mlship.runtime.jsonutil import json_default, jsonable

DEFAULT_PREFIX = "inference-records"
LABELS_PREFIX = "labels"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
    stamp = iso(ts or utc_now())
    return [{"request_id": request_id, "row": i, "time": stamp, "source": source,
             "model": {"name": model_name, "version": model_version}, "inputs": inp, "outputs": out}
            for i, (inp, out) in enumerate(zip(inputs, outputs, strict=True))]


def encode(records: Iterable[dict[str, Any]]) -> bytes:
    """gzip'd JSON Lines."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for rec in records:
            gz.write(json.dumps(rec, separators=(",", ":"), default=json_default).encode() + b"\n")
    return buf.getvalue()


def iter_lines(body: bytes) -> Iterator[str]:
    """Lines of a (possibly gzip'd) JSON Lines object."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    for line in body.decode("utf-8").splitlines():
        if line.strip():
            yield line


def parse_line(line: str, feature_names: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse one stored line into mlship records (a data-capture line may hold many rows)."""
    doc = json.loads(line)
    if "captureData" in doc:
        return _parse_data_capture(doc, feature_names)
    return [doc]


def _decode_capture(part: dict[str, Any]) -> str:
    data = part.get("data", "")
    return base64.b64decode(data).decode("utf-8") if part.get("encoding") == "BASE64" else data


def _parse_data_capture(doc: dict[str, Any], feature_names: list[str] | None) -> list[dict[str, Any]]:
    """SageMaker data capture: ``captureData.endpointInput/endpointOutput`` + ``eventMetadata``."""
    cap, meta = doc["captureData"], doc.get("eventMetadata", {})
    req_text = _decode_capture(cap.get("endpointInput", {}))
    resp_text = _decode_capture(cap.get("endpointOutput", {}))
    req_type = cap.get("endpointInput", {}).get("observedContentType", "")
    if "csv" in req_type:
        rows = [r for r in csv.reader(io.StringIO(req_text)) if r]
        if feature_names and rows and [c.strip() for c in rows[0]] == feature_names:
            rows = rows[1:]
        names = feature_names or [f"f{i}" for i in range(len(rows[0]) if rows else 0)]
        inputs = [dict(zip(names, (_num(c) for c in r), strict=False)) for r in rows]
    else:
        body = json.loads(req_text)
        inputs = body.get("instances", body) if isinstance(body, dict) else body
        if isinstance(inputs, dict):
            inputs = [inputs]
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
