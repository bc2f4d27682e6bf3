"""The Spark job end to end on a real local Spark session: quarantine, parity, reruns, S3 staging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlship.batch.job import JobConfig, run_job
from mlship.batch.storage import BatchError, visible_files

# every Spark test on one xdist worker (make test uses --dist loadgroup): one SparkSession
pytestmark = pytest.mark.xdist_group("batch-spark")

# row position in the input -> (column, bad value, expected error kind)
BAD_ROWS = {
    3: ("contract", "weekly", "unknown_category"),
    7: ("age", 500, "out_of_range"),
    11: ("support_calls", 1.5, "wrong_type"),
    13: ("monthly_charges", np.inf, "not_finite"),
    17: ("tenure_months", np.nan, "null_not_allowed"),
    19: ("gender", None, "null_not_allowed"),
    23: ("age", -3, "out_of_range"),
}


def write_parquet(frame: pd.DataFrame, directory: Path, files: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(np.array_split(np.arange(len(frame)), files)):
        frame.iloc[idx].to_parquet(directory / f"part-{i:03d}.parquet", index=False)
    return directory


def with_bad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    for column in {c for c, _, _ in BAD_ROWS.values()}:
        if any(isinstance(v, float) for c, v, _ in BAD_ROWS.values() if c == column):
            bad[column] = bad[column].astype(np.float64)
        if bad[column].dtype == object:
            bad[column] = bad[column].astype(object)
    for row, (column, value, _) in BAD_ROWS.items():
        bad.loc[row, column] = value
    return bad


def job(model: Any, input: Path | str, output: Path | str, run_id: str, **kw: Any) -> dict[str, Any]:
    return JobConfig(model=str(model), input=str(input), output=str(output), run_id=run_id, master="local[2]",
                     progress=False, **kw)


@pytest.fixture(scope="module")
def bad_run(spark: Any, strict_bundle: Path, holdout: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[dict[str, Any], pd.DataFrame, Path]:
    """One run over Parquet input (3 files) with injected bad rows of every kind."""
    base = tmp_path_factory.mktemp("bad-run")
    frame = with_bad_rows(holdout.iloc[:600].reset_index(drop=True))
    source = write_parquet(frame, base / "in", files=3)
    tarball = Path(str(strict_bundle) + ".tar.gz")
    summary = run_job(job(tarball, source, base / "out", "2026-11-23", id_column="customer_id",
                          max_records_per_batch=128), spark=spark)
    return summary, frame, base / "out"


def test_counts_reconcile_and_every_bad_row_is_quarantined_with_its_reason(bad_run: Any) -> None:
    summary, frame, out = bad_run
    counts = summary["counts"]
    assert counts["input"] == len(frame) == counts["scored"] + counts["quarantined"]
    assert counts["quarantined"] == len(BAD_ROWS)
    assert counts["reconciled"] is True
    quarantine = pd.read_parquet(Path(summary["output"]["quarantine_path"]))
    assert len(quarantine) == len(BAD_ROWS)
    by_id = quarantine.set_index("row_id")
    for row, (column, _, kind) in BAD_ROWS.items():
        record = by_id.loc[frame.loc[row, "customer_id"]]
        assert kind in record["error_kinds"].split(","), (row, record["error_kinds"])
        assert column in record["reason"]
        assert pd.isna(record["prediction"])
    assert set(summary["counts"]["quarantine_reasons"]) == {k for _, _, k in BAD_ROWS.values()}
    assert summary["counts"]["quarantine_reasons"]["out_of_range"] >= 2


def test_batch_predictions_equal_the_predictors(bad_run: Any, strict_bundle: Path) -> None:
    from mlship.runtime.predictor import Predictor

    summary, frame, out = bad_run
    scored = pd.read_parquet(Path(summary["output"]["run_path"])).set_index("row_id")
    reference = Predictor.load(strict_bundle).score(frame, allow_extra=True)
    valid_ids = frame.loc[reference.valid, "customer_id"].to_numpy()
    assert sorted(scored.index) == sorted(valid_ids)
    got = scored.loc[valid_ids]
    assert got["prediction"].to_numpy().tolist() == reference.prediction.labels.tolist()
    np.testing.assert_allclose(got[["probability_0", "probability_1"]].to_numpy(),
                               reference.prediction.probabilities, rtol=0, atol=1e-6)  # float32 ORT
    assert set(got["model_version"]) == {"7"} and set(got["model_name"]) == {"churn"}
    # passthrough columns survive (ids and labels for later joins)
    assert (got["churned"].to_numpy() == frame.set_index("customer_id").loc[valid_ids, "churned"].to_numpy()).all()


def test_summary_records_model_paths_durations_and_drift(bad_run: Any) -> None:
    summary, frame, out = bad_run
    on_disk = json.loads((out / "run_id=2026-11-23" / "_summary.json").read_text())
    assert on_disk["counts"] == summary["counts"]
    assert summary["model"]["name"] == "churn" and summary["model"]["version"] == "7"
    assert summary["input"]["format"] == "parquet" and summary["input"]["rows"] == len(frame)
    assert summary["durations_s"]["score_write_s"] > 0 and summary["throughput_rows_per_s"] > 0
    drift = summary["drift"]
    assert drift["rows"] == summary["counts"]["scored"]  # drift covers the scored rows only
    assert set(drift["features"]) == {"tenure_months", "monthly_charges", "total_charges", "support_calls",
                                      "age", "contract", "payment_method", "internet_service", "gender"}
    assert "label" in drift["predictions"] and "score" in drift["predictions"]
    assert (out / "run_id=2026-11-23" / "_SUCCESS").is_file()
    assert sorted(summary["output"]["files"]) == sorted(
        p.relative_to(out / "run_id=2026-11-23").as_posix()
        for p in (out / "run_id=2026-11-23").rglob("*.parquet"))


def test_drift_of_a_shifted_batch_is_flagged(spark: Any, churn_bundle: Path, tmp_path: Path) -> None:
    from mlship.local.datasets import make_churn

    shifted = make_churn(3000, seed=5, shift=1.0)
    source = write_parquet(shifted, tmp_path / "in", files=2)
    summary = run_job(job(churn_bundle, source, tmp_path / "out", "shifted"), spark=spark)
    drifted = set(summary["drift"]["drifted_features"])
    assert {"monthly_charges", "support_calls"} <= drifted
    assert "age" not in drifted and "gender" not in drifted


def test_csv_input_parses_numbers_and_quarantines_text(spark: Any, strict_bundle: Path, holdout: pd.DataFrame,
                                                       tmp_path: Path) -> None:
    from mlship.runtime.predictor import Predictor

    frame = holdout.iloc[:200].reset_index(drop=True)
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    lines = source.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[5].split(",")
    cells[header.index("age")] = "forty"  # row 4: text in a numeric field
    lines[5] = ",".join(cells)
    cells = lines[9].split(",")
    cells[header.index("monthly_charges")] = ""  # row 8: empty cell in a non-nullable field
    lines[9] = ",".join(cells)
    source.write_text("\n".join(lines) + "\n")
    summary = run_job(job(strict_bundle, source, tmp_path / "out", "csv-1", id_column="customer_id"), spark=spark)
    assert summary["input"]["format"] == "csv"
    assert summary["counts"] == {**summary["counts"], "input": 200, "scored": 198, "quarantined": 2}
    quarantine = pd.read_parquet(Path(summary["output"]["quarantine_path"])).set_index("row_id")
    assert quarantine.loc["c00004", "error_kinds"] == "wrong_type"
    assert '"forty"' in quarantine.loc["c00004", "reason"]
    assert quarantine.loc["c00008", "error_kinds"] == "null_not_allowed"
    scored = pd.read_parquet(Path(summary["output"]["run_path"])).set_index("row_id")
    expected = Predictor.load(strict_bundle).score(frame.drop(index=[4, 8]), allow_extra=True)
    got = scored.loc[frame.drop(index=[4, 8])["customer_id"]]
    assert got["prediction"].tolist() == expected.prediction.labels.tolist()
    np.testing.assert_allclose(got["probability_1"].to_numpy(), expected.prediction.probabilities[:, 1], atol=1e-6)


def test_rerun_replaces_never_duplicates(spark: Any, churn_bundle: Path, holdout: pd.DataFrame,
                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = write_parquet(holdout.iloc[:300], tmp_path / "a", files=2)
    second = write_parquet(holdout.iloc[300:550], tmp_path / "b", files=2)
    one = run_job(job(churn_bundle, first, out, "daily"), spark=spark)
    old_files = set(visible_files(out))
    other = run_job(job(churn_bundle, first, out, "other-day"), spark=spark)
    assert one["replaced_previous"] is False and other["replaced_previous"] is False
    two = run_job(job(churn_bundle, second, out, "daily"), spark=spark)
    assert two["replaced_previous"] is True
    assert not (old_files & set(visible_files(out)))  # the first attempt's files are gone
    dataset = pd.read_parquet(out)  # a reader of the output root: every run, partitioned by run_id
    assert dataset.groupby("run_id", observed=True).size().to_dict() == {"daily": 250, "other-day": 300}
    again = run_job(job(churn_bundle, second, out, "daily", id_column="customer_id"), spark=spark)
    daily = pd.read_parquet(Path(again["output"]["run_path"]))
    assert len(daily) == 250 and daily["row_id"].is_unique
    assert sorted(daily["row_id"]) == sorted(holdout.iloc[300:550]["customer_id"])
    assert not list((out / "_staging").glob("daily-*"))  # no staging left behind


def test_missing_feature_column_fails_before_writing(spark: Any, churn_bundle: Path, holdout: pd.DataFrame,
                                                     tmp_path: Path) -> None:
    source = write_parquet(holdout.iloc[:50].drop(columns=["age"]), tmp_path / "in", files=1)
    with pytest.raises(BatchError, match=r"missing feature columns \['age'\]"):
        run_job(job(churn_bundle, source, tmp_path / "out", "r"), spark=spark)
    assert visible_files(tmp_path / "out") == []


def test_bad_run_id_and_tampered_bundle_are_refused(spark: Any, churn_bundle: Path, holdout: pd.DataFrame,
                                                    tmp_path: Path) -> None:
    import shutil

    from mlship.errors import VerificationError

    source = write_parquet(holdout.iloc[:20], tmp_path / "in", files=1)
    with pytest.raises(BatchError, match="run id"):
        run_job(job(churn_bundle, source, tmp_path / "out", "../escape"), spark=spark)
    tampered = tmp_path / "bundle"
    shutil.copytree(churn_bundle, tampered)
    (tampered / "golden.json").write_text((tampered / "golden.json").read_text().replace("1", "2", 1))
    with pytest.raises(VerificationError, match="golden.json"):
        run_job(job(tampered, source, tmp_path / "out", "r"), spark=spark)
    assert visible_files(tmp_path / "out") == []


def test_s3_input_and_output_are_staged_through_boto3(spark: Any, aws: None, churn_bundle: Path,
                                                      holdout: pd.DataFrame, tmp_path: Path) -> None:
    # In-process moto (mock_aws): only the driver talks to S3; Spark reads/writes local staging.
    from mlship.aws.clients import client

    s3 = client("s3")
    s3.create_bucket(Bucket="batch-s3-test")
    source = write_parquet(holdout.iloc[:120], tmp_path / "in", files=2)
    for path in source.iterdir():
        s3.upload_file(str(path), "batch-s3-test", f"landing/2026-11-23/{path.name}")
    s3.upload_file(str(churn_bundle) + ".tar.gz", "batch-s3-test", "models/churn-1.tar.gz")
    cfg = job("s3://batch-s3-test/models/churn-1.tar.gz", "s3://batch-s3-test/landing/2026-11-23",
              "s3://batch-s3-test/scores", "r1")
    first = run_job(cfg, spark=spark)
    keys1 = {o["Key"] for o in s3.list_objects_v2(Bucket="batch-s3-test", Prefix="scores/")["Contents"]}
    assert first["output"]["run_path"] == "s3://batch-s3-test/scores/run_id=r1/"
    assert "scores/run_id=r1/_SUCCESS" in keys1 and "scores/run_id=r1/_summary.json" in keys1
    summary = json.loads(s3.get_object(Bucket="batch-s3-test", Key="scores/run_id=r1/_summary.json")["Body"].read())
    assert summary["counts"]["input"] == 120 == summary["counts"]["scored"]
    assert first["replaced_previous"] is False
    second = run_job(cfg, spark=spark)
    assert second["replaced_previous"] is True
    keys2 = {o["Key"] for o in s3.list_objects_v2(Bucket="batch-s3-test", Prefix="scores/")["Contents"]}
    data2 = {k for k in keys2 if k.endswith(".parquet")}
    assert data2 == {f"scores/run_id=r1/{f}" for f in second["output"]["files"]}  # previous attempt deleted
    assert not (data2 & keys1) and not [k for k in keys2 if "_staging" in k]


def test_the_python_api_runs_the_same_job(spark: Any, churn_bundle: Path, tmp_path: Path) -> None:
    import mlship.batch

    from mlship.local.datasets import make_churn

    source = write_parquet(make_churn(800, seed=6), tmp_path / "in", files=1)
    summary = mlship.batch.run(str(churn_bundle), str(source), str(tmp_path / "out"), "api-run", spark=spark,
                               progress=False)
    assert summary["counts"]["scored"] == 800 and summary["counts"]["reconciled"] is True
    assert Path(summary["output"]["run_path"]).exists()
