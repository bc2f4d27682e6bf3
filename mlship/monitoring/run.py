"""One monitor run: window of records -> drift, performance with late labels, fairness ->
metrics, events and reports. Shared by the monitor Lambda and ``mlship monitor run``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlship.monitoring.config import MonitorConfig
from mlship.monitoring.publish import Metric

log = logging.getLogger("mlship.monitoring")


@dataclass
class MonitorResult:
    """What a run found and where it wrote it."""

    report: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    report_uris: dict[str, str] = field(default_factory=dict)
    html: str = ""

    @property
    def drift_detected(self) -> bool:
        return any(e["detail_type"] == "DriftDetected" for e in self.events)

    @property
    def performance_degraded(self) -> bool:
        return any(e["detail_type"] == "PerformanceDegraded" for e in self.events)

    def summary(self) -> dict[str, Any]:
        drift = self.report.get("drift") or {}
        perf = self.report.get("performance") or {}
        return {"model": self.report.get("model"), "rows": drift.get("rows"),
                "dataset_drift": drift.get("dataset_drift"), "share": drift.get("share"),
                "drifted_features": drift.get("drifted_features"),
                "prediction_drift": drift.get("prediction_drift"),
                "performance": {k: perf.get(k) for k in ("status", "primary_metric", "value", "reference",
                                                         "labelled_rows")},
                "events": [e["detail_type"] for e in self.events], "reports": self.report_uris}


def _score_of(outputs_probs: list[Any] | None) -> np.ndarray | None:
    from mlship.stats.profile import prediction_score

    if not outputs_probs or any(p is None for p in outputs_probs):
        return None
    probs = np.asarray(outputs_probs, dtype=np.float64)
    return prediction_score(probs) if probs.ndim == 2 else None


def run_monitor(config: MonitorConfig, *, now: datetime | None = None,
                progress: Callable[[str], None] | None = None) -> MonitorResult:
    """Compute and publish one monitoring run (see docs/monitoring.md)."""
    from mlship.monitoring import html as html_report
    from mlship.monitoring import publish
    from mlship.monitoring.performance import evaluate, join, read_labels
    from mlship.monitoring.window import Window, batches, hour_prefixes, iter_window_records
    from mlship.runtime.sources import open_bundle
    from mlship.stats.drift import DriftAccumulator
    from mlship.stats.fairness import fairness_metrics

    say = progress or (lambda msg: log.info(msg))
    now = (now or datetime.now(UTC)).astimezone(UTC)
    bundle = open_bundle(config.model_uri)
    _verify(bundle)
    manifest, profile = bundle.manifest, bundle.profile
    name, version, task = bundle.name, bundle.version, bundle.task
    features = list((profile.get("features") or {}).keys())
    sensitive = config.sensitive_attribute or (manifest.get("lineage") or {}).get("sensitive_attribute")
    positive = _positive_class(manifest)

    # ---- drift over the window, one streaming pass
    window = Window.ending(now, config.window_hours)
    prefixes = hour_prefixes(config.records_prefix, name, version, window, config.layout)
    say(f"reading records of {name} v{version} from s3://{config.records_bucket}/ "
        f"({len(prefixes)} hour partition(s), {window.start:%Y-%m-%d %H:%M} to {window.end:%H:%M} UTC)")
    acc = DriftAccumulator(profile)
    stats: dict[str, int] = {}
    groups: dict[str, list[int]] = {}  # sensitive group -> [rows, predicted positive]
    records = iter_window_records(config.records_bucket, prefixes, window, features, stats)
    for batch in batches(records, features, config.batch_rows):
        preds: dict[str, Any] = {}
        if task == "classification":
            preds["label"] = np.array([str(p) for p in batch.predictions], dtype=object)
            score = _score_of(batch.probabilities)
            if score is not None:
                preds["score"] = score
        else:
            preds["value"] = np.array([p if p is not None else np.nan for p in batch.predictions], dtype=float)
        acc.update(batch.columns, preds)
        if sensitive and sensitive in batch.columns and positive is not None:
            for g, p in zip(batch.columns[sensitive].tolist(), batch.predictions, strict=True):
                entry = groups.setdefault("<null>" if g is None else str(g), [0, 0])
                entry[0] += 1
                entry[1] += int(str(p) == str(positive))
        if acc.rows and acc.rows % (config.batch_rows * 20) == 0:
            say(f"  {acc.rows:,} rows")
    drift = acc.result(config.thresholds)
    say(f"{acc.rows:,} rows in the window: {drift.summary()}")

    # ---- performance over the labelled window
    perf: dict[str, Any] | None = None
    labelled = None
    label_window = Window.ending(now, config.label_window_hours)
    labels = read_labels(config.records_bucket, config.labels_prefix, name,
                         since=label_window.start - timedelta(hours=1), stats=stats)
    if labels:
        label_prefixes = hour_prefixes(config.records_prefix, name, version, label_window, config.layout)
        labelled = join(iter_window_records(config.records_bucket, label_prefixes, label_window, features),
                        labels, sensitive)
        perf = evaluate(labelled, manifest, metric=config.primary_metric, tolerance=config.performance_tolerance,
                        min_rows=config.min_labelled_rows)
        say(f"{len(labels):,} labels, {len(labelled):,} joined to records: {perf['primary_metric']} = "
            f"{perf.get('value')} (holdout {perf.get('reference')}; {perf['status']})")
    else:
        perf = {"status": "no-labels", "labelled_rows": 0, "degraded": False}
        say("no labels in the label window")

    # ---- fairness
    fairness: dict[str, Any] | None = None
    if sensitive:
        fairness = {"attribute": sensitive, "positive_label": positive, "window": _parity_from_counts(groups)}
        if labelled is not None and len(labelled) and task == "classification" and positive is not None:
            fairness["labelled"] = fairness_metrics(labelled.y_true, labelled.y_pred, labelled.sensitive,
                                                    positive_label=positive)

    # ---- metrics, alerts, events
    dims = {"Model": name, "Version": version}
    metrics = [Metric("DriftShare", drift.share, "None", dims),
               Metric("DatasetDrift", float(drift.dataset_drift), "None", dims),
               Metric("PredictionDrift", float(drift.prediction_drift), "None", dims),
               Metric("Rows", float(acc.rows), "Count", dims)]
    for fname, f in drift.features.items():
        effect = f.get("wasserstein_norm") if f.get("type") == "numeric" else f.get("jensenshannon")
        if effect is not None and np.isfinite(effect):
            metrics.append(Metric("FeatureDrift", float(effect), "None", {**dims, "Feature": fname}))
    if perf.get("value") is not None:
        metrics.append(Metric("ModelQuality", float(perf["value"]), "None", dims))
        metrics.append(Metric("LabelledRows", float(perf["labelled_rows"]), "Count", dims))
    metrics.append(Metric("PerformanceDegraded", float(bool(perf.get("degraded"))), "None", dims))
    fair_alert = None
    if fairness:
        block = fairness.get("labelled") or fairness.get("window") or {}
        for key, metric_name in (("demographic_parity_difference", "DemographicParityDifference"),
                                 ("equalized_odds_difference", "EqualizedOddsDifference")):
            value = block.get(key)
            if value is not None and np.isfinite(value):
                metrics.append(Metric(metric_name, float(value), "None", dims))
                if value > config.fairness_threshold:
                    fair_alert = f"{key} {value:.3f} > {config.fairness_threshold:g} by {sensitive}"

    stamp = now.strftime("%Y/%m/%d/%H%M%SZ")
    base = publish.report_prefix(config.reports_prefix, name, version)
    reports_bucket = config.reports_bucket or config.records_bucket
    uris = {"json": f"s3://{reports_bucket}/{base}/{stamp}/report.json",
            "html": f"s3://{reports_bucket}/{base}/{stamp}/report.html"}
    alerts, events = [], []
    detail_base = {"model": {"name": name, "version": version}, "report": uris["html"],
                   "report_json": uris["json"], "window": window.to_dict()}
    if drift.dataset_drift or drift.prediction_drift:
        msg = drift.summary()
        alerts.append({"type": "DriftDetected", "message": msg})
        events.append({"detail_type": "DriftDetected",
                       "detail": {**detail_base, "share": drift.share, "dataset_drift": drift.dataset_drift,
                                  "prediction_drift": drift.prediction_drift,
                                  "drifted_features": drift.drifted_features, "rows": acc.rows}})
    if perf.get("degraded"):
        msg = (f"{perf['primary_metric']} {perf['value']:.4f} vs holdout {perf['reference']:.4f} "
               f"over {perf['labelled_rows']} labelled rows (tolerance {config.performance_tolerance:g})")
        alerts.append({"type": "PerformanceDegraded", "message": msg})
        events.append({"detail_type": "PerformanceDegraded",
                       "detail": {**detail_base, "metric": perf["primary_metric"], "value": perf["value"],
                                  "reference": perf["reference"], "labelled_rows": perf["labelled_rows"]}})
    if fair_alert:
        alerts.append({"type": "FairnessGap", "message": fair_alert})

    report = {"format": "mlship-monitor-report/1", "generated_at": now.isoformat(),
              "model": {"name": name, "version": version, "task": task, "uri": config.model_uri},
              "window": window.to_dict(), "label_window": label_window.to_dict(),
              "input": {"bucket": config.records_bucket, "prefixes": prefixes, **stats},
              "drift": drift.to_dict(), "performance": perf, "fairness": fairness, "alerts": alerts,
              "events": [e["detail_type"] for e in events], "reports": uris}
    report = _jsonable(report)
    history = publish.read_history(reports_bucket, base) if config.reports_bucket is not None else []
    pred_score = next((p.get("score") for p in drift.to_dict()["predictions"].values()), None)
    entry = {"time": now.isoformat(), "share": drift.share, "dataset_drift": drift.dataset_drift,
             "prediction_score": pred_score, "quality": perf.get("value"), "rows": acc.rows, "report": uris["html"]}
    page = html_report.render(report, [*history, entry])
    result = MonitorResult(report=report, metrics=metrics, events=events, html=page)
    if config.reports_bucket is not None:
        result.report_uris = publish.write_reports(reports_bucket, base, stamp, report, page, entry)
        say(f"report written to {result.report_uris['html']}")
    result.report["metrics_published"] = publish.publish_metrics(metrics, config.namespace, config.metrics_mode)
    if config.emit_events and events:
        publish.put_events(events, config.event_bus_name)
        say(f"events sent to bus '{config.event_bus_name}': {', '.join(e['detail_type'] for e in events)}")
    return result


def _verify(bundle: Any) -> None:
    """Hashes always; the signature too when MLSHIP_PUBLIC_KEY is set (as the predictor does)."""
    from mlship.runtime.predictor import resolve_public_key

    bundle.verify(resolve_public_key(None))


def _positive_class(manifest: dict[str, Any]) -> Any:
    classes = (manifest.get("output_schema") or {}).get("classes") or []
    return classes[-1] if len(classes) == 2 else None


def _parity_from_counts(groups: dict[str, list[int]]) -> dict[str, Any]:
    """Selection rates per group and demographic parity (window-wide, no labels needed)."""
    rates = {g: {"count": n, "selection_rate": pos / n} for g, (n, pos) in sorted(groups.items()) if n}
    if not rates:
        return {"groups": {}, "demographic_parity_difference": None, "demographic_parity_ratio": None}
    vals = [v["selection_rate"] for v in rates.values()]
    hi, lo = max(vals), min(vals)
    return {"groups": rates, "demographic_parity_difference": hi - lo,
            "demographic_parity_ratio": lo / hi if hi > 0 else 1.0}


def _jsonable(value: Any) -> Any:
    from mlship.stats.drift import _jsonable as drift_jsonable

    return drift_jsonable(value)
