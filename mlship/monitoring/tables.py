"""Streaming readers for ``mlship drift`` (CLI only: uses pyarrow/pandas, never imported by Lambda).

CSV, Parquet and JSON Lines files (or a directory of Parquet/CSV files) are read in batches
of columns, so a drift comparison over any number of rows keeps memory bounded. Parquet columns
are read and profiled in parallel, one column per thread (pyarrow's reads and numpy's sorts
release the GIL), and numeric Arrow arrays become numpy arrays straight from their buffers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mlship.errors import MlshipError

# bins of a reference dataset's profile: the KS statistic from bins is exact at their edges and off by
# at most one bin's mass in between (~1/2000 here; each report states its bound, ``ks_error_bound``)
DATASET_BINS = 2000
DATASET_SUFFIXES = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson", ".csv.gz", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Arrow's fixed-width number types and the numpy dtype of their value buffer
_ARROW_NUMBERS = {"double": "float64", "float": "float32", "int64": "int64", "int32": "int32", "int16": "int16",
                  "int8": "int8", "uint64": "uint64", "uint32": "uint32", "uint16": "uint16", "uint8": "uint8"}


def column_workers() -> int:
    """Threads that read and sketch columns at once: one per core, at most 4 (each holds one column)."""
    return max(1, min(4, os.cpu_count() or 1))


def _is_parquet(path: Path) -> bool:
    return str(path).lower().endswith(PARQUET_SUFFIXES)


def is_dataset(path: str | Path) -> bool:
    """True for a data file (by suffix) or a directory of data files without a bundle manifest."""
    p = Path(str(path))
    if p.is_dir():
        return not (p / "manifest.json").is_file() and any(_files(p))
    return str(p).lower().endswith(DATASET_SUFFIXES)


def data_files(path: str | Path) -> list[Path]:
    """The data files at ``path``: itself, or a directory's data files in name order."""
    return _files(Path(str(path)))


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(f for f in path.rglob("*") if f.is_file() and str(f).lower().endswith(DATASET_SUFFIXES))
    return [path]


def count_rows(path: str | Path) -> int | None:
    """Row count when cheap (Parquet metadata), else None."""
    total = 0
    for f in _files(Path(path)):
        if not _is_parquet(f):
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
        if _is_parquet(f):
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(f)
            wanted = None if columns is None else [c for c in parquet.schema_arrow.names if c in columns]
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                yield {n: arrow_to_numpy(batch.column(n)) for n in batch.schema.names}
        else:
            import pandas as pd

            from mlship.monitoring.spool import is_json_lines

            reader = (pd.read_json(f, lines=True, chunksize=batch_rows) if is_json_lines(f)
                      else pd.read_csv(f, chunksize=batch_rows))
            with reader as chunks:
                for chunk in chunks:
                    yield {str(c): chunk[c].to_numpy() for c in chunk.columns}


def is_parquet(path: str | Path) -> bool:
    """Whether every data file at ``path`` is Parquet (which can be read one column at a time)."""
    files = _files(Path(str(path)))
    return bool(files) and all(_is_parquet(f) for f in files)


def column_chunks(path: str | Path, name: str, batch_rows: int) -> Iterator[Any]:
    """One Parquet column in pieces of at most ``batch_rows`` values, file by file: numpy arrays of
    numbers, pyarrow arrays of anything else (a file without the column yields nothing: the drift
    report then calls the feature missing)."""
    import pyarrow.parquet as pq

    for f in _files(Path(str(path))):
        parquet = pq.ParquetFile(f)
        if name not in parquet.schema_arrow.names:
            continue
        for group in range(parquet.num_row_groups):
            column = parquet.read_row_group(group, columns=[name]).column(name)
            numeric = str(column.type) in _ARROW_NUMBERS
            for start in range(0, len(column), batch_rows):  # other types stay Arrow: the sketch counts them there
                piece = column.slice(start, batch_rows)
                yield arrow_to_numpy(piece) if numeric else piece


def arrow_to_numpy(values: Any) -> Any:
    """A pyarrow Array or ChunkedArray as one numpy array. Fixed-width numbers are read from the
    Arrow buffers (nulls become NaN): pyarrow's own ``to_numpy`` imports pandas (~0.2 s) first."""
    import numpy as np

    chunks = values.chunks if hasattr(values, "chunks") else [values]
    dtype = _ARROW_NUMBERS.get(str(values.type))
    if dtype is None:
        return values.to_numpy(zero_copy_only=False) if chunks else np.array([], dtype=object)
    parts = [_number_buffer(chunk, np.dtype(dtype)) for chunk in chunks]
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.array([], dtype=dtype)


def _number_buffer(chunk: Any, dtype: Any) -> Any:
    import numpy as np

    validity, data = chunk.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
    if chunk.null_count == 0:
        return values
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
    out = values.astype(np.float64)
    out[~bits[chunk.offset: chunk.offset + len(chunk)].astype(bool)] = np.nan
    return out


def map_columns(task: Callable[[str], Any], names: list[str],
                on_done: Callable[[int], None] | None = None) -> dict[str, Any]:
    """``{name: task(name)}`` over :func:`column_workers` threads, in ``names`` order; ``on_done(k)``
    after each of the first ``k`` completions (called from this thread, so progress bars stay simple)."""
    with ThreadPoolExecutor(max_workers=column_workers(), thread_name_prefix="mlship-column") as pool:
        futures = {name: pool.submit(task, name) for name in names}
        for k, name in enumerate(names, start=1):
            futures[name].result()
            if on_done is not None:
                on_done(k)
        return {name: future.result() for name, future in futures.items()}


def profile_dataset(path: str | Path, exclude: list[str] | None = None, n_bins: int | None = None) -> dict[str, Any]:
    """Baseline profile of a reference dataset, one column at a time (memory: one column per thread,
    not the table): Parquet directly, CSV and JSON Lines once converted to a temporary Parquet file
    (:mod:`mlship.monitoring.spool`); those Arrow cannot convert are read whole with pandas."""
    from mlship.monitoring.spool import SpoolError, spooled
    from mlship.stats.profile import build_profile

    files = _files(Path(str(path)))
    if not files or not files[0].exists():
        raise MlshipError(f"no data found at {path} (expected .csv, .parquet or .jsonl files)")
    bins = n_bins or DATASET_BINS
    if all(_is_parquet(f) for f in files):
        return _profile_parquet_columns(files, set(exclude or ()), bins)
    try:
        with spooled(files) as parquet:
            return _profile_parquet_columns([parquet], set(exclude or ()), bins)
    except SpoolError:
        pass  # a column whose values change type down the file: pandas keeps them (as invalid values)
    columns = _whole_columns(path, set(exclude or ()))
    numeric = {k: v.dtype.kind in "fiub" for k, v in columns.items()}
    return build_profile(_typed(columns, numeric), numeric, None, bins)


def _profile_parquet_columns(files: list[Path], exclude: set[str], n_bins: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from mlship.stats.profile import profile_document

    names = [n for n in pq.ParquetFile(files[0]).schema_arrow.names if n not in exclude]
    if not names:
        raise MlshipError(f"{files[0]} has no columns")
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    features = map_columns(lambda name: _column_profile(files, name, n_bins), names)
    return profile_document(features, rows, n_bins)


def _column_profile(files: list[Path], name: str, n_bins: int) -> dict[str, Any]:
    """The profile of one column over every file (memory: that column)."""
    import numpy as np
    import pyarrow.parquet as pq

    from mlship.stats.profile import categorical_profile, numeric_profile

    parts = [arrow_to_numpy(pq.ParquetFile(f).read(columns=[name]).column(name)) for f in files]
    values = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if values.dtype.kind in "fiub":
        return numeric_profile(values.astype(np.float64, copy=False), n_bins)
    return categorical_profile(values.astype(object))


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
