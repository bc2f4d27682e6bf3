"""The model card: Markdown and self-contained HTML rendered from the manifest, with plots
(confusion matrix, ROC and precision-recall for classifiers; residuals for regressors)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

CARD_DIR = "card"


def _plots_classification(y: np.ndarray, pred: Any, classes: list[Any], out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlship.stats.metrics import classification_metrics

    paths: dict[str, Path] = {}
    cm = np.asarray(classification_metrics(y, pred.labels, None, classes)["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), [str(c) for c in classes])
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_title("Confusion matrix (holdout)")
    fig.tight_layout()
    paths["Confusion matrix"] = _save(fig, out / "confusion_matrix.png")
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
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC curve (holdout)")
        fig.tight_layout()
        paths["ROC curve"] = _save(fig, out / "roc.png")
        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.plot(tpr[1:], precision)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall curve (holdout)")
        fig.tight_layout()
        paths["Precision-recall curve"] = _save(fig, out / "pr.png")
    return paths


def _plots_regression(y: np.ndarray, pred: Any, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resid = np.asarray(y, dtype=float) - pred.values
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.scatter(pred.values, resid, s=4, alpha=0.5)
    ax.axhline(0, color="grey", ls="--")
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (true - predicted)")
    ax.set_title("Residuals vs predicted (holdout)")
    fig.tight_layout()
    paths = {"Residuals vs predicted": _save(fig, out / "residuals.png")}
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.hist(resid, bins=40)
    ax.set_xlabel("residual")
    ax.set_title("Residual distribution (holdout)")
    fig.tight_layout()
    paths["Residual distribution"] = _save(fig, out / "residual_hist.png")
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_model_card(bundle_dir: str | Path, manifest: dict[str, Any], y_true: Any, prediction: Any) -> None:
    """Write ``model_card.md``, ``model_card.html`` and ``card/*.png`` into the bundle directory."""
    root = Path(bundle_dir)
    card = root / CARD_DIR
    if manifest["task"] == "classification":
        plots = _plots_classification(np.asarray(y_true), prediction, manifest["output_schema"]["classes"], card)
    else:
        plots = _plots_regression(np.asarray(y_true), prediction, card)
    metrics = {k: v for k, v in manifest["metrics"]["holdout"].items() if not isinstance(v, list)}
    parity = manifest["parity"]
    fields = manifest["input_schema"]["fields"]
    title = f"Model card: {manifest['name']} {manifest['version']}"
    md = [f"# {title}", "", manifest.get("description") or "", "",
          f"- Task: **{manifest['task']}**", f"- Estimator: `{manifest['lineage']['estimator']['class']}`",
          f"- Created: {manifest['created_at']}", f"- Git commit: {manifest['lineage'].get('git_commit')}",
          f"- Holdout: {manifest['lineage']['holdout']['rows']} rows, sha256 "
          f"`{manifest['lineage']['holdout']['sha256'][:16]}…`", "",
          "## Holdout metrics (onnxruntime, what serves)", "", "| metric | value |", "| --- | --- |"]
    md += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    md += ["", "## Parity: scikit-learn vs onnxruntime", "",
           f"max abs diff {parity['max_abs_diff']:.3g}, rows over tolerance {parity['rows_over_tolerance']} "
           f"of {parity['rows']} (tolerance {parity['tolerance']:g}), label agreement "
           f"{parity['label_agreement']:.4f}: **{'passed' if parity['passed'] else 'failed'}**", "",
           "## Inputs", "", "| feature | type | nullable | range / categories |", "| --- | --- | --- | --- |"]
    for f in fields:
        rng = ", ".join(f["categories"][:8]) if f.get("categories") else f"{f.get('minimum')} … {f.get('maximum')}"
        md.append(f"| {f['name']} | {f['dtype']} | {f['nullable']} | {rng} |")
    if manifest.get("cross_validation"):
        md += ["", "## Cross-validation", "", "```", json.dumps(manifest["cross_validation"]["metrics"], indent=1),
               "```"]
    md += ["", "## Plots", ""]
    md += [f"![{t}]({p.relative_to(root).as_posix()})" for t, p in plots.items()]
    (root / "model_card.md").write_text("\n".join(md) + "\n", encoding="utf-8")

    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in metrics.items())
    feats = "".join(
        f"<tr><td>{html.escape(f['name'])}</td><td>{f['dtype']}</td><td>{f['nullable']}</td><td>"
        + html.escape(", ".join(f["categories"][:8]) if f.get("categories")
                      else f"{f.get('minimum')} … {f.get('maximum')}") + "</td></tr>" for f in fields)
    imgs = "".join(
        f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'/><figcaption>{html.escape(t)}</figcaption></figure>"
        for t, p in plots.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}figure{{display:inline-block;margin:8px}}
.pass{{color:#070}}.fail{{color:#a00}}</style></head><body>
<h1>{html.escape(title)}</h1><p>{html.escape(manifest.get('description') or '')}</p>
<p>Task <b>{manifest['task']}</b> · estimator <code>{html.escape(manifest['lineage']['estimator']['class'])}</code>
 · created {manifest['created_at']}</p>
<h2>Holdout metrics (onnxruntime)</h2><table><tr><th>metric</th><th>value</th></tr>{rows}</table>
<h2>Parity</h2><p class="{'pass' if parity['passed'] else 'fail'}">max abs diff {parity['max_abs_diff']:.3g};
{parity['rows_over_tolerance']} of {parity['rows']} rows over {parity['tolerance']:g};
label agreement {parity['label_agreement']:.4f}</p>
<h2>Inputs</h2><table><tr><th>feature</th><th>type</th><th>nullable</th><th>range / categories</th></tr>{feats}</table>
<h2>Plots</h2>{imgs}</body></html>"""
    (root / "model_card.html").write_text(page, encoding="utf-8")
