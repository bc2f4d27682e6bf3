"""Batch input and output edge cases on a real local Spark session: CSV records (quoted newlines,
wrong field counts, per-file headers) and models that emit NaN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlship.batch.job import JobConfig, run_job
from mlship.batch.storage import BatchError, visible_files

pytestmark = pytest.mark.xdist_group("batch-spark")


def job(model: Any, input: Path | str, output: Path | str, run_id: str, **kw: Any) -> JobConfig:
    return JobConfig(model=str(model), input=str(input), output=str(output), run_id=run_id, master="local[2]",
                     progress=False, **kw)


def with_notes(frame: pd.DataFrame, every: int) -> pd.DataFrame:
    """Add a free-text column whose every ``every``-th cell holds quoted newlines, commas and quotes."""
    notes = [f'called {i} times,\nsaid "cancel"\nthen hung up' if i % every == 0 else f"note {i}"
             for i in range(len(frame))]
    return frame.assign(note=notes)


def scored_and_quarantined(summary: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    run = Path(summary["output"]["run_path"])
    quarantine = Path(summary["output"]["quarantine_path"])
    bad = pd.read_parquet(quarantine) if quarantine.exists() else pd.DataFrame(columns=["row_id"])
    return pd.read_parquet(run).set_index("row_id"), bad.set_index("row_id")


def test_quoted_newlines_are_one_record_with_a_unique_row_id(spark: Any, churn_bundle: Path,
                                                             holdout: pd.DataFrame, tmp_path: Path) -> None:
    from mlship.runtime.predictor import Predictor

    frame = with_notes(holdout.iloc[:401].reset_index(drop=True), every=25)  # 17 multi-line records
    source = tmp_path / "in"
    source.mkdir()
    frame.iloc[:200].to_csv(source / "part-0.csv", index=False)  # two files: each has its header
    frame.iloc[200:].to_csv(source / "part-1.csv", index=False)
    physical_lines = sum(len(p.read_text().splitlines()) - 1 for p in source.iterdir())
    assert physical_lines == 401 + 2 * 17  # what a line-based reader counted as rows

    summary = run_job(job(churn_bundle, source, tmp_path / "out", "csv-newlines", id_column="customer_id"),
                      spark=spark)
    counts = summary["counts"]
    assert (counts["input"], counts["scored"], counts["quarantined"]) == (401, 401, 0)
    scored, _ = scored_and_quarantined(summary)
    assert scored.index.is_unique and sorted(scored.index) == sorted(frame["customer_id"])
    assert scored.loc[frame["customer_id"], "note"].tolist() == frame["note"].tolist()  # text intact
    expected = Predictor.load(churn_bundle).score(frame, allow_extra=True).prediction
    np.testing.assert_allclose(scored.loc[frame["customer_id"], "probability_1"].to_numpy(),
                               expected.probabilities[:, 1], atol=1e-6)


def test_rows_with_the_wrong_field_count_are_quarantined_as_http_refuses_them(
        spark: Any, churn_bundle: Path, holdout: pd.DataFrame, tmp_path: Path) -> None:
    from mlship.runtime.predictor import Predictor

    frame = with_notes(holdout.iloc[:120].reset_index(drop=True), every=40)
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    text = source.read_text()
    lines = text.splitlines(keepends=True)
    by_id = {line.split(",", 1)[0]: i for i, line in enumerate(lines)}
    lines[by_id["c00003"]] = lines[by_id["c00003"]].rstrip("\n") + ",surplus\n"  # valid values, extra field
    cells = lines[by_id["c00007"]].rstrip("\n").split(",")
    lines[by_id["c00007"]] = ",".join(cells[:-2]) + "\n"  # two fields short
    lines[by_id["c00011"]] = lines[by_id["c00011"]].rstrip("\n") + ",,\n"  # two empty extra fields
    source.write_text("".join(lines))

    summary = run_job(job(churn_bundle, source, tmp_path / "out", "csv-arity", id_column="customer_id"),
                      spark=spark)
    counts = summary["counts"]
    assert (counts["input"], counts["scored"], counts["quarantined"]) == (120, 117, 3)
    assert counts["quarantine_reasons"] == {"malformed_row": 3}
    assert counts["quarantine_causes"] == {"input": 3, "model": 0}
    scored, quarantined = scored_and_quarantined(summary)
    assert sorted(quarantined.index) == ["c00003", "c00007", "c00011"]
    assert set(quarantined["error_kinds"]) == {"malformed_row"}
    assert quarantined["prediction"].isna().all() and quarantined["probability_1"].isna().all()
    assert "got 13" in quarantined.loc["c00003", "reason"] and "12 fields" in quarantined.loc["c00003", "reason"]
    assert "got 10" in quarantined.loc["c00007", "reason"]
    assert "_malformed" not in "".join(scored.columns) + "".join(quarantined.columns)  # internal column dropped
    # the HTTP path (the schema's CSV reader) refuses exactly these records and accepts the rest
    schema = Predictor.load(churn_bundle).schema
    http = schema.validate_csv(source.read_text(), allow_extra=True)
    refused = {frame.loc[e.row, "customer_id"] for e in http.errors}
    assert refused == set(quarantined.index)
    assert {e.kind for e in http.errors} == {"wrong_arity"}


def test_a_file_whose_header_differs_is_refused_before_writing(spark: Any, churn_bundle: Path,
                                                               holdout: pd.DataFrame, tmp_path: Path) -> None:
    frame = holdout.iloc[:60].reset_index(drop=True)
    source = tmp_path / "in"
    source.mkdir()
    frame.iloc[:30].to_csv(source / "part-0.csv", index=False)
    swapped = list(frame.columns)
    i, j = swapped.index("tenure_months"), swapped.index("age")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    frame.iloc[30:][swapped].to_csv(source / "part-1.csv", index=False)  # same columns, other order
    # Spark takes the schema from one of the files (not necessarily the first name): either is named
    with pytest.raises(BatchError, match=r"headers differ: \S+/part-[01]\.csv has the header \[customer_id, "):
        run_job(job(churn_bundle, source, tmp_path / "out", "csv-header"), spark=spark)
    assert visible_files(tmp_path / "out") == []


def test_non_finite_model_outputs_are_quarantined_and_the_rest_scored(
        spark: Any, churn_bundle: Path, nan_bundle: Path, nan_above: float, holdout: pd.DataFrame,
        tmp_path: Path) -> None:
    from mlship.runtime.predictor import Predictor

    frame = holdout.iloc[:300].reset_index(drop=True)
    nan_rows = [5, 50, 151, 299]
    frame.loc[nan_rows, "monthly_charges"] = nan_above * 3  # a valid input (range not enforced)
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[8, "contract"] = "weekly"  # an input error, counted apart from the model's
    source = tmp_path / "in"
    source.mkdir()
    for k, idx in enumerate(np.array_split(np.arange(len(frame)), 2)):
        frame.iloc[idx].to_parquet(source / f"part-{k}.parquet", index=False)

    summary = run_job(job(Path(str(nan_bundle) + ".tar.gz"), source, tmp_path / "out", "nan",
                          id_column="customer_id", max_records_per_batch=64), spark=spark)
    counts = summary["counts"]
    assert (counts["input"], counts["scored"], counts["quarantined"]) == (300, 295, 5)
    assert counts["quarantine_reasons"] == {"non_finite_output": 4, "unknown_category": 1}
    assert counts["quarantine_causes"] == {"input": 1, "model": 4}
    assert summary["drift"]["rows"] == 295  # NaN outputs stay out of the drift report
    scored, quarantined = scored_and_quarantined(summary)
    nan_ids = frame.loc[nan_rows, "customer_id"].tolist()
    assert sorted(quarantined.index) == sorted([*nan_ids, "c00008"])
    assert (quarantined.loc[nan_ids, "error_kinds"] == "non_finite_output").all()
    assert quarantined.loc[nan_ids, "reason"].str.contains("non-finite").all()
    assert quarantined.loc[nan_ids, ["prediction", "probability_0", "probability_1"]].isna().all().all()
    assert np.isfinite(scored[["probability_0", "probability_1"]].to_numpy()).all()
    # every other row is scored exactly as the unmodified model scores it
    rest = frame.drop(index=[*nan_rows, 8])
    expected = Predictor.load(churn_bundle).score(rest, allow_extra=True).prediction
    got = scored.loc[rest["customer_id"]]
    assert got["prediction"].tolist() == expected.labels.tolist()
    np.testing.assert_allclose(got[["probability_0", "probability_1"]].to_numpy(), expected.probabilities,
                               atol=1e-6)
