"""``--explain`` on the Spark job (a real local session): each scored row carries its base value and
one contribution column per field, equal to ``Predictor.explain`` on the same rows; quarantined
rows carry none; the summary says which explainer wrote them; an input column that the output
would overwrite is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlship.batch.job import run_job
from mlship.batch.storage import BatchError
from typer.testing import CliRunner

from batch.test_job import job, with_bad_rows, write_parquet

pytestmark = pytest.mark.xdist_group("batch-spark")


@pytest.fixture(scope="module")
def explained_run(spark: Any, churn_bundle: Path, holdout: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[dict[str, Any], pd.DataFrame]:
    base = tmp_path_factory.mktemp("explained")
    frame = with_bad_rows(holdout.iloc[:300].reset_index(drop=True))
    source = write_parquet(frame, base / "in", files=2)
    summary = run_job(job(churn_bundle, source, base / "out", "explained", id_column="customer_id",
                          max_records_per_batch=64, explain=True), spark=spark)
    return summary, frame


def test_contribution_columns_equal_the_predictors_explanations(explained_run: Any, churn_bundle: Path) -> None:
    from mlship.runtime.predictor import Predictor

    summary, frame = explained_run
    predictor = Predictor.load(churn_bundle)
    fields = predictor.schema.names
    explain = summary["explain"]
    assert (explain["method"], explain["exact"], explain["output_space"]) == ("tree_shap", True, "log-odds")
    assert explain["columns"] == ["contribution_base", *[f"contribution_{f}" for f in fields]]

    scored = pd.read_parquet(Path(summary["output"]["run_path"])).set_index("row_id")
    reference = predictor.score(frame, allow_extra=True)
    valid = frame.loc[reference.valid].reset_index(drop=True)
    expected = predictor.explain(valid[fields])
    got = scored.loc[valid["customer_id"]]
    np.testing.assert_allclose(got[[f"contribution_{f}" for f in fields]].to_numpy(),
                               expected.contributions[:, :, 0], rtol=0, atol=1e-9)
    assert np.allclose(got["contribution_base"], expected.base_value[0])

    quarantined = pd.read_parquet(Path(summary["output"]["quarantine_path"]))
    assert len(quarantined) == summary["counts"]["quarantined"] > 0
    assert quarantined[explain["columns"]].isna().all().all()


def test_an_input_column_named_like_a_contribution_is_refused(spark: Any, churn_bundle: Path, holdout: pd.DataFrame,
                                                              tmp_path: Path) -> None:
    frame = holdout.iloc[:20].assign(contribution_age=1.0)
    source = write_parquet(frame, tmp_path / "in", files=1)
    with pytest.raises(BatchError, match="contribution_age"):
        run_job(job(churn_bundle, source, tmp_path / "out", "clash", explain=True), spark=spark)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.parquet"))


def test_the_cli_flag_writes_them(spark: Any, churn_bundle: Path, holdout: pd.DataFrame, tmp_path: Path) -> None:
    from mlship.cli.root import app

    source = write_parquet(holdout.iloc[:40], tmp_path / "in", files=1)
    done = CliRunner().invoke(app, ["batch", "run", "--model", str(churn_bundle), "--input", str(source),
                                    "--output", str(tmp_path / "out"), "--run-id", "cli", "--master", "local[2]",
                                    "--explain", "--no-progress", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    scored = pd.read_parquet(Path(summary["output"]["run_path"]))
    assert len(scored) == 40 and scored[summary["explain"]["columns"]].notna().all().all()
