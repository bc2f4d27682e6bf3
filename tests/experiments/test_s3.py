"""A/B analysis from inference records with their serving variant and late labels on S3 (moto)."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mlship.aws.clients import client
from mlship.aws.records import RecordWriter
from mlship.cli import app
from mlship.experiments import AbTestConfig, ExperimentInputError, NoLabelsError, UnknownVariantError, analyze_s3
from mlship.runtime.records import capture_line, make_records, object_key, utc_now

BUCKET = "mlship-abtest"
ACCURACY = {"7": 0.80, "8": 0.86}  # champion = Lambda version 7, challenger = version 8


def _traffic(n_requests: int, seed: int, *, users: int | None = None, label_share: float = 0.9,
             sticky: bool = True) -> None:
    """Requests split 50/50 between the versions (sticky per user when ``users``), half stored by
    RecordWriter with the variant, half as the Lambda's capture lines; labels for ``label_share``."""
    rng = np.random.default_rng(seed)
    s3 = client("s3")
    writer = RecordWriter(BUCKET, max_records=100_000)
    captured: dict[str, list[str]] = {"7": [], "8": []}
    labels = []
    for i in range(n_requests):
        user = f"u{rng.integers(users)}" if users else f"r{i}"
        hashed = users and sticky
        variant = "8" if (zlib.crc32(user.encode()) % 2 if hashed else rng.random() < 0.5) else "7"
        label = int(rng.integers(2))
        prediction = label if rng.random() < ACCURACY[variant] else 1 - label
        request_id = uuid.uuid4().hex
        records = make_records(request_id, "churn", variant, [{"user_id": user, "tenure": 3}],
                               [{"prediction": prediction, "probabilities": [0.4, 0.6]}], source="lambda")
        if i % 2:
            writer.add([{**r, "variant": variant, "alias": "live"} for r in records])
        else:
            captured[variant].append(capture_line(records, variant=variant, alias="live"))
        if rng.random() < label_share:
            labels.append({"request_id": request_id, "row": 0, "label": label})
    writer.flush()
    for variant, lines in captured.items():
        body = gzip.compress("".join(line + "\n" for line in lines).encode())
        s3.put_object(Bucket=BUCKET, Key=object_key("inference-records", "churn", variant, utc_now()), Body=body)
    s3.put_object(Bucket=BUCKET, Key="labels/model=churn/part-0.jsonl",
                  Body="\n".join(json.dumps(x) for x in labels).encode())


@pytest.fixture
def bucket(aws: None) -> str:
    client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


def test_records_and_labels_give_a_decision(bucket: str) -> None:
    _traffic(4000, seed=1)
    result = analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8",
                        config=AbTestConfig(mde=0.05, sequential=True))
    assert result.control.units + result.treatment.units == pytest.approx(3600, rel=0.05)  # the labelled rows
    assert result.control.mean == pytest.approx(0.80, abs=0.03)
    assert result.treatment.mean == pytest.approx(0.86, abs=0.03)
    assert result.decision == "ship", result.reasons
    assert not result.srm.mismatch


def test_units_are_users_with_a_per_user_accuracy(bucket: str) -> None:
    _traffic(3000, seed=2, users=400)
    result = analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8",
                        unit_field="user_id", config=AbTestConfig(metric="continuous", mde=0.05))
    assert result.control.units + result.treatment.units == 400
    assert result.test.method == "Welch t-test"
    assert result.treatment.mean > result.control.mean
    assert result.decision in {"ship", "continue"}


def test_units_seen_under_both_variants_are_excluded(bucket: str) -> None:
    _traffic(1500, seed=6, users=1000, sticky=False)
    result = analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8",
                        unit_field="user_id", config=AbTestConfig(metric="continuous"))
    both = result.excluded["units seen under both variants"]
    assert both > 100
    assert 0 < result.control.units + result.treatment.units <= 1000 - both
    client("s3").delete_object(Bucket=bucket, Key="labels/model=churn/part-0.jsonl")
    _traffic(1500, seed=7, users=20, sticky=False)
    with pytest.raises(ExperimentInputError, match="not sticky per user_id"):
        analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8", unit_field="user_id")


def test_the_cli_reads_s3(bucket: str, tmp_path: Any) -> None:
    _traffic(3000, seed=3)
    res = CliRunner().invoke(app, ["abtest", "analyze", "--bucket", bucket, "--prefix", "inference-records",
                                   "--model", "churn", "--control", "7", "--treatment", "8", "--mde", "0.05",
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "decision: " in res.stdout
    assert json.loads((tmp_path / "o" / "abtest.json").read_text())["control"]["name"] == "7"


def test_no_labels_and_unknown_variants_are_refused(bucket: str) -> None:
    with pytest.raises(NoLabelsError, match="no labels in s3://mlship-abtest/labels/model=churn/"):
        analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8")
    _traffic(200, seed=4, label_share=0.0)
    client("s3").put_object(Bucket=bucket, Key="labels/model=churn/other.jsonl",
                            Body=b'{"request_id": "not-a-request", "row": 0, "label": 1}\n')
    with pytest.raises(NoLabelsError, match="no inference record"):
        analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="8")
    _traffic(400, seed=5)
    with pytest.raises(UnknownVariantError, match="'9' not in the data"):
        analyze_s3(bucket, "inference-records", model="churn", control="7", treatment="9")
    res = CliRunner().invoke(app, ["abtest", "analyze", "--bucket", bucket, "--model", "nobody", "--control", "7",
                                   "--treatment", "8"])
    assert res.exit_code == 2 and res.stderr.startswith("error: no labels in")
