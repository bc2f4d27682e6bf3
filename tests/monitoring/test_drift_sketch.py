"""The binned KS statistic and its stated bound: for any reference and current column the exact
two-sample KS statistic (``scipy.stats.ks_2samp``) lies in ``[ks_statistic, ks_statistic +
ks_error_bound]``; random, heavy-tailed, tied and constant columns, and a hypothesis generator of
arbitrary ones. And ``mlship drift`` of two Parquet datasets (read one column at a time) gives
the same report as the same data as CSV (read whole, in row batches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlship.stats.drift import DriftAccumulator
from mlship.stats.profile import build_profile

BINS = (4, 100, 2000)


def _check(reference: np.ndarray, current: np.ndarray, n_bins: int) -> None:
    profile = build_profile({"x": reference}, {"x": True}, None, n_bins)
    got = DriftAccumulator(profile).update({"x": current}).result({"min_rows": 1}).features["x"]
    exact = float(stats.ks_2samp(reference, current).statistic)
    assert got["ks_statistic"] <= exact + 1e-12, (got["ks_statistic"], exact)
    assert exact <= got["ks_statistic"] + got["ks_error_bound"] + 1e-12, (got, exact)


def _columns(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = 5000
    if kind == "normal shifted":
        return rng.normal(size=n), rng.normal(0.3, 1.2, n)
    if kind == "heavy tails":
        return rng.standard_cauchy(n), rng.standard_cauchy(n) * 2 + 1
    if kind == "many ties":
        return rng.integers(0, 5, n).astype(float), rng.integers(1, 7, n).astype(float)
    if kind == "ties, current between them":
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 5, n) + 0.5
    if kind == "constant":
        return np.full(n, 3.0), np.full(n, 3.0)
    if kind == "constant, current elsewhere":
        return np.full(n, 3.0), rng.normal(3, 1, n)
    if kind == "current outside the range":
        return rng.uniform(0, 1, n), rng.uniform(2, 3, n)
    raise AssertionError(kind)


@pytest.mark.parametrize("n_bins", BINS)
@pytest.mark.parametrize("kind", ["normal shifted", "heavy tails", "many ties", "ties, current between them",
                                  "constant", "constant, current elsewhere", "current outside the range"])
def test_exact_ks_lies_within_the_stated_bound(kind: str, n_bins: int) -> None:
    _check(*_columns(kind, np.random.default_rng(7)), n_bins)


def test_the_bound_is_tight_with_many_bins_on_continuous_data() -> None:
    rng = np.random.default_rng(8)
    reference, current = rng.normal(size=200_000), rng.normal(0.1, 1.0, 200_000)
    profile = build_profile({"x": reference}, {"x": True}, None, 2000)
    got = DriftAccumulator(profile).update({"x": current}).result().features["x"]
    assert got["ks_error_bound"] < 0.002
    assert abs(got["ks_statistic"] - stats.ks_2samp(reference, current).statistic) < 0.002


_values = st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False, width=32)),
                   min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(reference=_values, current=_values, n_bins=st.sampled_from(BINS))
def test_any_columns_keep_the_bound(reference: list[float], current: list[float], n_bins: int) -> None:
    _check(np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64), n_bins)


def _flat(value: object, path: str = "") -> dict[str, object]:
    """Every leaf of a JSON document by its path (numbers compared approximately)."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}[{i}]").items()}
    return {path: value}


def test_parquet_read_by_column_gives_the_csv_report(tmp_path: Path) -> None:
    import pandas as pd

    from mlship import api

    rng = np.random.default_rng(9)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.integers(0, 4, 3000), "c": rng.choice(["x", "y"], 3000)})
    cur = pd.DataFrame({"a": rng.normal(0.5, 1, 2000), "b": rng.integers(0, 4, 2000),
                        "c": rng.choice(["x", "z"], 2000)})
    for frame, name in ((ref, "ref"), (cur, "cur")):
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    columnwise = api.drift(tmp_path / "ref.parquet", tmp_path / "cur.parquet", batch_rows=700).report["drift"]
    rowwise = api.drift(tmp_path / "ref.csv", tmp_path / "cur.csv", batch_rows=700).report["drift"]
    assert columnwise["rows"] == rowwise["rows"] == 2000
    assert _flat(columnwise["features"]) == pytest.approx(_flat(rowwise["features"]), rel=1e-9)  # CSV: text floats
    assert columnwise["drifted_features"] == rowwise["drifted_features"] == ["a", "c"]


def test_a_wide_report_draws_the_drifted_features_first_and_says_how_many_are_left_out() -> None:
    from mlship.monitoring import html

    rng = np.random.default_rng(10)
    names = [f"f{i:02d}" for i in range(30)]
    profile = build_profile({n: rng.normal(size=2000) for n in names}, dict.fromkeys(names, True))
    current = {n: rng.normal(1.0 if n == "f29" else 0.0, 1.0, 2000) for n in names}
    drift = DriftAccumulator(profile).update(current).result().to_dict()
    page = html.render({"drift": drift, "model": {"name": "wide", "version": "1"}})
    assert page.count('<svg class="chart"') == html.MAX_HISTOGRAMS
    assert "<h3>f29 <span" in page  # the one drifted feature, although it comes last
    assert f"{30 - html.MAX_HISTOGRAMS} more features without a histogram" in page


@settings(max_examples=200, deadline=None)
@given(values=_values, bins=st.integers(1, 300))
def test_quantiles_of_sorted_values_equal_numpys(values: list[float], bins: int) -> None:
    from mlship.stats.profile import QUANTILES, sorted_quantiles

    ordered = np.sort(np.asarray(values, dtype=np.float64))
    for probabilities in (np.linspace(0.0, 1.0, bins + 1), QUANTILES):
        assert np.array_equal(sorted_quantiles(ordered, probabilities), np.quantile(ordered, probabilities))
