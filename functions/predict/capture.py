"""Inference capture of the prediction Lambda, off the request path by default.

``log`` (the default): one JSON line per captured request on stdout holding the request and
the answer as exchanged (:func:`mlship.runtime.records.exchange_line`). Lambda hands stdout to CloudWatch Logs after the
fact; the API stack's subscription filter sends the lines to Firehose, which batches, gzips and
partitions them into S3 (``model=/version=/date=/hour=``). Answering a request makes no network
call. ``s3`` (opt-in): the old synchronous PutObject of a one-request object per request.

Either way a capture that cannot be made never fails the prediction: :meth:`Capture.render`
raises :class:`CaptureFailed` and the handler counts it in the ``CaptureErrors`` metric.

Stdlib only; boto3 is imported by the ``s3`` mode alone.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlship.runtime.records import ExchangeHeader, capture_line, now_iso

MAX_LINE_BYTES = 250_000  # CloudWatch Logs takes events up to 256 KB: larger requests span several lines
_log = logging.getLogger("mlship.predict.capture")


class CaptureFailed(Exception):
    """A capture that could not be made (the handler counts it in ``CaptureErrors``; the answer stands)."""


@dataclass
class Exchange:
    """One answered request as capture needs it: who answered, what was sent and what was answered."""

    request_id: str
    model_name: str
    model_version: str
    request_text: str  # the body as decoded (JSON or CSV text)
    request_is_json: bool
    response_text: str  # the JSON answer
    records: Callable[[], list[dict[str, Any]]]  # the row-wise records (s3 mode, requests over one log event)
    shadow_text: str | None = None  # the shadow model's part of the line, when one scored the request


class Capture:
    """What is common to both modes: the sampling decision and who answered (``variant``)."""

    mode = "off"

    def __init__(self, percentage: float, variant: str, *, dice: Callable[[], float] = random.random):
        self.percentage, self.variant, self._dice = percentage, variant, dice

    def sampled(self) -> bool:
        """Whether this request is captured (``percentage`` of them, like SageMaker's sampling)."""
        return self.percentage >= 100.0 or (self.percentage > 0.0 and self._dice() * 100.0 < self.percentage)

    def render(self, exchange: Exchange, alias: str | None) -> str:
        """Capture one request: the text the handler writes to stdout with the request's other lines
        (``""`` when nothing is to be written); raises :class:`CaptureFailed`."""
        raise NotImplementedError


class LogCapture(Capture):
    """One ``mlship/2`` exchange line per request (several ``mlship/1`` lines for a request larger than
    one log event); the handler writes it and flushes before the answer (Lambda may freeze after it)."""

    mode = "log"

    def __init__(self, percentage: float, variant: str, *, dice: Callable[[], float] = random.random):
        super().__init__(percentage, variant, dice=dice)
        self._headers: dict[tuple[str, str, str | None], ExchangeHeader] = {}

    def _header(self, exchange: Exchange, alias: str | None) -> ExchangeHeader:
        key = (exchange.model_name, exchange.model_version, alias)
        header = self._headers.get(key)
        if header is None:
            header = ExchangeHeader("lambda", exchange.model_name, exchange.model_version, self.variant, alias)
            if len(self._headers) < 64:  # a few models and aliases per function
                self._headers[key] = header
        return header

    def render(self, exchange: Exchange, alias: str | None) -> str:
        try:
            line = self._header(exchange, alias).line(exchange.request_id, now_iso(), exchange.request_text,
                                                      exchange.request_is_json, exchange.response_text,
                                                      exchange.shadow_text)
            if len(line) * 4 <= MAX_LINE_BYTES or len(line.encode("utf-8")) <= MAX_LINE_BYTES:
                return line + "\n"
            return "".join(part + "\n" for part in lines(exchange.records(), self.variant, alias))
        except (ValueError, TypeError) as exc:  # a value JSON cannot carry
            raise CaptureFailed(f"{type(exc).__name__}: {exc}") from None


def lines(records: list[dict[str, Any]], variant: str | None, alias: str | None) -> list[str]:
    """The ``mlship/1`` lines of one request's records: one, or several when a line would exceed
    ``MAX_LINE_BYTES``."""
    line = capture_line(records, variant=variant, alias=alias)
    if len(line.encode("utf-8")) <= MAX_LINE_BYTES or len(records) == 1:
        return [line]  # one row over the limit: CloudWatch Logs truncates it, the reader skips it as a bad line
    half = len(records) // 2
    return lines(records[:half], variant, alias) + lines(records[half:], variant, alias)


class S3Capture(Capture):
    """``CAPTURE_MODE=s3``: one PutObject per request (a network call on the request path; opt-in)."""

    mode = "s3"

    def __init__(self, percentage: float, variant: str, bucket: str, prefix: str):
        super().__init__(percentage, variant)
        from mlship.aws.records import RecordWriter

        self.writer = RecordWriter(bucket, prefix, max_records=10_000)

    def render(self, exchange: Exchange, alias: str | None) -> str:
        try:
            self.writer.add([{**rec, "variant": self.variant, "alias": alias} for rec in exchange.records()])
            self.writer.flush()
        except Exception as exc:  # noqa: BLE001 - records never fail a prediction
            _log.warning("could not write inference records: %s: %s", type(exc).__name__, exc)
            raise CaptureFailed(f"{type(exc).__name__}: {exc}") from None
        return ""


def open_capture(settings: Any, variant: str) -> Capture | None:
    """The capture the settings ask for (``None``: off, or a sampling percentage of 0)."""
    if settings.capture_mode == "off" or settings.sampling_percentage <= 0:
        return None
    if settings.capture_mode == "s3":
        return S3Capture(settings.sampling_percentage, variant, settings.records_bucket, settings.records_prefix)
    return LogCapture(settings.sampling_percentage, variant)


def invoked_alias(context: Any) -> str | None:
    """The alias (or version) the caller invoked: the ARN's qualifier, ``None`` for the bare function."""
    arn = getattr(context, "invoked_function_arn", None) or ""
    parts = arn.split(":")
    return parts[7] if len(parts) > 7 and parts[7] else None
