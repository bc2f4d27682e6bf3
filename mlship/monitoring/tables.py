"""Streaming readers for ``mlship drift`` (CLI only: uses pyarrow/pandas, never imported by Lambda).

CSV, Parquet and JSON Lines files (or a directory of Parquet/CSV files) are read in batches
of columns, so a drift comparison over any number of rows keeps memory bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

# bins of a reference dataset's profile: the KS statistic from bins is exact at their edges and off by
# at most one bin's mass in between (~1/2000 here; each report states its bound, ``ks_error_bound``)
DATASET_BINS = 2000
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


def iter_batches(path: str | Path, batch_rows: int = 200_000,
                 columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Dicts of column arrays, ``batch_rows`` rows at a time (Parquet: only ``columns``, when given)."""
    p = Path(str(path))
    files = _files(p)
    if not files or not files[0].exists():
        raise MlshipError(f"no data found at {path} (expected .csv, .parquet or .jsonl files)")
    for f in files:
        name = str(f).lower()
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(f)
            wanted = None if columns is None else [c for c in parquet.schema_arrow.names if c in columns]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                yield {n: batch.column(n).to_numpy(zero_copy_only=False) for n in batch.schema.names}
        else:
            import pandas as pd

            reader = (pd.read_json(f, lines=True, chunksize=batch_rows) if ".jsonl" in name or ".ndjson" in name
                      else pd.read_csv(f, chunksize=batch_rows))
            with reader as chunks:
                for chunk in chunks:
                    yield {str(c): chunk[c].to_numpy() for c in chunk.columns}


def is_parquet(path: str | Path) -> bool:
    """Whether every data file at ``path`` is Parquet (which can be read one column at a time)."""
    files = _files(Path(str(path)))
    return bool(files) and all(str(f).lower().endswith((".parquet", ".pq")) for f in files)


def column_chunks(path: str | Path, name: str, batch_rows: int) -> Iterator[Any]:
    """One Parquet column as numpy arrays of at most ``batch_rows`` values, file by file (a file
    without the column yields nothing: the drift report then calls the feature missing)."""
    import pyarrow.parquet as pq

    for f in _files(Path(str(path))):
        parquet = pq.ParquetFile(f)
        if name not in parquet.schema_arrow.names:
            continue
        for group in range(parquet.num_row_groups):
            column = parquet.read_row_group(group, columns=[name]).column(name)
            for start in range(0, len(column), batch_rows):
                yield column.slice(start, batch_rows).to_numpy()


def profile_dataset(path: str | Path, exclude: list[str] | None = None, n_bins: int | None = None) -> dict[str, Any]:
    """Baseline profile of a reference dataset. Parquet is read one column at a time (memory: one
    column, not the table); CSV and JSON Lines, which cannot be read by column, are read whole."""
    from mlship.stats.profile import build_profile

    files = _files(Path(str(path)))
    if not files or not files[0].exists():
        raise MlshipError(f"no data found at {path} (expected .csv, .parquet or .jsonl files)")
    bins = n_bins or DATASET_BINS
    if all(str(f).lower().endswith((".parquet", ".pq")) for f in files):
        return _profile_parquet_columns(files, set(exclude or ()), bins)
    columns = _whole_columns(path, set(exclude or ()))
    numeric = {k: v.dtype.kind in "fiub" for k, v in columns.items()}
    return build_profile(_typed(columns, numeric), numeric, None, bins)


def _profile_parquet_columns(files: list[Path], exclude: set[str], n_bins: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from mlship.stats.profile import PROFILE_FORMAT, categorical_profile, numeric_profile

    names = [n for n in pq.ParquetFile(files[0]).schema_arrow.names if n not in exclude]
    if not names:
        raise MlshipError(f"{files[0]} has no columns")
    features, rows = {}, 0
    for name in names:
        parts = [pq.ParquetFile(f).read(columns=[name]).column(name) for f in files]
        values = np.concatenate([part.to_numpy() for part in parts])
        rows = len(values)
        if values.dtype.kind in "fiub":
            features[name] = numeric_profile(values.astype(np.float64, copy=False), n_bins)
        else:
            features[name] = categorical_profile(values.astype(object))
    return {"format": PROFILE_FORMAT, "rows": rows, "n_bins": n_bins, "features": features, "predictions": {}}


def _whole_columns(path: str | Path, exclude: set[str]) -> dict[str, Any]:
    import numpy as np

    parts: dict[str, list[Any]] = {}
    for batch in iter_batches(path):
        for k, v in batch.items():
            if k not in exclude:
                parts.setdefault(k, []).append(v)
    if not parts:
        raise MlshipError(f"{path} has no columns")
    return {k: np.concatenate(v) for k, v in parts.items()}


def _typed(columns: dict[str, Any], numeric: dict[str, bool]) -> dict[str, Any]:
    import numpy as np

    return {k: (v.astype(np.float64) if numeric[k] else v.astype(object)) for k, v in columns.items()}
