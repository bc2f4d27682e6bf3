"""The monitor's Spark path (a real local Spark session) against its in-process path, on one window.

The records are on a moto *server* (Spark's Python workers are separate processes: in-process
``mock_aws`` cannot reach them); each partition fetches its keys with boto3.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from monitoring.helpers import put_labels, send_traffic

from mlship.aws.clients import client
from mlship.monitoring import MonitorConfig, run_monitor
from mlship.runtime.predictor import Predictor

# every Spark test on one xdist worker (make test uses --dist loadgroup): one SparkSession
pytestmark = pytest.mark.xdist_group("batch-spark")


@pytest.fixture
def window(moto_env: dict[str, str], churn_bundle: Path) -> dict[str, Any]:
    """Five objects of records (three of them shifted, one with a line that does not parse) and labels."""
    bucket = f"mlship-spark-mon-{uuid.uuid4().hex[:8]}"
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    predictor = Predictor.load(churn_bundle)
    truth = []
    for seed, shift in ((1, 0.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 0.0)):
        truth += send_traffic(predictor, bucket, 240, seed=seed, shift=shift, request_rows=40)
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    s3.put_object(Bucket=bucket, Key=key.rsplit("/", 1)[0] + "/zz-broken.jsonl", Body=b"{not json\n")
    put_labels(s3, bucket, "churn", truth[::3])
    config = MonitorConfig(model_uri=str(churn_bundle), records_bucket=bucket, reports_bucket=bucket,
                           metrics_mode="none", emit_events=False, read_workers=3,
                           attribution_sample_rows=5000)  # more than the window: both samples hold every row
    return {"config": config, "now": datetime.now(UTC) + timedelta(seconds=1)}


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal, floats within 1e-12 relative: partitions add their sums in another order than one pass
    (a mean differs in its last bits); counts, verdicts and names are compared exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15, nan_ok=True), path
    else:
        assert a == b, path


def test_the_spark_path_gives_the_in_process_statistics(spark: Any, window: dict[str, Any]) -> None:
    from mlship.batch.monitor_window import run_window_job

    config, now = window["config"], window["now"]
    here = run_monitor(config, now=now).report
    there = run_window_job(replace(config, reports_prefix="monitoring-spark"), now, spark=spark, partitions=3).report

    assert here["drift"]["rows"] == there["drift"]["rows"] == 1200
    _same(there["drift"], here["drift"])  # every statistic of every feature and prediction, and the verdicts
    assert here["drift"]["drifted_features"]  # three of five objects shifted: a window worth comparing
    _same(there["fairness"], here["fairness"])  # group counts and selection rates; labelled fairness
    _same(there["performance"], here["performance"])  # late labels joined in Spark partitions
    assert here["performance"]["labelled_rows"] == 400
    _same(there["attribution_drift"], here["attribution_drift"])
    assert there["alerts"] == here["alerts"] and there["events"] == here["events"]
    for counter in ("objects", "bytes", "bad_lines", "label_objects"):
        assert there["input"].get(counter) == here["input"].get(counter), counter
    assert here["input"]["objects"] == 6 and here["input"]["bad_lines"] == 1
    assert there["reports"]["json"].startswith(f"s3://{config.reports_bucket}/monitoring-spark/")


def test_the_partitioning_does_not_change_the_window(spark: Any, window: dict[str, Any]) -> None:
    """The listing in one partition or one per object: the merged partials are the same window."""
    from mlship.batch.monitor_window import window_partial

    from mlship.monitoring.run import load_target, plan_window, scan_spec

    config, now = window["config"], window["now"]
    target = load_target(config)
    plan = plan_window(config, target, now)
    spec = scan_spec(config, target, plan.window)
    one = window_partial(spark, config.records_bucket, spec, plan.objects, partitions=1)
    many = window_partial(spark, config.records_bucket, spec, plan.objects, partitions=len(plan.objects))
    assert one.rows == many.rows == 1200
    assert one.groups == many.groups and one.stats == many.stats
    _same(one.drift.result().to_dict(), many.drift.result().to_dict())


def test_the_entry_point_runs_the_submitted_arguments(spark: Any, window: dict[str, Any], signing_keys: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """What EMR Serverless runs: the arguments the monitor submitted (``job_arguments``, with the
    forwarded public key, which the job checks the bundle with) in, the run's summary out (the
    session is the test's: ``getOrCreate`` returns it)."""
    import json

    from mlship.batch.monitor_window import main

    from mlship.monitoring.submit import job_arguments
    from mlship.runtime.signing import generate_keypair

    config, now = window["config"], window["now"]
    signer = (signing_keys / "mlship.pub").read_text()
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", signer)  # restored after the test: main sets it for the job
    assert main(job_arguments(replace(config, reports_prefix="monitoring-main"), now,
                              {"MLSHIP_PUBLIC_KEY": signer})) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows"] == 1200 and summary["drifted_features"]
    assert summary["reports"]["html"].startswith(f"s3://{config.reports_bucket}/monitoring-main/")
    assert main(["--config", json.dumps(config.to_dict()), "--now", "yesterday"]) == 1
    generate_keypair(tmp_path)
    other = (tmp_path / "mlship.pub").read_text()
    assert main(job_arguments(config, now, {"MLSHIP_PUBLIC_KEY": other})) == 1  # not the bundle's signer
    assert "signature" in capsys.readouterr().err
