"""CSV and JSON Lines for ``mlship drift``, read with Arrow's streaming readers in blocks of rows
(bounded memory): as record batches (:func:`arrow_batches`, the current data, in the schema
:func:`widened_schema` gives), or converted once to
a temporary Parquet file (:func:`spooled`, a reference, which is then profiled one column at a time
like Parquet).

Arrow fixes each column's type from the first block it reads; integer and all-empty columns are
widened to float64 before the conversion starts, so a later ``1.5`` or empty cell is read as a
number or a null. A file Arrow still cannot convert the same way throughout (a numeric column that
turns into text further down) raises :class:`SpoolError`, and the caller reads it with pandas in
row batches instead, which keeps such values and counts them as invalid.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# bytes of text per block: Arrow decodes several blocks at once, so memory grows with it (1 MB:
# ~130 MB peak converting 1M x 20 numbers, 16 MB: ~430 MB, for the same speed)
BLOCK_BYTES = 1 << 20
ROW_GROUP_ROWS = 250_000  # rows per Parquet row group written: blocks are gathered to this size


class SpoolError(ValueError):
    """Arrow could not read the file with one type per column throughout."""


def _arrow_errors() -> tuple[type[BaseException], ...]:
    """What Arrow raises for a file it cannot read with one type per column (KeyError: a later
    file without one of the first file's columns)."""
    import pyarrow as pa

    return (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError)


def is_json_lines(path: Path) -> bool:
    """Whether ``path`` is JSON Lines (``.jsonl``/``.ndjson``, optionally gzipped), by its name."""
    return any(part in path.name.lower() for part in (".jsonl", ".ndjson"))


@contextmanager
def spooled(files: list[Path]) -> Iterator[Path]:
    """A temporary Parquet file holding the rows of ``files`` (CSV or JSON Lines, one schema: the
    first file's), removed afterwards. Raises :class:`SpoolError` when Arrow cannot convert them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="mlship-drift-") as folder:
        target = Path(folder) / "data.parquet"
        schema = widened_schema(files[0])
        batches = arrow_batches(files, schema)
        # uncompressed, no dictionaries: the file lives for one run, and writing it is half the conversion
        with pq.ParquetWriter(target, schema, compression="none", use_dictionary=False,
                              write_statistics=False) as writer:
            pending: list[Any] = []
            pending_rows = 0
            for batch in batches:
                pending.append(batch)
                pending_rows += len(batch)
                if pending_rows >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, schema))
                    pending, pending_rows = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema))
        yield target


def arrow_batches(files: list[Path], schema: Any) -> Iterator[Any]:
    """Record batches of ``files`` in ``schema`` (:func:`widened_schema` of the first). Raises
    :class:`SpoolError` when Arrow cannot read them that way."""
    for f in files:
        try:
            for batch in _batches(f, schema):
                yield batch if batch.schema.equals(schema) else _cast(batch, schema)
        except _arrow_errors() as exc:
            raise SpoolError(f"{f}: {exc}") from exc


def widened_schema(path: Path) -> Any:
    """The first block's inferred schema with integer and null columns as float64. Raises
    :class:`SpoolError` when Arrow cannot read the file."""
    import pyarrow as pa

    try:
        with _reader(path, None) as reader:
            inferred = reader.schema
    except _arrow_errors() as exc:
        raise SpoolError(f"{path}: {exc}") from exc
    widened = [pa.field(f.name, pa.float64()) if pa.types.is_integer(f.type) or pa.types.is_null(f.type) else f
               for f in inferred]
    return pa.schema(widened)


def _batches(path: Path, schema: Any) -> Iterator[Any]:
    with _reader(path, schema) as reader:
        yield from reader


def _cast(batch: Any, schema: Any) -> Any:
    """A later file's batch in the first file's schema (its columns in that order; extra ones dropped)."""
    import pyarrow as pa

    columns = [batch.column(name).cast(field.type) for name, field in zip(schema.names, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


@contextmanager
def _reader(path: Path, schema: Any) -> Iterator[Any]:
    """Arrow's streaming reader of a CSV or JSON Lines file (gzip detected from the name), with
    ``schema``'s column types when given."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    source = pa.input_stream(str(path), compression="detect")
    try:
        if is_json_lines(path):
            parse = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore") if schema \
                else pjson.ParseOptions()
            yield pjson.open_json(source, read_options=pjson.ReadOptions(block_size=BLOCK_BYTES), parse_options=parse)
        else:
            types = dict(zip(schema.names, schema.types, strict=True)) if schema else None
            convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True)  # "" is null, as in pandas
            yield pcsv.open_csv(source, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
                                convert_options=convert)
    finally:
        source.close()
