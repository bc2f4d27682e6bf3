"""The model card: Markdown and self-contained HTML (``templates/model_card.html.j2``) rendered from
the manifest, with plots (confusion matrix, ROC and precision-recall for classifiers; residuals for
regressors; global explanations on the holdout) written under ``card/`` and embedded in the HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlship.stats.plots import CURRENT, NEUTRAL, REFERENCE, png_uri, pyplot, save_png
from mlship.stats.reports import number, render_page

CARD_DIR = "card"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _confusion_figure(plt: Any, y: np.ndarray, pred: Any, classes: list[Any]) -> Any:
    from mlship.stats.metrics import classification_metrics

    cm = np.asarray(classification_metrics(y, pred.labels, None, classes)["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(cm, cmap="Blues")
    ax.grid(False)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (holdout)")
    threshold = cm.max() / 2 if cm.size else 0
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > threshold else "black")
    return fig


def _plots_classification(y: np.ndarray, pred: Any, classes: list[Any], out: Path) -> dict[str, Path]:
    plt = pyplot()
    paths = {"Confusion matrix": save_png(_confusion_figure(plt, y, pred, classes), out / "confusion_matrix.png")}
    if pred.probabilities is not None and len(classes) == 2:
        positive = np.asarray([str(v) == str(classes[1]) for v in y]).astype(int)
        score = pred.probabilities[:, 1]
        order = np.argsort(-score, kind="mergesort")
        tps = np.cumsum(positive[order])
        fps = np.cumsum(1 - positive[order])
        tpr = np.r_[0, tps / max(tps[-1], 1)]
        fpr = np.r_[0, fps / max(fps[-1], 1)]
        precision = tps / np.arange(1, len(tps) + 1)
        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.plot(fpr, tpr, color=REFERENCE, lw=2)
        ax.plot([0, 1], [0, 1], "--", color=NEUTRAL)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
        paths["ROC curve"] = save_png(fig, out / "roc.png")
        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.plot(tpr[1:], precision, color=REFERENCE, lw=2)
        ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02), title="Precision-recall curve (holdout)")
        paths["Precision-recall curve"] = save_png(fig, out / "pr.png")
    return paths


def _plots_regression(y: np.ndarray, pred: Any, out: Path) -> dict[str, Path]:
    plt = pyplot()
    resid = np.asarray(y, dtype=float) - pred.values
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.scatter(pred.values, resid, s=4, alpha=0.5, color=REFERENCE)
    ax.axhline(0, color=NEUTRAL, ls="--")
    ax.set(xlabel="predicted", ylabel="residual (true - predicted)", title="Residuals vs predicted (holdout)")
    paths = {"Residuals vs predicted": save_png(fig, out / "residuals.png")}
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.hist(resid, bins=40, color=CURRENT)
    ax.set(xlabel="residual", ylabel="rows", title="Residual distribution (holdout)")
    paths["Residual distribution"] = save_png(fig, out / "residual_hist.png")
    return paths


def _plots_explanation(explained: Any, out: Path) -> dict[str, Path]:
    """Mean |contribution|, beeswarm, dependence of the top fields and permutation importance on the
    holdout (what it has of them)."""
    from mlship.evaluation.attribution_plots import explanation_figures

    return {f"{title} (holdout)": save_png(fig, out / f"explain_{stem}.png")
            for stem, title, fig in explanation_figures(pyplot(), explained)}


def explanation_text(manifest: dict[str, Any], explained: Any) -> str:
    """The card's explanation paragraph: how they were computed, or why there are none."""
    if explained is not None:
        return str(explained.describe())
    reason = (manifest.get("explain") or {}).get("reason")
    return f"No global explanations{': ' + reason if reason else ''}."


def _range(field: dict[str, Any]) -> str:
    if field.get("categories"):
        return ", ".join(map(str, field["categories"][:8]))
    return f"{number(field.get('minimum'))} … {number(field.get('maximum'))}"


def cross_validation_rows(cv: dict[str, Any] | None) -> tuple[list[str], list[list[Any]]]:
    """The cross-validation section as a table: header and one row per metric (mean, std, each fold)."""
    if not cv or not cv.get("metrics"):
        return [], []
    folds = max(len(m.get("folds") or []) for m in cv["metrics"].values())
    header = ["metric", "mean", "std", *[f"fold {i + 1}" for i in range(folds)]]
    rows = [[name, m.get("mean"), m.get("std"), *(m.get("folds") or [])] for name, m in cv["metrics"].items()]
    return header, rows


def _markdown(manifest: dict[str, Any], metrics: dict[str, Any], plots: dict[str, Path], root: Path,
              explain: tuple[str, dict[str, Path]]) -> str:
    parity = manifest["parity"]
    md = [f"# {_title(manifest)}", "", manifest.get("description") or "", "",
          f"- Task: **{manifest['task']}**", f"- Estimator: `{manifest['lineage']['estimator']['class']}`",
          f"- Created: {manifest['created_at']}", f"- Git commit: {manifest['lineage'].get('git_commit')}",
          f"- Holdout: {manifest['lineage']['holdout']['rows']} rows, sha256 "
          f"`{manifest['lineage']['holdout']['sha256'][:16]}…`", "",
          "## Holdout metrics (onnxruntime, what serves)", "", "| metric | value |", "| --- | --- |"]
    md += [f"| {k} | {number(v)} |" for k, v in metrics.items()]
    md += ["", "## Parity: scikit-learn vs onnxruntime", "",
           f"max abs diff {parity['max_abs_diff']:.3g}, rows over tolerance {parity['rows_over_tolerance']} "
           f"of {parity['rows']} (tolerance {parity['tolerance']:g}), label agreement "
           f"{parity['label_agreement']:.4f}: **{'passed' if parity['passed'] else 'failed'}**", "",
           "## Inputs", "", "| feature | type | nullable | range / categories |", "| --- | --- | --- | --- |"]
    fields = manifest["input_schema"]["fields"]
    md += [f"| {f['name']} | {f['dtype']} | {f['nullable']} | {_range(f)} |" for f in fields]
    header, rows = cross_validation_rows(manifest.get("cross_validation"))
    if rows:
        cv = manifest["cross_validation"]
        md += ["", "## Cross-validation", "", f"{cv.get('folds')} folds on {cv.get('rows')} rows "
               f"({cv.get('data', 'train')} data).", "", "| " + " | ".join(header) + " |",
               "| " + " | ".join("---" for _ in header) + " |"]
        md += ["| " + " | ".join(number(v) for v in row) + " |" for row in rows]
    md += ["", "## Explanations", "", explain[0], ""]
    md += [f"![{t}]({p.relative_to(root).as_posix()})" for t, p in explain[1].items()]
    md += ["", "## Plots", ""]
    md += [f"![{t}]({p.relative_to(root).as_posix()})" for t, p in plots.items()]
    return "\n".join(md) + "\n"


def _title(manifest: dict[str, Any]) -> str:
    return f"Model card: {manifest['name']} {manifest['version']}"


def render_model_card(bundle_dir: str | Path, manifest: dict[str, Any], y_true: Any, prediction: Any, *,
                      explained: Any = None) -> None:
    """Write ``model_card.md``, ``model_card.html`` and ``card/*.png`` into the bundle directory;
    ``explained`` (:class:`~mlship.evaluation.attributions.GlobalExplanation`) adds its plots."""
    root = Path(bundle_dir)
    card = root / CARD_DIR
    if manifest["task"] == "classification":
        plots = _plots_classification(np.asarray(y_true), prediction, manifest["output_schema"]["classes"], card)
    else:
        plots = _plots_regression(np.asarray(y_true), prediction, card)
    explain = (explanation_text(manifest, explained), _plots_explanation(explained, card) if explained else {})
    metrics = {k: v for k, v in manifest["metrics"]["holdout"].items() if not isinstance(v, list)}
    (root / "model_card.md").write_text(_markdown(manifest, metrics, plots, root, explain), encoding="utf-8")
    cv_header, cv_rows = cross_validation_rows(manifest.get("cross_validation"))
    inputs = [[f["name"], f["dtype"], f["nullable"], _range(f)] for f in manifest["input_schema"]["fields"]]
    figures = [{"title": t, "uri": png_uri(p.read_bytes())} for t, p in plots.items()]
    explain_figures = [{"title": t, "uri": png_uri(p.read_bytes())} for t, p in explain[1].items()]
    page = render_page(TEMPLATES, "model_card.html.j2", title=_title(manifest), m=manifest, metrics=metrics,
                       inputs=inputs, cv=manifest.get("cross_validation"), cv_header=cv_header, cv_rows=cv_rows,
                       figures=figures, explain_text=explain[0], explain_figures=explain_figures)
    (root / "model_card.html").write_text(page, encoding="utf-8")
