"""The fresh labelled data of a retraining run: Parquet or CSV files in a local path or under an
``s3://BUCKET/PREFIX/``, read into one DataFrame (the collect step)."""

from __future__ import annotations

import io
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

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in sorted(page.get("Contents", []), key=lambda o: o["Key"]):
            if obj["Key"].endswith(SUFFIXES):
                yield obj["Key"], s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
