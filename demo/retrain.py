"""Demo step: the monitor's ``DriftDetected`` event starts a retraining run on the shifted data.

``mlship retrain run --event`` claims the trigger (the same event sent again is a duplicate: no
second run), trains the churn trainer (``mlship.local.train:train_pipeline``) on fresh labelled
shifted rows, validates them against the champion, exports and registers the new version and
gates it against the champion on the same fresh holdout rows: it becomes ``challenger``. The
release loop then canaries it on the local control plane while a client keeps invoking the
endpoint, and champion moves to it. The commands are the ones a user runs.
"""

from __future__ import annotations

import json
from typing import Any

from demo.context import DemoContext
from demo.release import CANARY, ENDPOINT, IMAGE, ROLE, Traffic, _mlship, _row

TRAINER = "mlship.local.train:train_pipeline"
GATE = {"metrics": {"roc_auc": {"min": 0.6, "min_improvement": -0.02}}, "bootstrap": 0}


def _drift_event(ctx: DemoContext) -> dict[str, Any]:
    """The monitoring step's event, or one of the same shape (when that step did not run)."""
    return ctx.data.get("drift_event") or {
        "id": "demo-drift", "detail-type": "DriftDetected", "source": "mlship.monitoring",
        "detail": {"model": {"name": "churn", "version": "1"}, "share": 0.6, "drifted_features": [],
                   "window": {"start": "2026-12-01T10:00:00+00:00", "end": "2026-12-01T11:00:00+00:00"}}}


def _fresh_data(ctx: DemoContext) -> str:
    """Fresh labelled rows of the shifted population, where a labelling pipeline would put them."""
    import io

    from mlship.aws.clients import client
    from mlship.local.datasets import make_churn

    buf = io.BytesIO()
    make_churn(12000, seed=304, shift=1.0).to_parquet(buf)
    client("s3").put_object(Bucket=ctx.bucket, Key="fresh-data/churn/part-0.parquet", Body=buf.getvalue())
    return f"s3://{ctx.bucket}/fresh-data/churn/"


def run(ctx: DemoContext) -> None:
    ctx.step("Retraining: the DriftDetected event trains a challenger on fresh data, gated, then canaried")
    with ctx.control_plane("retrain-plane"):
        _retrain(ctx)


def _retrain(ctx: DemoContext) -> None:
    """One run from the event to champion (the release step canaries it while a client invokes the
    endpoint), then the same event again: a duplicate, no second run."""
    from mlship.registry.store import Registry

    con = ctx.console
    event_path, gate_path = ctx.workdir / "drift-event.json", ctx.workdir / "retrain-gate.json"
    event_path.write_text(json.dumps(_drift_event(ctx)))
    gate_path.write_text(json.dumps(GATE))
    release = " ".join(["--endpoint", ENDPOINT, "--image", IMAGE, "--role", ROLE, "--poll", "0.2", *CANARY[2:]])
    args = ["retrain", "run", "--event", str(event_path), "-t", str(gate_path), "--data", _fresh_data(ctx),
            "--trainer", TRAINER, "--bucket", ctx.bucket, "--model", "churn", "--release", "canary",
            "--release-args", release]
    with Traffic(_row(ctx)) as traffic:
        first = _mlship(ctx, *args)
    con.print(first.stdout.rstrip(), highlight=False)
    assert first.returncode == 0 and "succeeded" in first.stdout, f"the retraining run did not succeed: {first}"
    registry = Registry(ctx.bucket, sagemaker=False)
    challenger, champion = (registry.get_alias("churn", a).version for a in ("challenger", "champion"))
    assert champion == challenger, "champion did not move to the retrained version"
    con.print(f"[green]retrained v{challenger} canaried to completion[/]: the client saw answers "
              f"{traffic.versions} and {traffic.failures} failed requests; champion is now v{champion}")
    again = _mlship(ctx, *args)
    con.print(again.stdout.rstrip(), highlight=False)
    assert again.stdout.startswith("duplicate:"), "the same event started a second run"
    status = _mlship(ctx, "retrain", "status", "--model", "churn", "--bucket", ctx.bucket)
    con.print(status.stdout.rstrip(), highlight=False)
