"""The shadow report: records of a window → agreement, differences, errors, latency and (with
late labels) both models' quality on the same rows → JSON + a self-contained HTML page
(Jinja2 template, matplotlib plots inlined). The measures are :mod:`mlship.monitoring.shadow`'s."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlship.monitoring import shadow as measures
from mlship.monitoring.shadow_labels import labelled
from mlship.stats.plots import figure_uri, pyplot
from mlship.stats.reports import render_page

FORMAT = "mlship-shadow/1"
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class ShadowSpec:
    """What to compare: which records are the shadow's, how to slice, the interval's confidence."""

    shadow_variant: str | None = None  # an endpoint's shadow variant; None: the Lambda's role: shadow records
    primary_variant: str | None = None
    slices: list[str] = field(default_factory=list)
    confidence: float = 0.95
    task: str = "classification"


def build_report(records: Iterable[dict[str, Any]], spec: ShadowSpec, *, labels: dict[tuple[str, int], Any] | None,
                 window: dict[str, str] | None = None, source: str = "") -> dict[str, Any]:
    """The JSON-ready report (raises :class:`~mlship.monitoring.shadow.ShadowReportError` when no
    row has both answers)."""
    pairs = measures.pair(records, shadow_variant=spec.shadow_variant, primary_variant=spec.primary_variant)
    measures.check_pairs(pairs, shadow_variant=spec.shadow_variant, primary_variant=spec.primary_variant)
    answered = [(p, s) for p, s in zip(pairs.primary, pairs.shadow, strict=True) if s.get("outputs")]
    features = measures.slice_features(answered, spec.slices)
    return {
        "format": FORMAT, "id": uuid.uuid4().hex[:12], "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source, "window": window, "task": spec.task,
        "champion": _identity(pairs.primary, spec.primary_variant),
        "shadow": _identity(pairs.shadow, spec.shadow_variant),
        "rows": {"joined": len(pairs), "answered_by_shadow": len(answered),
                 "champion_only": pairs.unmatched_primary, "shadow_only": pairs.unmatched_shadow},
        "agreement": measures.agreement(answered, spec.confidence),
        "delta": measures.deltas(answered),
        "by_class": measures.by_group(answered, measures.prediction_of),
        "by_slice": {name: measures.by_group(answered, lambda rec, n=name: (rec.get("inputs") or {}).get(n))
                     for name in features},
        "errors": measures.errors(pairs.shadow),
        "latency": measures.latency(pairs.shadow),
        "labelled": labelled(answered, labels, spec.task) if labels else None,
    }


def _identity(side: list[dict[str, Any]], variant: str | None) -> dict[str, Any]:
    models = {json.dumps(r.get("model"), sort_keys=True) for r in side if r.get("model")}
    models.discard(json.dumps({"name": None, "version": None}, sort_keys=True))
    model = json.loads(sorted(models)[0]) if len(models) == 1 else None
    return {"model": model, "models": len(models), "variant": variant}


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its per-row values (what the registry and the gate keep)."""
    out = json.loads(json.dumps(report))
    out["delta"].pop("values", None)
    if out.get("latency"):
        out["latency"].pop("primary_values", None)
        out["latency"].pop("shadow_values", None)
    return out


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``shadow.json`` (the summary) and ``shadow.html`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "shadow.json", out / "shadow.html"
    json_path.write_text(json.dumps(summary(report), indent=2, default=str))
    html_path.write_text(render_html(report))
    return json_path, html_path


def render_html(report: dict[str, Any]) -> str:
    """The HTML page of a report."""
    pct = {"pct": lambda v, d=2: "–" if v is None else f"{100 * v:.{d}f}%"}
    return render_page(TEMPLATES, "shadow.html.j2", pct, report=report, figures=figures(report))


def figures(report: dict[str, Any]) -> list[dict[str, str]]:
    """Title, caption and PNG data URI of each plot."""
    figs = []
    if report["delta"]["values"]:
        figs.append({"title": "Difference per row", "uri": _delta_histogram(report["delta"]["values"]),
                     "caption": "Largest absolute probability difference between champion and shadow per row "
                                "(|Δ value| for a regressor); log-scaled counts."})
    if report["by_slice"] or report["by_class"]:
        figs.append({"title": "Disagreement by class and slice", "uri": _disagreement(report),
                     "caption": "Share of rows whose labels differ, per champion class and per value of each "
                                "sliced input."})
    if report.get("latency"):
        figs.append({"title": "Latency per request", "uri": _latency(report["latency"]),
                     "caption": "Champion: event to answer; shadow: its own scoring after the answer (ms)."})
    return figs


def _delta_histogram(values: list[float]) -> str:
    fig, ax = pyplot().subplots(figsize=(7, 3))
    ax.hist(values, bins=min(50, max(5, len(values) // 5)), color="#4c78a8", log=True)
    ax.set_xlabel("|Δp| (max over classes)")
    ax.set_ylabel("rows")
    return figure_uri(fig)


def _disagreement(report: dict[str, Any]) -> str:
    groups = [("class", report["by_class"])] + list(report["by_slice"].items())
    labels, rates = [], []
    for name, values in groups:
        for group, stats in values.items():
            labels.append(f"{name}={group}")
            rates.append(stats["disagreement"])
    fig, ax = pyplot().subplots(figsize=(7, max(2.0, 0.28 * len(labels) + 0.8)))
    ax.barh(np.arange(len(labels)), rates, color="#f58518")
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("disagreement rate")
    return figure_uri(fig)


def _latency(latency: dict[str, Any]) -> str:
    fig, ax = pyplot().subplots(figsize=(7, 3))
    ax.boxplot([latency["primary_values"], latency["shadow_values"]], showfliers=True)
    ax.set_xticks([1, 2], ["champion", "shadow"])
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    return figure_uri(fig)


@dataclass
class ShadowSource:
    """Where the window's records are: the Lambda's capture partitions of the champion
    (``model``/``version``), or an endpoint's data capture (``endpoint``: every variant under it)."""

    bucket: str
    prefix: str
    model: str | None = None
    version: str | None = None
    endpoint: str | None = None

    def describe(self) -> str:
        where = f"endpoint {self.endpoint}" if self.endpoint else f"model {self.model}/{self.version}"
        return f"s3://{self.bucket}/{self.prefix.strip('/')}/ ({where})"


def read_window(source: ShadowSource, window: Any, stats: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """Every record of the window, the shadow's included (``role: shadow`` for the Lambda; each data
    capture record's variant from its key)."""
    from mlship.monitoring.config import LAYOUT_CAPTURE, LAYOUT_MLSHIP
    from mlship.monitoring.window import hour_prefixes, iter_window_records

    if source.endpoint:
        prefixes = [p for variant in _variants(source) for p in
                    hour_prefixes(f"{source.prefix.strip('/')}/{source.endpoint}/{variant}", "", "", window,
                                  LAYOUT_CAPTURE)]
    else:
        prefixes = hour_prefixes(source.prefix, str(source.model), str(source.version), window, LAYOUT_MLSHIP)
    return list(iter_window_records(source.bucket, prefixes, window, stats=stats, shadow=True))


def _variants(source: ShadowSource) -> list[str]:
    """The variants with data capture under the endpoint's prefix."""
    from mlship.aws.clients import client

    base = f"{source.prefix.strip('/')}/{source.endpoint}/"
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=base, Delimiter="/")
    return [p["Prefix"][len(base):].strip("/") for page in pages for p in page.get("CommonPrefixes", [])]


def infer_task(records: list[dict[str, Any]]) -> str:
    """Classification when the answers carry probabilities, regression otherwise."""
    for rec in records:
        outputs = rec.get("outputs") or {}
        if outputs:
            return "classification" if "probabilities" in outputs else "regression"
    return "classification"
