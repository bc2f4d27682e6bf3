"""Drift statistics from profile bins vs scipy on the same data, verdicts at small and large sizes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlship.stats.drift import DriftAccumulator, DriftThresholds, compare, ks_pvalue, psi
from mlship.stats.profile import build_profile, categorical_profile, numeric_profile

# Stated tolerances (docs/monitoring.md): KS exact on discrete data (every value on a bin edge);
# on continuous data KS D within 0.01 (one reference bin's mass with 100 bins) and within 0.001
# from 1e5 rows, Wasserstein within 3% (relative) plus 0.002 reference standard deviations.
KS_TOL, KS_TOL_LARGE, W_REL, W_ABS_STD = 0.01, 0.001, 0.03, 0.002


def _profile(**cols: np.ndarray) -> dict:
    numeric = {k: v.dtype.kind in "fiu" for k, v in cols.items()}
    return build_profile(cols, numeric)


def _numeric(ref: np.ndarray, cur: np.ndarray) -> dict:
    return DriftAccumulator({"rows": ref.size, "features": {"x": numeric_profile(ref)}}).update({"x": cur}) \
        .result().features["x"]


CASES = {
    "normal-shift": lambda r, n, m: (r.normal(0, 1, n), r.normal(0.15, 1, m)),
    "same": lambda r, n, m: (r.normal(0, 1, n), r.normal(0, 1, m)),
    "scale": lambda r, n, m: (r.normal(5, 2, n), r.normal(5, 3, m)),
    "lognormal": lambda r, n, m: (r.lognormal(0, 1, n), r.lognormal(0.2, 1, m)),
    "out-of-range": lambda r, n, m: (r.uniform(0, 1, n), r.uniform(0.5, 1.5, m)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(("n_ref", "n_cur"), [(3000, 800), (200_000, 100_000)])
def test_continuous_values_match_scipy(case: str, n_ref: int, n_cur: int) -> None:
    ref, cur = CASES[case](np.random.default_rng(n_ref + len(case)), n_ref, n_cur)
    got = _numeric(ref, cur)
    exact = stats.ks_2samp(ref, cur)
    tol = KS_TOL_LARGE if n_cur >= 100_000 else KS_TOL
    assert got["ks_statistic"] == pytest.approx(exact.statistic, abs=tol)
    # the p-value is scipy's for the statistic found
    assert got["ks_pvalue"] == pytest.approx(ks_pvalue(got["ks_statistic"], n_ref, n_cur), rel=1e-9)
    w = stats.wasserstein_distance(ref, cur)
    assert abs(got["wasserstein"] - w) <= W_REL * w + W_ABS_STD * ref.std()
    assert got["wasserstein_norm"] == pytest.approx(got["wasserstein"] / ref.std())


@pytest.mark.parametrize(("n_ref", "n_cur"), [(500, 300), (3000, 2000), (50_000, 40_000)])
def test_discrete_values_are_exact(n_ref: int, n_cur: int) -> None:
    rng = np.random.default_rng(n_cur)
    ref = rng.poisson(4, n_ref).astype(float)
    cur = rng.poisson(4.4, n_cur).astype(float)
    got = _numeric(ref, cur)
    exact = stats.ks_2samp(ref, cur)
    assert got["ks_statistic"] == pytest.approx(exact.statistic, abs=1e-12)
    # scipy's own computation up to 10,000 effective rows; beyond, Stephens' limit: within 1% of
    # scipy's value for p > 1e-6 and 3% below
    effective = n_ref * n_cur / (n_ref + n_cur)
    rel = 1e-6 if effective <= 10000 else (0.01 if exact.pvalue > 1e-6 else 0.03)
    assert got["ks_pvalue"] == pytest.approx(exact.pvalue, rel=rel, abs=1e-300)
    # exact wherever F_ref - F_cur keeps its sign inside a bin; the rare tail values between
    # the last edges make it approximate only there
    assert got["wasserstein"] == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-4)


def test_psi_and_js_on_the_grouped_reference_bins() -> None:
    rng = np.random.default_rng(3)
    ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.3, 1.2, 10_000)
    got = _numeric(ref, cur)
    # the reported histogram is the 10 equal-mass groups PSI and JS are computed on
    hist = got["histogram"]
    assert len(hist["reference"]) == 10
    edges = np.r_[-np.inf, hist["upper"][:-1], np.inf]
    r = np.histogram(ref, edges)[0]
    c = np.histogram(cur, edges)[0]
    assert np.allclose(r / r.sum(), hist["reference"], atol=1e-3)
    assert got["jensenshannon"] == pytest.approx(jensenshannon(r, c, base=2), abs=2e-3)
    p, q = r / r.sum(), c / c.sum()
    assert got["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=5e-3)


def test_categorical_values_match_scipy_and_count_unseen() -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2])
    cur = np.r_[rng.choice(["a", "b", "c"], 1800, p=[0.4, 0.3, 0.3]), ["new1"] * 150, ["new2"] * 50]
    prof = {"rows": 5000, "features": {"x": categorical_profile(ref)}}
    got = compare(prof, {"x": cur}).features["x"]
    cats = ["a", "b", "c", "new1", "new2"]
    r = np.array([(ref == k).sum() for k in cats])
    c = np.array([(cur == k).sum() for k in cats])
    exact = stats.chi2_contingency(np.vstack([r, c]))
    assert got["chi2_statistic"] == pytest.approx(exact.statistic, rel=1e-9)
    assert got["chi2_pvalue"] == pytest.approx(exact.pvalue, rel=1e-6, abs=1e-300)
    assert got["jensenshannon"] == pytest.approx(jensenshannon(r, c, base=2), rel=1e-9)
    assert got["psi"] == pytest.approx(psi(r, c), rel=1e-12)
    assert got["unseen_categories"] == 2
    assert got["unseen_share"] == pytest.approx(200 / 2000)
    assert got["unseen_examples"] == ["new1", "new2"]
    assert got["drifted"] is True  # 2,000 rows: effect size decides (JS >= 0.1)
    assert got["method"] == "jensenshannon"


def test_only_unseen_categories_is_full_drift() -> None:
    prof = {"rows": 100, "features": {"x": categorical_profile(["a"] * 60 + ["b"] * 40)}}
    got = compare(prof, {"x": np.array(["z"] * 30)}, thresholds={"min_rows": 30}).features["x"]
    assert got["jensenshannon"] == pytest.approx(1.0)
    assert got["unseen_share"] == 1.0 and got["drifted"] is True


def test_known_shift_is_detected_and_nothing_else_at_a_million_rows() -> None:
    n = 1_000_000
    rng = np.random.default_rng(42)
    ref = {"a": rng.normal(0, 1, n), "b": rng.normal(10, 2, n), "c": rng.lognormal(0, 0.5, n),
           "d": rng.integers(0, 100, n), "e": rng.poisson(3, n),
           "f": rng.choice(np.array(["x", "y", "z"]), n, p=[0.5, 0.3, 0.2])}
    cur = {"a": rng.normal(0.25, 1, n),            # shifted: 0.25 sd
           "b": rng.normal(10, 3, n),              # shifted: wider
           "c": rng.lognormal(0, 0.5, n), "d": rng.integers(0, 100, n), "e": rng.poisson(3, n),
           "f": rng.choice(np.array(["x", "y", "z"]), n, p=[0.3, 0.3, 0.4])}  # shifted
    report = compare(_profile(**ref), cur)
    assert sorted(report.drifted_features) == ["a", "b", "f"]
    # exact p-values would flag noise at this size: the effect sizes of unshifted features stay tiny
    for name in ("c", "d", "e"):
        assert report.features[name]["method"] == "wasserstein"
        assert report.features[name]["wasserstein_norm"] < 0.01
    assert report.share == pytest.approx(0.5) and report.dataset_drift is True


def test_small_samples_use_p_values() -> None:
    rng = np.random.default_rng(7)
    prof = _profile(x=rng.normal(0, 1, 5000), k=rng.choice(np.array(["u", "v"]), 5000))
    same = compare(prof, {"x": rng.normal(0, 1, 300), "k": rng.choice(np.array(["u", "v"]), 300)})
    assert same.features["x"]["method"] == "ks" and same.features["k"]["method"] == "chi2"
    assert same.drifted_features == []
    shifted = compare(prof, {"x": rng.normal(0.5, 1, 300), "k": rng.choice(np.array(["u", "v"]), 300, p=[.8, .2])})
    assert shifted.drifted_features == ["x", "k"]
    assert shifted.features["x"]["ks_pvalue"] < 1e-6


def test_streaming_merge_and_pickle_equal_one_pass() -> None:
    rng = np.random.default_rng(9)
    prof = _profile(x=rng.normal(0, 1, 10_000), k=rng.choice(np.array(["u", "v", "w"]), 10_000))
    cur = {"x": rng.normal(0.2, 1, 30_000), "k": rng.choice(np.array(["u", "v", "w", "new"]), 30_000)}
    whole = compare(prof, cur).to_dict()
    parts = []
    for i in range(3):  # e.g. three Spark partitions, each accumulator shipped by pickle
        acc = DriftAccumulator(prof)
        for j in range(0, 10_000, 2_500):
            sl = slice(i * 10_000 + j, i * 10_000 + j + 2_500)
            acc.update({"x": cur["x"][sl], "k": cur["k"][sl]})
        parts.append(pickle.loads(pickle.dumps(acc)))
    merged = parts[0].merge(parts[1]).merge(parts[2]).result().to_dict()
    for name in ("x", "k"):
        for key in ("ks_statistic", "wasserstein", "psi", "jensenshannon", "chi2_statistic"):
            if key in whole["features"][name]:
                assert merged["features"][name][key] == pytest.approx(whole["features"][name][key], rel=1e-9)
    assert merged["rows"] == 30_000


def test_dataframe_and_arrow_inputs() -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(1)
    prof = _profile(x=rng.normal(0, 1, 2000), k=rng.choice(np.array(["u", "v"]), 2000))
    df = pd.DataFrame({"x": rng.normal(0, 1, 1500), "k": rng.choice(["u", "v"], 1500), "extra": 1})
    a = compare(prof, df).to_dict()
    b = compare(prof, pa.Table.from_pandas(df)).to_dict()
    c = compare(prof, {"x": df["x"].to_numpy(), "k": df["k"].to_numpy()}).to_dict()
    assert a["features"] == b["features"] == c["features"]
    assert a["rows"] == 1500


def test_thresholds_overrides_nulls_and_missing_features() -> None:
    rng = np.random.default_rng(2)
    prof = _profile(x=rng.normal(0, 1, 5000), y=rng.normal(0, 1, 5000), z=rng.normal(0, 1, 5000))
    x = rng.normal(0.05, 1, 5000)
    y = rng.normal(0, 1, 5000)
    y[:1000] = np.nan  # 20% nulls
    report = compare(prof, {"x": x, "y": y}, thresholds={"features": {"x": {"method": "ks_stat", "threshold": 0.01}}})
    assert report.features["x"]["method"] == "ks_stat" and report.features["x"]["drifted"] is True
    assert report.features["y"]["null_rate_change"] == pytest.approx(0.2)
    assert report.features["y"]["drifted"] is True and "null rate" in report.features["y"]["reason"]
    assert report.features["z"]["status"] == "missing" and report.features["z"]["drifted"] is True
    quiet = compare(prof, {"x": x, "y": y, "z": x}, thresholds={"null_rate_change": 0.5})
    assert quiet.drifted_features == []
    with pytest.raises(ValueError, match="not available for numeric"):
        compare(prof, {"x": x}, thresholds={"features": {"x": {"method": "chi2"}}})
    with pytest.raises(ValueError, match="unknown drift threshold"):
        DriftThresholds.from_dict({"sharee": 0.3})


def test_non_numeric_values_in_numeric_columns_count_as_nulls() -> None:
    prof = {"rows": 4, "features": {"x": numeric_profile(np.array([1.0, 2.0, 3.0, 4.0]))}}
    got = compare(prof, {"x": np.array([1, "oops", None, 3.5], dtype=object)}).features["x"]
    assert got["null_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["normal", "poisson", "with-nulls", "constant"])
def test_profile_bins_agree_with_the_reference_functions(kind: str) -> None:
    from mlship.stats.profile import bin_counts, bin_sums, edge_counts

    rng = np.random.default_rng(4)
    x = {"normal": rng.normal(size=50_000), "poisson": rng.poisson(3, 20_000).astype(float),
         "with-nulls": np.r_[rng.normal(size=1000), [np.nan] * 10], "constant": np.ones(50)}[kind]
    prof = numeric_profile(x)
    finite = x[np.isfinite(x)]
    edges = np.asarray(prof["bin_edges"])
    assert prof["bin_counts"] == bin_counts(finite, edges).tolist()
    assert prof["edge_counts"] == edge_counts(finite, edges).tolist()
    assert np.allclose(prof["bin_sums"], bin_sums(finite, edges), rtol=1e-9, atol=1e-6)
    same = compare({"rows": finite.size, "features": {"x": prof}}, {"x": finite}).features["x"]
    assert same["ks_statistic"] == 0.0 and same["wasserstein"] == pytest.approx(0.0, abs=1e-9)
