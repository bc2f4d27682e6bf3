"""Demo step: scheduled batch scoring on Spark. Score a day's drifted batch (with a few broken rows)
from S3 with the champion model, quarantine the bad rows, rerun the same run id (replaced, not
duplicated), then submit the same job to EMR Serverless (moto records it; nothing executes).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from demo.context import DemoContext

RUN_ID = "2026-11-23"


def _landing_batch(ctx: DemoContext, rows: int) -> tuple[str, int]:
    """Upload a drifted day of traffic with some broken rows as Parquet files; return its s3 URI."""
    import numpy as np

    from mlship.aws.clients import client
    from mlship.local.datasets import make_churn

    frame = make_churn(rows, seed=23, shift=0.8).drop(columns=["churned"])
    frame.insert(0, "customer_id", [f"cust-{i:06d}" for i in range(rows)])
    frame["age"] = frame["age"].astype(np.float64)
    frame.loc[5, "contract"] = "weekly"  # unseen category: scored as scikit-learn does (handle_unknown="ignore")
    frame.loc[9, "age"] = np.nan  # null in a required field
    frame.loc[12, "payment_method"] = None  # null in a required field
    frame.loc[20, "age"] = 41.5  # fraction in an integer field
    s3 = client("s3")
    prefix = f"batch/landing/date={RUN_ID}"
    with tempfile.TemporaryDirectory() as tmp:
        for i, part in enumerate(np.array_split(np.arange(rows), 4)):
            path = Path(tmp) / f"part-{i}.parquet"
            frame.iloc[part].to_parquet(path, index=False)
            s3.upload_file(str(path), ctx.bucket, f"{prefix}/{path.name}")
    return f"s3://{ctx.bucket}/{prefix}", rows


def run(ctx: DemoContext) -> None:
    from mlship.batch import emr
    from mlship.batch.cli import _print_summary
    from mlship.batch.job import JobConfig, run_job
    from mlship.batch.spark import get_session
    from rich.table import Table

    from mlship.aws.clients import client

    con = ctx.console
    ctx.step("Batch: score a day of traffic on Spark (local[2]) from S3, quarantine bad rows, rerun")
    model = ctx.data.get("champion_uri") or str(ctx.data["bundle_tar"])
    if ctx.data.get("registry_bucket"):
        os.environ.setdefault("MLSHIP_REGISTRY_BUCKET", ctx.data["registry_bucket"])
    source, rows = _landing_batch(ctx, 40_000)
    output = f"s3://{ctx.bucket}/batch/scores"
    con.print(f"input {source} ({rows:,} rows in 4 Parquet files), model {model}")
    con.print("starting Spark local[2] ...")
    spark = get_session("local[2]", app_name="mlship-demo-batch")
    try:
        config = JobConfig(model=model, input=source, output=output, run_id=RUN_ID, master="local[2]",
                           id_column="customer_id", public_key=str(ctx.data["public_key"]))
        summary = run_job(config, spark=spark)
        _print_summary(summary)
        quarantine = _read_quarantine(summary)
        table = Table(title="quarantined rows (kept with their reason, never dropped)")
        for col in ("row_id", "error_kinds", "reason"):
            table.add_column(col)
        for rec in quarantine:
            table.add_row(str(rec["row_id"]), rec["error_kinds"], rec["reason"])
        con.print(table)
        drift = summary["drift"]
        con.print(f"drift vs the bundle's baseline: {drift.get('summary', drift)}")

        con.print(f"rerunning run id {RUN_ID} (same input): the run is replaced, never duplicated")
        again = run_job(config, spark=spark)
        s3 = client("s3")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ctx.bucket, Prefix="batch/scores/")["Contents"]]
        data_keys = [k for k in keys if k.endswith(".parquet") and "/_quarantine/" not in k]
        con.print(f"after the rerun: replaced_previous={again['replaced_previous']}, "
                  f"{again['counts']['scored']:,} scored rows in {len(data_keys)} data file(s) under "
                  f"{again['output']['run_path']} (listed in _summary.json: "
                  f"{len([f for f in again['output']['files'] if not f.startswith('_')])})")
    finally:
        spark.stop()

    ctx.step("Batch on AWS: the same job as an EMR Serverless job run")
    app_id = emr.ensure_application("mlship-batch-demo")
    submitted = emr.submit(application_id=app_id, execution_role_arn="arn:aws:iam::123456789012:role/mlship-batch",
                           artifacts=f"s3://{ctx.bucket}/batch/artifacts", model=model, input=source,
                           output=output, run_id=RUN_ID, id_column="customer_id")
    for name, uri in submitted["artifacts"].items():
        con.print(f"uploaded {name}: {uri}")
    state = emr.status(app_id, submitted["job_run_id"])
    con.print(f"start_job_run -> application {app_id}, job run {submitted['job_run_id']}: {state['state']}")
    con.print("[yellow]note: moto records EMR Serverless job runs and reports SUCCESS at once; nothing executed. "
              "On AWS, `mlship batch status --wait` follows the real run.")
    ctx.data.update({"batch_summary": summary, "batch_output": output})


def _read_quarantine(summary: dict[str, Any]) -> list[dict[str, Any]]:
    import io

    import pyarrow.parquet as pq

    from mlship.aws.clients import client
    from mlship.aws.s3 import parse_s3_uri

    s3 = client("s3")
    bucket, prefix = parse_s3_uri(summary["output"]["quarantine_path"])
    rows: list[dict[str, Any]] = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        rows += pq.read_table(io.BytesIO(body), columns=["row_id", "error_kinds", "reason"]).to_pylist()
    return sorted(rows, key=lambda r: str(r["row_id"]))
