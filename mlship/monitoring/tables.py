"""Streaming readers for ``mlship drift`` (CLI only: uses pyarrow/pandas, never imported by Lambda).

CSV, Parquet and JSON Lines files (or a directory of Parquet/CSV files) are read in batches
of columns, so a drift comparison over any number of rows keeps memory bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

DATASET_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".csv.gz", ".jsonl.gz")


def is_dataset(path: str | Path) -> bool:
    """True for a data file (by suffix) or a directory of data files without a bundle manifest."""
    p = Path(str(path))
    if p.is_dir():
        return not (p / "manifest.json").is_file() and any(_files(p))
    return str(p).lower().endswith(DATASET_SUFFIXES)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file() and str(f).lower().endswith(DATASET_SUFFIXES))
    return [path]


def count_rows(path: str | Path) -> int | None:
    """Row count when cheap (Parquet metadata), else None."""
    total = 0
    for f in _files(Path(path)):
        if f.suffix.lower() not in (".parquet", ".pq"):
            return None
        import pyarrow.parquet as pq

        total += pq.ParquetFile(f).metadata.num_rows
    return total


def iter_batches(path: str | Path, batch_rows: int = 200_000) -> Iterator[dict[str, Any]]:
    """Dicts of column arrays, ``batch_rows`` rows at a time."""
    p = Path(str(path))
    files = _files(p)
    if not files or not files[0].exists():
        raise MlshipError(f"no data found at {path} (expected .csv, .parquet or .jsonl files)")
    for f in files:
        name = str(f).lower()
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows):
                yield {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names}
        else:
            import pandas as pd

            reader = (pd.read_json(f, lines=True, chunksize=batch_rows) if ".jsonl" in name or ".ndjson" in name
                      else pd.read_csv(f, chunksize=batch_rows))
            with reader as chunks:
                for chunk in chunks:
                    yield {str(c): chunk[c].to_numpy() for c in chunk.columns}


def profile_dataset(path: str | Path, exclude: list[str] | None = None, n_bins: int | None = None) -> dict[str, Any]:
    """Baseline profile of a reference dataset (read whole: reference sets are usually samples)."""
    import numpy as np

    from mlship.stats.profile import DEFAULT_BINS, build_profile

    parts: dict[str, list[Any]] = {}
    for batch in iter_batches(path):
        for k, v in batch.items():
            if exclude and k in exclude:
                continue
            parts.setdefault(k, []).append(v)
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    if not columns:
        raise MlshipError(f"{path} has no columns")
    numeric = {k: v.dtype.kind in "fiub" for k, v in columns.items()}
    columns = {k: (v.astype(np.float64) if numeric[k] else v.astype(object)) for k, v in columns.items()}
    return build_profile(columns, numeric, None, n_bins or DEFAULT_BINS)
