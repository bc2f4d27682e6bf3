"""CLI commands for the edge path: ``mlship edge build | publish | status``.

The device side is ``python -m mlship.edge.agent`` (no typer/rich there: devices run it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mlship.cli.common import fail

if TYPE_CHECKING:
    from rich.table import Table

edge_app = typer.Typer(
    help="Edge devices: build optimized signed ONNX packages, publish them through AWS IoT "
    "Jobs, read rollout status. The device agent is `python -m mlship.edge.agent`.",
    no_args_is_help=True,
)



def variants_table(title: str, results: list) -> Table:
    """A rich table of edge build results: status, size, latency and the check against fp32."""
    from mlship.cli.common import table as new_table

    table = new_table(title=title)
    for col in ("variant", "status", "size (bytes)", "1-row p50 ms", "max |dp| vs fp32", "label agreement",
                "package / reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        hold = (r.checks or {}).get("holdout") or (r.checks or {}).get("golden") or {}
        table.add_row(
            r.variant,
            r.status,
            f"{r.size_bytes:,}" if r.size_bytes else "-",
            f"{r.latency['one_row_median_ms']:.3f}" if r.latency else "-",
            f"{hold['max_abs_diff']:.2e}" if hold else "-",
            f"{hold['label_agreement']:.4f}" if hold else "-",
            (Path(r.package).name if r.package else (r.reason or ""))[:90],
        )
    return table


@edge_app.command("build")
def build(
    bundle: str = typer.Argument(..., help="Bundle: directory, .tar.gz, s3:// or mlship:// URI."),
    out: Path = typer.Option(Path("build/edge"), "--out", "-o", help="Directory for the packages."),
    key: Path = typer.Option(..., help="Ed25519 private key (PEM) that signs the packages."),
    holdout: Path = typer.Option(None, help="Labelled holdout (.csv/.parquet): checks and int8 calibration."),
    label: str = typer.Option(None, help="Label column of the holdout (default: the bundle's)."),
    variant: list[str] = typer.Option(
        None, "--variant", help="fp32, int8-dynamic, int8-static, ort (repeatable; default all)."
    ),
    max_prob_diff: float = typer.Option(0.05, help="Per-row max |p_variant - p_fp32| (regression: relative)."),
    max_share_over: float = typer.Option(0.01, help="Max share of holdout rows over --max-prob-diff."),
    min_label_agreement: float = typer.Option(0.99, help="Min share of holdout labels equal to fp32's."),
    max_metric_delta: float = typer.Option(0.01, help="Max drop of the primary holdout metric."),
    arch: list[str] = typer.Option(None, "--arch", help="Allowed device architectures (default: any)."),
    min_onnxruntime: str = typer.Option(None, help="Override the minimum onnxruntime version."),
) -> None:
    """Build edge variants of a bundle, check each against fp32, sign and package those within tolerance."""
    from mlship.edge.build import Tolerance, build_edge
    from mlship.edge.package import VARIANTS

    from mlship.cli.common import console as new_console
    from mlship.errors import MlshipError

    console = new_console(stderr=True)
    tol = Tolerance(max_prob_diff, max_share_over, min_label_agreement, max_metric_delta)
    try:
        with console.status("building edge variants") as status:
            results = build_edge(
                bundle,
                out,
                private_key=key,
                holdout=holdout,
                label=label,
                variants=tuple(variant or VARIANTS),
                tolerance=tol,
                architectures=arch or None,
                min_runtime=min_onnxruntime,
                progress=lambda msg: (status.update(msg), console.log(msg)),
            )
    except (MlshipError, ValueError, OSError) as exc:
        fail(str(exc))
    table = variants_table(f"edge variants ({out})", results)
    new_console().print(table)
    for r in results:
        typer.echo(f"{r.variant}: {r.status}" + (f" -> {r.package}" if r.package else f" ({r.reason})"))
    if not any(r.status == "packaged" for r in results):
        fail("no variant was packaged")


@edge_app.command("publish")
def publish_cmd(
    package: Path = typer.Argument(..., help="An .edge.tar.gz package from `mlship edge build`."),
    bucket: str = typer.Option(..., envvar="MLSHIP_EDGE_BUCKET", help="S3 bucket for edge-packages/."),
    env: str = typer.Option(
        "dev", help="Environment: thing group mlship-ENV-devices, template mlship-ENV-model-rollout."
    ),
    group: str = typer.Option(None, help="Thing group (default mlship-ENV-devices)."),
    role_arn: str = typer.Option(
        None, envvar="MLSHIP_EDGE_PRESIGN_ROLE_ARN", help="Role IoT uses to presign the download URL."
    ),
    expires_in: int = typer.Option(3600, help="Presigned URL lifetime (seconds)."),
    allow_downgrade: bool = typer.Option(False, help="Let devices install an older version."),
    create_group: bool = typer.Option(False, help="Create the thing group if it does not exist."),
) -> None:
    """Upload a package to S3 and create an IoT job for the thing group."""
    from mlship.edge.publish import publish

    from mlship.errors import MlshipError

    try:
        out = publish(
            package,
            bucket=bucket,
            env=env,
            group=group,
            role_arn=role_arn,
            expires_in=expires_in,
            allow_downgrade=allow_downgrade,
            create_group=create_group,
        )
    except MlshipError as exc:
        fail(str(exc))
    typer.echo(
        f"job {out['job_id']} created for thing group {out['thing_group']} "
        f"({out['document_bytes']} byte document); package at {out['s3_uri']}"
    )
    typer.echo(json.dumps(out["document"], indent=2))


@edge_app.command("status")
def status_cmd(job_id: str = typer.Argument(..., help="IoT job id printed by `mlship edge publish`.")) -> None:
    """Show an IoT job's status and its executions."""
    from mlship.edge.publish import status

    from mlship.cli.common import console as new_console
    from mlship.cli.common import table as new_table
    from mlship.errors import MlshipError

    try:
        info = status(job_id)
    except MlshipError as exc:
        fail(str(exc))
    counts = {
        k.replace("numberOf", "").replace("Things", ""): v
        for k, v in info["counts"].items()
        if k.startswith("numberOf")
    }
    typer.echo(f"job {job_id}: {info['status']}; " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    table = new_table()
    for col in ("thing", "status", "details"):
        table.add_column(col)
    for ex in info["executions"]:
        table.add_row(ex["thing"], str(ex["status"]), json.dumps(ex["details"]))
    new_console().print(table)


def register(app: typer.Typer) -> None:
    """Add this path's commands to the main app."""
    app.add_typer(edge_app, name="edge")
