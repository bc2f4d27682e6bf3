"""Demo step: edge packages -> S3 + AWS IoT job -> simulated devices (one offline) -> safe installs."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from mlship.edge.cli import variants_table
from rich.table import Table

from demo.context import DemoContext


def _tampered(package: Path, out: Path) -> Path:
    """A copy of the package with one byte of the model flipped (signature left as it was)."""
    from mlship.runtime.archive import pack_bundle

    work = out.with_suffix(".dir")
    with tarfile.open(package) as tar:
        tar.extractall(work, filter="data")
    data = bytearray((work / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (work / "model.onnx").write_bytes(bytes(data))
    pack_bundle(work, out)
    shutil.rmtree(work)
    return out


def run(ctx: DemoContext) -> None:
    from mlship.edge.build import build_edge
    from mlship.edge.publish import publish, status
    from mlship.edge.simulator import Fleet
    from sklearn.neural_network import MLPClassifier

    from mlship.evaluation.export import export_bundle
    from mlship.local.datasets import CHURN_LABEL
    from mlship.local.train import churn_pipeline

    ctx.step("Edge: optimized, signed ONNX packages -> AWS IoT Jobs -> devices that never brick")
    con = ctx.console
    key_dir = Path(ctx.data["key_dir"])
    private, public = key_dir / "mlship.key", key_dir / "mlship.pub"
    holdout = ctx.data["holdout_df"]
    out = ctx.workdir / "edge"

    # 1. the churn HGB bundle: a tree ensemble, nothing to quantize
    hgb = build_edge(ctx.data["bundle_dir"], out / "hgb", private_key=private, holdout=holdout, latency_repeats=50)
    con.print(variants_table("churn HGB bundle -> edge variants (mlship edge build)", hgb))

    # 2. an MLP of the same data: int8 variants pay off in size
    train = ctx.data["train_df"]
    mlp = churn_pipeline("mlp").set_params(
        model=MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-2, max_iter=300, early_stopping=True, random_state=0)
    )
    mlp.fit(train.drop(columns=[CHURN_LABEL]), train[CHURN_LABEL])
    mlp_bundle = export_bundle(
        mlp,
        holdout,
        CHURN_LABEL,
        ctx.workdir / "bundles" / "churn-mlp",
        name="churn-mlp",
        version="1.0.0",
        private_key=private,
        tarball=False,
    )
    mlp_results = {
        r.variant: r
        for r in build_edge(mlp_bundle, out / "mlp", private_key=private, holdout=holdout, latency_repeats=50)
    }
    con.print(variants_table("churn MLP bundle -> edge variants", list(mlp_results.values())))

    # 3. a fleet: three devices trusting our public key, one of them offline
    fleet = Fleet(ctx.workdir / "fleet", [public], n=3, offline=(2,), env="demo")
    fleet.register()
    first = publish(mlp_results["fp32"].package, bucket=ctx.bucket, env="demo", create_group=True)
    con.print(
        f"published {Path(first['s3_uri']).name} -> {first['s3_uri']}; IoT job {first['job_id']} for thing "
        f"group {first['thing_group']} ({first['document_bytes']} byte job document)   (mlship edge publish)"
    )
    for thing, job_id, result in fleet.deliver_jobs():
        con.print(f"  {thing}: job {job_id} -> {result.outcome}")
    for thing, result in fleet.sideload(mlp_results["fp32"].package):
        con.print(f"  {thing} (offline, USB copy) -> {result.outcome}")

    # 4. roll out the smaller int8 variant, then try a tampered package and a downgrade
    second = publish(mlp_results["int8-dynamic"].package, bucket=ctx.bucket, env="demo")
    for thing, _, result in fleet.deliver_jobs():
        con.print(f"  {thing}: int8-dynamic -> {result.outcome}")
    bad = _tampered(Path(mlp_results["fp32"].package), out / "tampered.edge.tar.gz")
    for thing, result in fleet.sideload(bad):
        con.print(f"  {thing}: tampered package -> [red]{result.outcome}[/red]: {result.reason}")
    table = Table(title="devices (status.json on each device)")
    for col in ("device", "online", "version", "variant", "state", "last_outcome"):
        table.add_column(col)
    for row in fleet.table():
        table.add_row(*(str(row[c]) for c in ("device", "online", "version", "variant", "state", "last_outcome")))
    con.print(table)

    # 5. every device serves through the shared predictor, whatever happened
    sample = holdout.drop(columns=[CHURN_LABEL]).head(3).to_dict(orient="records")
    for sim in fleet.devices:
        pred = sim.device.predict(sample)
        con.print(
            f"  {sim.name}: {pred.model_name}:{pred.model_version} -> labels {pred.labels.tolist()}, "
            f"P(churn) {[round(p[1], 3) for p in pred.probabilities.tolist()]}"
        )
    info = status(second["job_id"])
    con.print(
        f"job {second['job_id']}: {info['status']} (mlship edge status). The local AWS has no IoT Jobs data "
        "plane, so its executions never leave QUEUED; what the agents sent to UpdateJobExecution:"
    )
    for report in fleet.reports[-4:]:
        con.print(f"  {json.dumps(report)}")
    con.print("device agent: python -m mlship.edge.agent --device DIR run --thing NAME --port 8080  (docs/edge.md)")
    ctx.data.update({"edge_packages": {v: r.package for v, r in mlp_results.items()}, "edge_fleet": fleet.root})
