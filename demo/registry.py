"""Demo step: the registry and the gate. Register the HGB model (the gate makes it challenger; with
no rollout in this step it is made champion by hand), train a second, different model (logistic
regression) that passes the gate against the champion and becomes challenger (the model the
release step rolls out), then a third (a small MLP) that is gated against that challenger and
refused without changing anything."""

from __future__ import annotations

import os
from typing import Any

from rich.table import Table

from demo.context import DemoContext
from mlship.local.datasets import CHURN_LABEL, CHURN_SENSITIVE
from mlship.registry.store import Registry, VersionExistsError

THRESHOLDS = """\
# mlship gate: every threshold must hold for the challenger alias to move
metrics:
  roc_auc:  {min: 0.75, min_improvement: 0.0}   # at least as good as the champion
  accuracy: {min: 0.70}
  log_loss: {max: 0.60}
latency:
  p95_ms: 50                                    # single-row, through onnxruntime
fairness:
  attribute: gender
  demographic_parity_difference: 0.10
  equalized_odds_difference: 0.10
slices: [contract]
bootstrap: 100
"""


def _checks_table(title: str, promotion: Any) -> Table:
    table = Table(title=title)
    for col in ("check", "threshold", "candidate", "champion", "result"):
        table.add_column(col)
    for c in promotion.gate.checks:
        sign = c.sign
        table.add_row(c.name, f"{sign} {c.threshold:g}", "n/a" if c.value is None else f"{c.value:.4f}",
                      "-" if c.champion is None else f"{c.champion:.4f}",
                      "[green]pass" if c.passed else "[red]FAIL")
    return table


def _export(ctx: DemoContext, kind: str, version: str, description: str) -> Any:
    from mlship.evaluation.export import export_bundle
    from mlship.local.train import train_pipeline

    model = train_pipeline(ctx.data["train_df"], kind)
    return export_bundle(model, ctx.data["holdout_df"], CHURN_LABEL, ctx.workdir / "bundles" / f"churn-{version}",
                         name="churn", version=version, private_key=ctx.data["private_key"],
                         sensitive=CHURN_SENSITIVE, description=description)


def run(ctx: DemoContext) -> None:
    from mlship.evaluation.gate import load_thresholds, promote

    ctx.step("Registry and evaluation gate: champion, challenger, promotions")
    con = ctx.console
    os.environ["MLSHIP_REGISTRY_BUCKET"] = ctx.bucket  # later steps can load mlship://churn@champion
    reg = Registry(ctx.bucket)
    public = ctx.data["public_key"]
    holdout = ctx.data["holdout_df"]
    reports = ctx.workdir / "reports"
    thresholds_path = ctx.workdir / "gate.yaml"
    thresholds_path.write_text(THRESHOLDS)
    limits = load_thresholds(thresholds_path)
    con.print(f"gate thresholds: {thresholds_path}")

    v1, _ = reg.register(ctx.data["bundle_dir"], public_key=public, description="HGB baseline")
    con.print(f"registered churn:1 (signature checked) -> {v1.bundle_uri}\n"
              f"  SageMaker model package {v1.sagemaker_package_arn}   (mlship register)")
    tampered = ctx.workdir / "bundles" / "churn-1-edited"
    _edited_copy(ctx.data["bundle_dir"], tampered)
    try:
        reg.register(tampered)
    except VersionExistsError as exc:
        con.print(f"[yellow]re-registering version 1 with other content is refused:[/] {exc}")

    first = promote(reg, "churn", "1", holdout, limits, label=CHURN_LABEL, reason="first model",
                    report_dir=reports / "gate-churn-1", progress=con.log)
    con.print(_checks_table("gate churn:1 (no champion yet: absolute thresholds only)", first))
    if not first.gate.passed:
        con.print("[red]churn:1 was refused: " + "; ".join(c.describe() for c in first.gate.failures))
        return
    con.print(f"[green]churn@challenger -> 1[/] (approved {first.package_arn})")
    # The gate only moves challenger; champion moves when a rollout succeeds (mlship rollout). Nothing
    # is rolled out in this step and later steps (batch) load mlship://churn@champion, so the first
    # model is made champion by hand, as `mlship alias set churn champion 1 --expect none` does.
    reg.set_alias("churn", "champion", "1", expect=None,
                  reason="first model: no champion yet and no rollout in this demo step")
    con.print("churn@champion -> 1 by hand (first model, nothing rolled out yet)   "
              "(mlship alias set churn champion 1 --expect none)")

    con.print("training a second, different model: logistic regression (same features, same holdout)")
    reg.register(_export(ctx, "logreg", "2", "logistic regression challenger"), public_key=public)
    second = promote(reg, "churn", "2", holdout, limits, label=CHURN_LABEL, reason="challenger beats champion",
                     report_dir=reports / "gate-churn-2", progress=con.log)
    con.print(_checks_table("gate churn:2 (logistic regression) vs champion churn:1 (HGB)", second))
    if second.gate.passed:
        con.print(f"[bold green]PASSED[/]: churn@challenger {second.moved.previous} -> {second.moved.version}, "
                  f"approved {second.package_arn}; churn@champion stays 1 until a rollout of 2 succeeds")
    else:
        con.print("[bold red]REFUSED[/] (unexpected on this data): " +
                  "; ".join(c.describe() for c in second.gate.failures))
    _third_model(ctx, reg, limits, reports)
    _print_registry(con, reg)

    from mlship.runtime.predictor import Predictor

    champion = Predictor.load("mlship://churn@champion", public_key=public)
    con.print(f"mlship://churn@champion resolves to {reg.resolve('mlship://churn@champion')} "
              f"-> loaded {champion.model_name}:{champion.model_version} (golden examples checked)")
    con.print(f"gate reports: {reports}/gate-churn-*/gate.html")
    challenger = reg.get_alias("churn", "challenger")
    ctx.data.update({"registry_bucket": ctx.bucket, "champion_uri": "mlship://churn@champion",
                     "champion_version": champion.model_version, "gate_reports": reports,
                     "challenger_version": challenger.version if challenger else None})


def _third_model(ctx: DemoContext, reg: Registry, limits: Any, reports: Any) -> None:
    """An MLP competes with the challenger for the next rollout (``--against challenger``): refused.

    Against the HGB champion it would pass (it beats the HGB, not the logistic regression), so it
    is gated against the current challenger: a challenger is replaced only by a better one."""
    from mlship.evaluation.gate import promote

    con = ctx.console
    con.print("training a third model: a small neural network (MLP, 32 hidden units)")
    reg.register(_export(ctx, "mlp", "3", "MLP challenger"), public_key=ctx.data["public_key"])
    before = reg.get_alias("churn", "challenger")
    third = promote(reg, "churn", "3", ctx.data["holdout_df"], limits, label=CHURN_LABEL, against="challenger",
                    report_dir=reports / "gate-churn-3", progress=con.log)
    now = reg.get_alias("churn", "challenger").version
    con.print(_checks_table(f"gate churn:3 (MLP) vs challenger churn:{before.version}   "
                            "(mlship promote churn 3 --against challenger)", third))
    if third.gate.passed:
        con.print(f"[yellow]churn:3 passed the gate too: churn@challenger -> {now}")
    else:
        con.print(f"[bold red]REFUSED[/]: {len(third.gate.failures)} of {len(third.gate.checks)} checks failed "
                  f"({'; '.join(c.describe() for c in third.gate.failures)})")
        con.print(f"nothing changed: churn@challenger is still {now}, churn@champion "
                  f"{reg.get_alias('churn', 'champion').version}, churn:3 SageMaker status "
                  f"{reg.approval_status('churn', '3')}")


def _print_registry(con: Any, reg: Registry) -> None:
    """The tables of ``mlship models show churn`` and ``mlship alias history churn ALIAS``."""
    versions = Table(title="mlship models show churn")
    for col in ("version", "model", "ROC-AUC (holdout)", "SageMaker", "aliases", "status"):
        versions.add_column(col)
    aliases = reg.list_aliases("churn")
    statuses = reg.statuses("churn")
    for rec in reg.list_versions("churn"):
        versions.add_row(rec.version, rec.description or "", f"{rec.metrics.get('roc_auc', float('nan')):.4f}",
                         str(reg.approval_status("churn", rec.version)),
                         ", ".join(a for a, r in aliases.items() if r.version == rec.version) or "-",
                         statuses.get(rec.version) or "-")
    con.print(versions)
    for alias in ("challenger", "champion"):
        audit = Table(title=f"mlship alias history churn {alias} (audit log)")
        for col in ("#", "when", "who", "from", "to", "why"):
            audit.add_column(col)
        for e in reg.history("churn", alias):
            audit.add_row(str(e.generation), e.updated_at, e.updated_by, e.previous or "-", e.version, e.reason)
        con.print(audit)


def _edited_copy(src: Any, dst: Any) -> None:
    """An unsigned copy of a bundle whose manifest says something else (same version)."""
    import json
    import shutil

    from mlship.runtime.bundle import write_manifest

    shutil.copytree(src, dst)
    (dst / "signature.json").unlink(missing_ok=True)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["description"] = "edited after release"
    write_manifest(dst, manifest)
