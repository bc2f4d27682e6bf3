"""What makes ``mlship drift`` fast must not change what it says: Arrow buffers read as pyarrow
reads them (nulls, offsets, chunks), categories counted in Arrow as in Python, the Kolmogorov tail
and the chi-square test as scipy computes them, columns sketched on several threads as on one, and
a Parquet comparison of numeric columns that never imports pandas, scipy.special or matplotlib
(each costs 0.15-0.4 s of a ~1 s run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from mlship.monitoring import tables
from mlship.stats.drift import kolmogorov_sf

_TYPES = [pa.float64(), pa.float32(), pa.int64(), pa.int32(), pa.int16(), pa.int8(), pa.uint64(), pa.uint32(),
          pa.uint16(), pa.uint8()]


@settings(max_examples=200, deadline=None)
@given(data=st.data(), arrow_type=st.sampled_from(_TYPES), nulls=st.booleans(), chunks=st.integers(1, 3))
def test_arrow_buffers_read_as_pyarrow_reads_them(data: st.DataObject, arrow_type: pa.DataType, nulls: bool,
                                                   chunks: int) -> None:
    bits = arrow_type.bit_width
    numbers = (st.floats(width=32 if bits == 32 else 64, allow_nan=False) if pa.types.is_floating(arrow_type)
               else st.integers(0 if pa.types.is_unsigned_integer(arrow_type) else -(2 ** (bits - 1)),
                                2 ** (bits - (0 if pa.types.is_unsigned_integer(arrow_type) else 1)) - 1))
    values = st.one_of(st.none(), numbers) if nulls else numbers
    parts = [pa.array(data.draw(st.lists(values, max_size=40)), type=arrow_type) for _ in range(chunks)]
    column = pa.chunked_array(parts, type=arrow_type)
    start = data.draw(st.integers(0, len(column)))
    sliced = column.slice(start, data.draw(st.integers(0, len(column) - start)))  # offsets inside the buffers
    got = tables.arrow_to_numpy(sliced)
    expected = sliced.to_numpy()
    assert len(got) == len(expected)
    assert np.array_equal(np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64), equal_nan=True)


def test_other_arrow_types_fall_back_to_pyarrow() -> None:
    column = pa.chunked_array([pa.array(["a", None, "b"]), pa.array([True, None], type=pa.bool_()).cast(pa.string())])
    assert tables.arrow_to_numpy(column).tolist() == ["a", None, "b", "true", None]
    assert tables.arrow_to_numpy(pa.array([True, False, None])).tolist() == [True, False, None]


@settings(max_examples=500, deadline=None)
@given(x=st.floats(-1.0, 40.0, allow_nan=False))
def test_the_kolmogorov_tail_is_scipys(x: float) -> None:
    expected = float(special.kolmogorov(x))
    assert kolmogorov_sf(x) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def _write(folder: Path, seed: int, shift: float) -> Path:
    rng = np.random.default_rng(seed)
    n = 30_000
    frame = {"a": rng.normal(shift, 1, n), "b": rng.integers(0, 9, n), "c": rng.exponential(1 + shift, n),
             "d": pa.array(np.where(rng.random(n) < 0.1, None, rng.normal(size=n)).tolist(), type=pa.float64()),
             "e": rng.choice(["x", "y", "z"], n)}
    path = folder / f"data-{seed}.parquet"
    pq.write_table(pa.table(frame), path, row_group_size=7_000)
    return path


def test_columns_on_threads_give_the_report_of_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlship import api

    ref, cur = _write(tmp_path, 1, 0.0), _write(tmp_path, 2, 0.4)
    reports = []
    for workers in (1, 3):
        monkeypatch.setattr(tables, "column_workers", lambda workers=workers: workers)
        found = api.drift(ref, cur, batch_rows=4_000)
        reports.append(found.report["drift"])
    assert reports[0] == reports[1]
    assert reports[0]["drifted_features"] == ["a", "c"] and reports[0]["features"]["d"]["null_rate"] > 0.05


def test_a_parquet_comparison_imports_no_pandas_scipy_special_or_matplotlib(tmp_path: Path) -> None:
    ref, cur = _write(tmp_path, 3, 0.0), _write(tmp_path, 4, 0.3)
    ref_num, cur_num = tmp_path / "ref.parquet", tmp_path / "cur.parquet"
    for source, target in ((ref, ref_num), (cur, cur_num)):  # numeric columns only (strings need pyarrow's pandas path)
        pq.write_table(pq.read_table(source).drop_columns(["e"]), target)
    script = ("import json, sys\nfrom mlship import api\n"
              f"found = api.drift({str(ref_num)!r}, {str(cur_num)!r}, out={str(tmp_path / 'report')!r})\n"
              "print(json.dumps({'drifted': found.report['drift']['drifted_features'], 'modules': "
              "sorted(m for m in ('pandas', 'scipy.special', 'scipy.stats', 'matplotlib') if m in sys.modules)}))")
    out = json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                    text=True).stdout)
    assert out == {"drifted": ["a", "c"], "modules": []}
    assert (tmp_path / "report" / "report.html").read_text().count('<svg class="chart"') == 4


@settings(max_examples=300, deadline=None)
@given(data=st.data(), k=st.integers(2, 12))
def test_the_chi_square_test_of_categories_is_scipys(data: st.DataObject, k: int) -> None:
    from scipy import stats

    from mlship.stats.drift import _chi2

    counts = st.lists(st.integers(0, 10_000), min_size=k, max_size=k)
    ref, cur = np.array(data.draw(counts), dtype=float), np.array(data.draw(counts), dtype=float)
    ref[0] += 1  # both rows non-empty, as in a drift report (a profile's category, a non-empty window)
    cur[-1] += 1
    keep = (ref + cur) > 0
    statistic, pvalue = _chi2(ref, cur)
    expected = stats.chi2_contingency(np.vstack([ref[keep], cur[keep]]))
    assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(values=st.one_of(st.lists(st.one_of(st.none(), st.text(max_size=5)), max_size=60),
                        st.lists(st.one_of(st.none(), st.booleans()), max_size=60)),
       dictionary=st.booleans(), max_categories=st.integers(1, 6))
def test_categories_counted_in_arrow_equal_categories_counted_in_python(values: list, dictionary: bool,
                                                                       max_categories: int) -> None:
    from mlship.stats.drift import _CategoricalSketch

    arrow = pa.array(values, type=pa.bool_() if values and all(isinstance(v, bool | None) for v in values)
                     and any(isinstance(v, bool) for v in values) else None)
    if dictionary:
        arrow = arrow.dictionary_encode()
    in_arrow, in_python = _CategoricalSketch(max_categories), _CategoricalSketch(max_categories)
    in_arrow.update(arrow)
    in_python.update(np.array(values, dtype=object))
    assert (in_arrow.total, in_arrow.nulls) == (in_python.total, in_python.nulls)
    assert sum(in_arrow.counts.values()) == sum(in_python.counts.values())
    if len(set(values) - {None}) <= max_categories:  # no overflow: the same categories (overflow order may differ)
        assert in_arrow.counts == in_python.counts


def _mixed_frame(rows: int, seed: int, shift: float) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": np.where(rng.random(rows) < 0.05, np.nan, rng.normal(shift, 1, rows)),
                         "n": rng.integers(0, 40, rows), "s": rng.choice(["red", "green", "blue", None], rows),
                         "y": rng.exponential(1 + shift, rows)})


def test_csv_and_json_lines_read_by_arrow_give_the_parquet_report(tmp_path: Path) -> None:
    from mlship import api

    reports = {}
    for suffix in ("parquet", "csv", "jsonl"):
        for name, frame in (("ref", _mixed_frame(6000, 5, 0.0)), ("cur", _mixed_frame(4000, 6, 0.4))):
            path = tmp_path / f"{name}.{suffix}"
            if suffix == "parquet":
                frame.to_parquet(path, index=False)
            elif suffix == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_json(path, orient="records", lines=True)
        reports[suffix] = api.drift(tmp_path / f"ref.{suffix}", tmp_path / f"cur.{suffix}").report["drift"]
    for suffix in ("csv", "jsonl"):
        assert reports[suffix]["rows"] == reports["parquet"]["rows"] == 4000
        assert reports[suffix]["drifted_features"] == reports["parquet"]["drifted_features"]
        for name, expected in reports["parquet"]["features"].items():
            got = reports[suffix]["features"][name]
            for key in ("null_rate", "ks_statistic", "psi", "jensenshannon", "chi2_pvalue"):
                assert got.get(key) == pytest.approx(expected.get(key), rel=1e-9, abs=1e-12), (suffix, name, key)


def test_a_numeric_column_that_turns_to_text_far_down_is_read_by_pandas_and_counted(tmp_path: Path) -> None:
    """Arrow fixes a column's type from the first block; text much further down makes it give up,
    and the file is read again from the start by pandas, which counts the text as invalid."""
    from mlship import api
    from mlship.monitoring.spool import SpoolError, arrow_batches, widened_schema

    rows = 120_000  # several 1 MB blocks: the bad value is far past the block that fixed the type
    frame = _mixed_frame(rows, 7, 0.0).astype({"x": object})
    frame.loc[rows - 10, "x"] = "oops"
    frame.to_csv(tmp_path / "cur.csv", index=False)
    _mixed_frame(rows, 8, 0.0).to_csv(tmp_path / "ref.csv", index=False)
    with pytest.raises(SpoolError, match="oops"):
        list(arrow_batches([tmp_path / "cur.csv"], widened_schema(tmp_path / "cur.csv")))
    as_current = api.drift(tmp_path / "ref.csv", tmp_path / "cur.csv").report["drift"]  # in row batches
    assert as_current["rows"] == rows
    assert as_current["features"]["x"]["null_rate"] == pytest.approx((int(frame["x"].isna().sum()) + 1) / rows)
    as_reference = api.drift(tmp_path / "cur.csv", tmp_path / "cur.csv").report["drift"]  # read whole
    assert as_reference["rows"] == rows and as_reference["features"]["x"]["type"] == "categorical"  # text in it


def test_an_integer_column_with_decimals_further_down_stays_on_the_arrow_path(tmp_path: Path) -> None:
    from mlship.monitoring.spool import arrow_batches, widened_schema

    rows = 120_000
    frame = _mixed_frame(rows, 9, 0.0).astype({"n": object})
    frame.loc[rows - 5, "n"] = 1.5
    frame.to_csv(tmp_path / "cur.csv", index=False)
    batches = list(arrow_batches([tmp_path / "cur.csv"], widened_schema(tmp_path / "cur.csv")))
    assert sum(len(b) for b in batches) == rows and str(batches[0].schema.field("n").type) == "double"
