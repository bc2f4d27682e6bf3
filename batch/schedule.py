"""Scheduled runs: one logical date per run, its input partition and its run id.

EventBridge Scheduler passes the invocation's scheduled time (``<aws.scheduler.scheduled-time>``,
ISO 8601 UTC) to ``batch/score.py --logical-time``. The logical date is that time in the
schedule's time zone, ``offset_days`` earlier (default one: a 03:00 run scores yesterday's
complete partition). The run reads ``INPUT/date=YYYY-MM-DD/`` only and its run id is the date,
so a retried or repeated run of one date replaces that date's output and never rescans history;
``mlship batch backfill`` runs the dates a schedule missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mlship.batch.storage import BatchError

from mlship.config import iana_zone

PARTITION_KEY = "date"
MAX_BACKFILL_DAYS = 366


def logical_date(scheduled_time: str, timezone: str = "UTC", offset_days: int = 1) -> date:
    """The date a run scheduled at ``scheduled_time`` scores; :class:`BatchError` on a bad time or zone."""
    try:
        moment = datetime.fromisoformat(scheduled_time.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BatchError(f"--logical-time {scheduled_time!r}: expected an ISO 8601 time such as "
                         "2026-12-01T03:00:00Z") from None
    if moment.tzinfo is None:
        raise BatchError(f"--logical-time {scheduled_time!r}: give a time zone (Z or +HH:MM)")
    try:
        zone = iana_zone(timezone)
    except ValueError as exc:
        raise BatchError(f"--timezone {exc}") from None
    if not 0 <= offset_days <= 31:
        raise BatchError(f"--date-offset-days {offset_days}: between 0 and 31")
    return moment.astimezone(zone).date() - timedelta(days=offset_days)


def partition_uri(input_root: str, day: date) -> str:
    """``INPUT/date=YYYY-MM-DD/``: the one partition a scheduled run of ``day`` reads."""
    return f"{input_root.rstrip('/')}/{PARTITION_KEY}={day.isoformat()}/"


def run_id(day: date) -> str:
    """The run id of ``day``'s run (the output's ``run_id=YYYY-MM-DD``)."""
    return day.isoformat()


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` option value; :class:`BatchError` naming the option otherwise."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BatchError(f"{option} {text!r}: expected a date YYYY-MM-DD") from None


def dates(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last`` inclusive (at most :data:`MAX_BACKFILL_DAYS`)."""
    if last < first:
        raise BatchError(f"--to {last} is before --from {first}")
    count = (last - first).days + 1
    if count > MAX_BACKFILL_DAYS:
        raise BatchError(f"{count} dates from {first} to {last}: at most {MAX_BACKFILL_DAYS} per backfill")
    return [first + timedelta(days=i) for i in range(count)]


def run_committed(output_root: str, run: str) -> bool:
    """Whether ``OUTPUT/run_id=RUN/_SUCCESS`` exists (a committed run), locally or in S3."""
    from mlship.batch import storage

    marker = f"{output_root.rstrip('/')}/{storage.run_dir_name(run)}/{storage.SUCCESS}"
    if not storage.is_s3(output_root):
        return Path(marker).expanduser().resolve().is_file()
    from mlship.aws.clients import client, get_if_exists

    bucket, key = storage.split_s3(marker)
    try:
        return get_if_exists(client("s3"), bucket, key) is not None
    except Exception as exc:  # botocore: credentials, access denied, a missing bucket
        raise BatchError(f"cannot read {marker}: {exc}") from None


@dataclass(frozen=True)
class DayOutcome:
    """One backfilled date: ``scored`` (with its counts), ``skipped`` (committed already) or ``failed``."""

    day: date
    status: str
    detail: str = ""
    counts: dict[str, Any] = field(default_factory=dict)


def backfill(days: list[date], base: Any, *, force: bool = False,
             on_day: Callable[[DayOutcome], None] = lambda outcome: None) -> list[DayOutcome]:
    """Run ``base`` (a :class:`mlship.batch.job.JobConfig` whose ``input`` is the partitioned root)
    for every date of ``days`` with no committed run (all of them with ``force``), in order; a
    failed date is reported and the next one still runs."""
    from mlship.batch.job import run_job

    from mlship.errors import MlshipError

    outcomes = []
    for day in days:
        try:
            outcome = _backfill_day(day, base, force, run_job)
        except MlshipError as exc:
            outcome = DayOutcome(day, "failed", str(exc))
        except Exception as exc:  # Spark/Py4J or AWS errors: this date failed, the next one still runs
            outcome = DayOutcome(day, "failed", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}")
        on_day(outcome)
        outcomes.append(outcome)
    return outcomes


def _backfill_day(day: date, base: Any, force: bool, run_job: Callable[[Any], dict[str, Any]]) -> DayOutcome:
    if not force and run_committed(base.output, run_id(day)):
        return DayOutcome(day, "skipped", "committed already (--force reruns it)")
    summary = run_job(replace(base, input=partition_uri(base.input, day), run_id=run_id(day)))
    return DayOutcome(day, "scored", summary["output"]["run_path"], summary["counts"])
