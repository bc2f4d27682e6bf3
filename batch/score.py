"""Spark entry point: ``spark-submit batch/score.py --model URI --input URI --output URI --run-id ID``.

Also the EMR Serverless ``entryPoint`` (``mlship batch submit`` uploads it with a dependencies
archive holding ``mlship`` and ``batch``). Prints the run summary as JSON on stdout; on failure
prints one ``error:`` line on stderr and exits 1 without committing any output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch/score.py",
                                     description="Score a batch with an mlship bundle.")
    parser.add_argument("--model", required=True, help="bundle: directory, .tar.gz, s3:// or mlship:// URI")
    parser.add_argument("--input", required=True, help="Parquet or CSV file/directory, or s3:// URI")
    parser.add_argument("--output", required=True, help="output root (directory or s3:// URI)")
    parser.add_argument("--run-id", default=None, help="idempotency key: a rerun replaces this run's output "
                        "(required unless --logical-time gives it)")
    parser.add_argument("--logical-time", default=None, help="a scheduled run's time (ISO 8601): score only "
                        "INPUT/date=D/ with run id D, D = that time's date in --timezone minus --date-offset-days")
    parser.add_argument("--timezone", default="UTC", help="time zone of the logical date (IANA name)")
    parser.add_argument("--date-offset-days", type=int, default=1, help="days before the scheduled time's date")
    parser.add_argument("--format", choices=("parquet", "csv"), default=None)
    parser.add_argument("--id-column", default=None, help="unique input column used as row_id")
    parser.add_argument("--master", default=None,
                        help="Spark master (default: $MLSHIP_SPARK_MASTER, spark-submit's, or local[*] under python)")
    parser.add_argument("--public-key", default=None, help="PEM path/text: require a valid bundle signature")
    parser.add_argument("--s3-mode", choices=("auto", "stage", "direct"), default="auto")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per Python worker")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="Arrow batch size (rows)")
    parser.add_argument("--no-drift", action="store_true", help="skip the drift report")
    parser.add_argument("--explain", action="store_true",
                        help="write each scored row's base value and field contributions")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--summary", default=None, help="also write the summary JSON to this path")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="extra Spark configuration (repeatable)")
    return parser.parse_args(argv)


def scheduled_run(args: argparse.Namespace) -> tuple[str, str]:
    """(input, run id): as given, or the logical date's partition and run id (``--logical-time``)."""
    from mlship.batch import schedule
    from mlship.batch.storage import BatchError

    if args.logical_time is None:
        if not args.run_id:
            raise BatchError("--run-id is required (or --logical-time, which derives it)")
        return args.input, args.run_id
    if args.run_id:
        raise BatchError("--run-id and --logical-time exclude each other: the logical date is the run id")
    day = schedule.logical_date(args.logical_time, args.timezone, args.date_offset_days)
    return schedule.partition_uri(args.input, day), schedule.run_id(day)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if __package__ in (None, ""):  # run as a script: make the repo (or the deps archive) importable
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mlship.batch.job import JobConfig, run_job, spark_conf_pairs
    from mlship.batch.settings import BatchSettings

    from mlship.errors import MlshipError

    try:
        settings = BatchSettings.from_env()
        conf = spark_conf_pairs(args.conf)
        input_uri, run_id = scheduled_run(args)
    except MlshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = JobConfig(model=args.model, input=input_uri, output=args.output, run_id=run_id,
                       format=args.format, id_column=args.id_column, master=settings.master(args.master),
                       public_key=args.public_key or settings.public_key, s3_mode=args.s3_mode, threads=args.threads,
                       max_records_per_batch=args.batch_rows, drift=not args.no_drift, explain=args.explain,
                       progress=not args.no_progress, summary_path=args.summary,
                       spark_conf=conf)
    try:
        summary = run_job(config)
    except MlshipError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
