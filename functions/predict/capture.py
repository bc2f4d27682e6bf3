"""Inference capture of the prediction Lambda, off the request path by default.

``log`` (the default): one JSON line per captured request on stdout
(:func:`mlship.runtime.records.capture_line`). Lambda hands stdout to CloudWatch Logs after the
fact; the API stack's subscription filter sends the lines to Firehose, which batches, gzips and
partitions them into S3 (``model=/version=/date=/hour=``). Answering a request makes no network
call. ``s3`` (opt-in): the old synchronous PutObject of a one-request object per request.

Either way a capture that cannot be written never fails the prediction: :meth:`Capture.write`
returns ``False`` and the handler counts it in the ``CaptureErrors`` metric.

Stdlib only; boto3 is imported by the ``s3`` mode alone.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable
from typing import Any, TextIO

from mlship.runtime.records import capture_line

MAX_LINE_BYTES = 250_000  # CloudWatch Logs takes events up to 256 KB: larger requests span several lines
_log = logging.getLogger("mlship.predict.capture")


class Capture:
    """What is common to both modes: the sampling decision and who answered (``variant``)."""

    mode = "off"

    def __init__(self, percentage: float, variant: str, *, dice: Callable[[], float] = random.random):
        self.percentage, self.variant, self._dice = percentage, variant, dice

    def sampled(self) -> bool:
        """Whether this request is captured (``percentage`` of them, like SageMaker's sampling)."""
        return self.percentage >= 100.0 or (self.percentage > 0.0 and self._dice() * 100.0 < self.percentage)

    def write(self, records: list[dict[str, Any]], alias: str | None) -> bool:
        """Capture one request's records; ``False`` when they could not be written."""
        raise NotImplementedError


class LogCapture(Capture):
    """One line per request on ``stream`` (stdout), flushed before the answer: Lambda may freeze after it."""

    mode = "log"

    def __init__(self, percentage: float, variant: str, *, stream: TextIO | None = None,
                 dice: Callable[[], float] = random.random):
        super().__init__(percentage, variant, dice=dice)
        self._stream = stream

    def write(self, records: list[dict[str, Any]], alias: str | None) -> bool:
        stream = self._stream or sys.stdout  # looked up per call: Lambda's runtime and tests replace it
        try:
            text = "".join(line + "\n" for line in lines(records, self.variant, alias))
            stream.write(text)
            stream.flush()
        except (OSError, ValueError, TypeError) as exc:  # a closed stream, a value JSON cannot carry
            _log.warning("could not write the capture line: %s: %s", type(exc).__name__, exc)
            return False
        return True


def lines(records: list[dict[str, Any]], variant: str | None, alias: str | None) -> list[str]:
    """The capture lines of one request: one, or several when a line would exceed ``MAX_LINE_BYTES``."""
    line = capture_line(records, variant=variant, alias=alias)
    if len(line) <= MAX_LINE_BYTES or len(records) == 1:
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

    def write(self, records: list[dict[str, Any]], alias: str | None) -> bool:
        try:
            self.writer.add([{**rec, "variant": self.variant, "alias": alias} for rec in records])
            self.writer.flush()
        except Exception as exc:  # noqa: BLE001 - records never fail a prediction
            _log.warning("could not write inference records: %s: %s", type(exc).__name__, exc)
            return False
        return True


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
