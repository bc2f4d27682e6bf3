"""The fresh labelled data of a retraining run (the collect step): Parquet or CSV files in a local
path or under an ``s3://BUCKET/PREFIX/`` (``retrain.data_uri``), and/or the inference records the
model served in the last ``retrain.window_hours`` joined with their late labels
(``retrain.from_records``; the records and labels of :mod:`mlship.runtime.records` in the registry
bucket, every registered version), as one DataFrame of the model's inputs and the label."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

SUFFIXES = (".parquet", ".csv")


class DataError(MlshipError):
    """The fresh data cannot be read."""

    kind = "retrain_data"


def read_labelled(uri: str) -> Any:
    """Every Parquet/CSV file at ``uri`` (a file, a directory, or an S3 prefix) as one DataFrame."""
    import pandas as pd

    parts = list(_s3_parts(uri) if uri.startswith("s3://") else _local_parts(Path(uri)))
    if not parts:
        raise DataError(f"no .parquet or .csv files at {uri}")
    try:
        frames = [pd.read_parquet(io.BytesIO(body)) if name.endswith(".parquet") else pd.read_csv(io.BytesIO(body))
                  for name, body in parts]
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many classes for a bad file
        raise DataError(f"cannot read the fresh data at {uri}: {type(exc).__name__}: {exc}") from None
    return pd.concat(frames, ignore_index=True)


def _local_parts(path: Path) -> Any:
    if path.is_file():
        yield path.name, path.read_bytes()
        return
    if not path.is_dir():
        raise DataError(f"fresh data {path} does not exist")
    for file in sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES):
        yield file.name, file.read_bytes()


def _s3_parts(uri: str) -> Any:
    from mlship.aws.clients import client
    from mlship.aws.s3 import parse_s3_uri

    bucket, prefix = parse_s3_uri(uri)
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
            if obj["Key"].endswith(SUFFIXES):
                yield obj["Key"], s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()


def collect(registry: Any, model: str, config: Any, now: datetime | None = None) -> tuple[Any, str]:
    """The run's fresh labelled rows and a description of where they came from."""
    import pandas as pd

    frames, sources = [], []
    if config.data_uri:
        frames.append(read_labelled(config.data_uri))
        sources.append(config.data_uri)
    if config.from_records:
        served, bad = served_with_labels(registry, model, config.label, config.window_hours, now)
        if len(served):
            frames.append(served)
        sources.append(f"{len(served)} served records with late labels ({config.window_hours:g} h"
                       + (f", {bad} unreadable record lines skipped)" if bad else ")"))
    if not frames:
        raise DataError("no fresh labelled data: set retrain.data_uri, or serve with records on and write "
                        "late labels (retrain.from_records)")
    return pd.concat(frames, ignore_index=True), " + ".join(sources)


def served_with_labels(registry: Any, model: str, label: str, window_hours: float,
                       now: datetime | None = None) -> tuple[Any, int]:
    """The inputs of the records of ``model`` (every version) served in the window that have a late
    label, with it; and how many stored lines were not records (skipped and counted)."""
    import pandas as pd

    from mlship.aws.labels import read_labels
    from mlship.monitoring.window import Window, iter_window_records
    from mlship.runtime.records import LABELS_PREFIX

    window = Window.ending(now or datetime.now(UTC), window_hours)
    labels = read_labels(registry.bucket, LABELS_PREFIX, model, since=window.start)
    if not labels:
        return pd.DataFrame(), 0
    stats: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for record in iter_window_records(registry.bucket, _day_prefixes(registry, model, window), window, None, stats):
        key = (str(record.get("request_id")), int(record.get("row") or 0))
        if key in labels and isinstance(record.get("inputs"), dict):
            rows.append({**record["inputs"], label: labels[key]})
    return pd.DataFrame(rows), stats.get("bad_lines", 0)


def _day_prefixes(registry: Any, model: str, window: Any) -> list[str]:
    """The day partitions of every version's records that overlap the window (the records' layout of
    :mod:`mlship.runtime.records`; a day, not an hour, per listing)."""
    from mlship.runtime.records import DEFAULT_PREFIX

    base = f"{DEFAULT_PREFIX}/model={model}/"
    first, last = window.start.date(), window.end.date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    versions = [p["Prefix"] for page in registry.s3.get_paginator("list_objects_v2").paginate(
        Bucket=registry.bucket, Prefix=base, Delimiter="/") for p in page.get("CommonPrefixes", [])]
    return [f"{version}date={day:%Y-%m-%d}/" for version in versions for day in days]
