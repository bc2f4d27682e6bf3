"""SageMaker data capture on the plane: JSON Lines in SageMaker's format, buffered, written to moto S3.

An endpoint configuration's ``DataCaptureConfig`` (``EnableCapture``, ``InitialSamplingPercentage``,
``DestinationS3Uri``, ``CaptureOptions``, ``CaptureContentTypeHeader``) is honoured as the SageMaker
developer guide ("Capture data from real-time endpoint") describes it: one line per captured
invocation, ``{"captureData": {"endpointInput": {...}, "endpointOutput": {...}}, "eventMetadata":
{"eventId", "inferenceId", "inferenceTime"}, "eventVersion": "0"}``, under
``{DestinationS3Uri}/{EndpointName}/{VariantName}/yyyy/mm/dd/hh/{mm-ss-fff}-{uuid}.jsonl``. A body
whose content type is listed in ``CsvContentTypes`` / ``JsonContentTypes`` is stored as text with
encoding ``CSV`` / ``JSON``; any other (and every body when no header list is given) is ``BASE64``.

The answer path only appends an event to a buffer; :class:`CaptureWriter` serialises and writes
one object per endpoint, variant and hour every ``flush_seconds`` (and on :meth:`CaptureWriter.close`),
never one PUT per request.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("mlship.local.plane.datacapture")


@dataclass(frozen=True)
class CaptureSettings:
    """One endpoint configuration's ``DataCaptureConfig``, parsed."""

    bucket: str
    prefix: str  # the key prefix of DestinationS3Uri, without a trailing '/'
    sampling_percentage: float = 100.0
    capture_input: bool = True
    capture_output: bool = True
    csv_types: tuple[str, ...] = ()
    json_types: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> CaptureSettings | None:
        """The settings of ``DataCaptureConfig``; None when it is absent, disabled or has no S3 URI."""
        if not config or not config.get("EnableCapture", True):
            return None
        uri = str(config.get("DestinationS3Uri") or "")
        if not uri.startswith("s3://"):
            return None
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        modes = {str(o.get("CaptureMode", "")).lower() for o in config.get("CaptureOptions") or []}
        header = config.get("CaptureContentTypeHeader") or {}
        return cls(bucket, prefix.strip("/"), float(config.get("InitialSamplingPercentage", 100)),
                   "input" in modes, "output" in modes,
                   tuple(t.lower() for t in header.get("CsvContentTypes") or ()),
                   tuple(t.lower() for t in header.get("JsonContentTypes") or ()))

    def encode(self, content_type: str, body: bytes) -> tuple[str, str]:
        """``(data, encoding)`` of one body as SageMaker stores it."""
        media = content_type.split(";")[0].strip().lower()
        if media and media in self.json_types:
            return body.decode("utf-8", "replace"), "JSON"
        if media and media in self.csv_types:
            return body.decode("utf-8", "replace"), "CSV"
        return base64.b64encode(body).decode("ascii"), "BASE64"


@dataclass(frozen=True)
class CaptureEvent:
    """One invocation of one variant, as the answer path hands it over (serialised at flush)."""

    endpoint: str
    variant: str
    event_id: str
    inference_id: str | None
    time: float  # epoch seconds
    input_type: str
    input_body: bytes
    output_type: str
    output_body: bytes


def capture_line(settings: CaptureSettings, event: CaptureEvent) -> dict[str, Any]:
    """The SageMaker data-capture document of one event."""
    capture: dict[str, Any] = {}
    if settings.capture_input:
        data, encoding = settings.encode(event.input_type, event.input_body)
        capture["endpointInput"] = {"observedContentType": event.input_type, "mode": "INPUT",
                                    "data": data, "encoding": encoding}
    if settings.capture_output:
        data, encoding = settings.encode(event.output_type, event.output_body)
        capture["endpointOutput"] = {"observedContentType": event.output_type, "mode": "OUTPUT",
                                     "data": data, "encoding": encoding}
    metadata = {"eventId": event.event_id,
                "inferenceTime": datetime.fromtimestamp(event.time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if event.inference_id:  # SageMaker writes it only when the caller sent an InferenceId
        metadata["inferenceId"] = event.inference_id
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


def object_key(settings: CaptureSettings, endpoint: str, variant: str, at: float) -> str:
    """``{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/{mm-ss-fff}-{uuid}.jsonl`` for an object started ``at``."""
    moment = datetime.fromtimestamp(at, UTC)
    name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    parts = [settings.prefix] if settings.prefix else []
    return "/".join([*parts, endpoint, variant, f"{moment:%Y/%m/%d/%H}", name])


@dataclass
class CaptureWriter:
    """Buffers captured events and writes them to S3 in objects, from a thread of its own."""

    s3: Any
    flush_seconds: float = 5.0
    max_buffered: int = 10_000  # beyond it new events are dropped (and counted): capture never blocks serving
    written_objects: int = 0
    dropped: int = 0
    _buffer: list[tuple[CaptureSettings, CaptureEvent]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _flushing: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add(self, settings: CaptureSettings, event: CaptureEvent) -> None:
        """Buffer one event (no I/O here: this runs while the client waits)."""
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self.dropped += 1
                return
            self._buffer.append((settings, event))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a failed write is logged; the next flush tries the new events
                log.exception("writing data capture failed")

    def flush(self) -> int:
        """Write every buffered event, one object per destination, endpoint, variant and hour."""
        with self._flushing:
            with self._lock:
                events, self._buffer = self._buffer, []
            groups: dict[tuple[str, str, str, str, str], list[tuple[CaptureSettings, CaptureEvent]]] = {}
            for settings, event in events:
                hour = datetime.fromtimestamp(event.time, UTC).strftime("%Y%m%d%H")
                key = (settings.bucket, settings.prefix, event.endpoint, event.variant, hour)
                groups.setdefault(key, []).append((settings, event))
            for (bucket, _, endpoint, variant, _), items in groups.items():
                body = "".join(json.dumps(capture_line(s, e), separators=(",", ":")) + "\n" for s, e in items)
                key = object_key(items[0][0], endpoint, variant, items[0][1].time)
                self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="application/jsonlines")
                self.written_objects += 1
            return len(groups)

    def close(self) -> None:
        """Stop the flushing thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.flush_seconds + 5)
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the plane is stopping: log, never raise from close
            log.exception("writing data capture failed")
