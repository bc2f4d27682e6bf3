"""One monitor run: window of records -> drift, attribution drift, performance with late labels,
fairness -> metrics, events and reports. Shared by the monitor Lambda and ``mlship monitor run``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from mlship.monitoring.config import MonitorConfig
from mlship.monitoring.publish import Metric
from mlship.runtime.jsonutil import jsonable

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

    @property
    def attribution_drift(self) -> bool:
        return any(e["detail_type"] == "AttributionDrift" for e in self.events)

    def summary(self) -> dict[str, Any]:
        drift = self.report.get("drift") or {}
        perf = self.report.get("performance") or {}
        attribution = self.report.get("attribution_drift") or {}
        return {"model": self.report.get("model"), "rows": drift.get("rows"),
                "drift_status": drift.get("status"), "drift_reason": drift.get("reason"),
                "dataset_drift": drift.get("dataset_drift"), "share": drift.get("share"),
                "drifted_features": drift.get("drifted_features"),
                "prediction_drift": drift.get("prediction_drift"),
                "performance": {k: perf.get(k) for k in ("status", "primary_metric", "value", "reference",
                                                         "labelled_rows")},
                "attribution_drift": {k: attribution.get(k) for k in ("status", "value", "threshold", "drifted",
                                                                      "rows_explained", "reason")},
                "events": [e["detail_type"] for e in self.events], "reports": self.report_uris,
                "spark_job": self.report.get("spark_job")}


@dataclass
class _Target:
    """The monitored model: its verified bundle and what the run reads from it."""

    bundle: Any
    features: list[str]
    sensitive: str | None  # the attribute fairness is computed by (config, else the bundle's lineage)
    positive: Any  # the positive class of a binary classifier, else None

    @property
    def name(self) -> str:
        return str(self.bundle.name)

    @property
    def version(self) -> str:
        return str(self.bundle.version)

    @property
    def task(self) -> str:
        return str(self.bundle.task)


@dataclass
class _WindowScan:
    """One streaming pass over the window's records: drift, and predictions per sensitive group."""

    window: Any
    prefixes: list[str]
    drift: Any  # mlship.stats.drift.DriftResult
    rows: int
    groups: dict[str, list[int]]  # sensitive group -> [rows, predicted positive]
    sample: Any = None  # mlship.monitoring.attribution.RowSample: the rows attribution drift explains


@dataclass
class _Performance:
    """Model quality over the label window, from the records the labels join to."""

    label_window: Any
    perf: dict[str, Any]
    labelled: Any  # the joined rows, None without labels


@dataclass
class WindowPlan:
    """The window a run reads: its time interval, hour prefixes and the listing of its objects
    (made once, before anything is read: the sizes decide between the in-process and Spark paths)."""

    window: Any  # mlship.monitoring.window.Window
    prefixes: list[str]
    objects: list[Any]  # mlship.monitoring.window.WindowObject, in listing order

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects)


def run_monitor(config: MonitorConfig, *, now: datetime | None = None,
                progress: Callable[[str], None] | None = None) -> MonitorResult:
    """Compute and publish one monitoring run (see docs/monitoring.md); a window whose stored size is
    over ``config.spark_above_bytes`` is submitted as a Spark job (``mlship.monitoring.submit``),
    which publishes the run itself, and the result says so (``report["spark_job"]``)."""
    from mlship.monitoring.window import iter_object_records

    say = progress or (lambda msg: log.info(msg))
    now = (now or datetime.now(UTC)).astimezone(UTC)
    target = load_target(config)
    plan = plan_window(config, target, now, say)
    stored = _stored_to_read(config, target, plan, now)
    if _spark_wanted(config, stored, say):
        from mlship.monitoring.submit import submit_window_job

        return submit_window_job(config, plan, now, say, stored=stored, model=(target.name, target.version))
    spec = scan_spec(config, target, plan.window)
    partial = spec.new_partial()
    records = iter_object_records(config.records_bucket, plan.objects, plan.window, target.features,
                                  partial.stats, workers=config.read_workers)
    partial.scan(records, spec, progress=lambda rows: say(f"  {rows:,} rows"))
    return finish(config, target, plan, partial, now, say=say)


def finish(config: MonitorConfig, target: _Target, plan: WindowPlan, partial: Any, now: datetime, *,
           say: Callable[[str], None] | None = None, join: Callable[..., Any] | None = None) -> MonitorResult:
    """Everything after the accumulation, one function for the in-process path and the Spark job:
    drift and attribution drift from the partial (``mlship.monitoring.partial.WindowPartial``),
    performance with late labels (``join(labels, label_plan, target)`` joins them to their records; default:
    read here), fairness, metrics, events, reports."""
    from mlship.monitoring import publish

    say = say or (lambda msg: log.info(msg))
    stats = dict(partial.stats)  # what was read (records, files, labels): the report's input section
    drift = partial.drift.result(config.thresholds)
    say(f"{partial.rows:,} rows in the window: {drift.summary()}")
    scan = _WindowScan(window=plan.window, prefixes=plan.prefixes, drift=drift, rows=partial.rows,
                       groups=partial.groups, sample=partial.sample)
    attribution = _attribution(config, target, scan, say)
    performance = _performance(config, target, now, stats, say, join)
    fairness = _fairness(target, scan.groups, performance.labelled)
    metrics = _run_metrics(target, scan, performance.perf, attribution)
    fair_alert = _fairness_metrics(config, target, fairness, metrics)

    stamp = now.strftime("%Y/%m/%d/%H%M%SZ")
    base = publish.report_prefix(config.reports_prefix, target.name, target.version)
    reports_bucket = config.reports_bucket or config.records_bucket
    uris = {"json": f"s3://{reports_bucket}/{base}/{stamp}/report.json",
            "html": f"s3://{reports_bucket}/{base}/{stamp}/report.html"}
    alerts, events = _alerts_and_events(config, target, scan, performance.perf, uris, attribution)
    if fair_alert:
        alerts.append({"type": "FairnessGap", "message": fair_alert})
    report = jsonable({
        "format": "mlship-monitor-report/1", "generated_at": now.isoformat(),
        "model": {"name": target.name, "version": target.version, "task": target.task, "uri": config.model_uri},
        "window": scan.window.to_dict(), "label_window": performance.label_window.to_dict(),
        "input": {"bucket": config.records_bucket, "prefixes": scan.prefixes, **stats},
        "drift": scan.drift.to_dict(), "attribution_drift": attribution, "performance": performance.perf,
        "fairness": fairness, "alerts": alerts,
        "events": [e["detail_type"] for e in events], "reports": uris})
    result = MonitorResult(report=report, metrics=metrics, events=events)
    _publish(config, result, scan, performance.perf, now, base=base, stamp=stamp, say=say)
    return result


def load_target(config: MonitorConfig) -> _Target:
    """The monitored bundle, verified, and what the run reads from it."""
    from mlship.runtime.sources import open_bundle

    bundle = open_bundle(config.model_uri)
    _verify(bundle)
    manifest = bundle.manifest
    sensitive = config.sensitive_attribute or (manifest.get("lineage") or {}).get("sensitive_attribute")
    features = list((bundle.profile.get("features") or {}).keys())
    return _Target(bundle=bundle, features=features, sensitive=sensitive, positive=_positive_class(manifest))


def plan_window(config: MonitorConfig, target: _Target, now: datetime,
                say: Callable[[str], None] | None = None) -> WindowPlan:
    """The window ending at ``now``, its hour prefixes and its objects (listed once)."""
    from mlship.monitoring.window import Window, hour_prefixes, list_window_objects

    window = Window.ending(now, config.window_hours)
    prefixes = hour_prefixes(config.records_prefix, target.name, target.version, window, config.layout)
    objects = list_window_objects(config.records_bucket, prefixes)
    plan = WindowPlan(window=window, prefixes=prefixes, objects=objects)
    if say is not None:
        say(f"reading records of {target.name} v{target.version} from s3://{config.records_bucket}/ "
            f"({len(prefixes)} hour partition(s), {window.start:%Y-%m-%d %H:%M} to {window.end:%H:%M} UTC): "
            f"{len(objects):,} object(s), {plan.bytes:,} bytes")
    return plan


def scan_spec(config: MonitorConfig, target: _Target, window: Any) -> Any:
    """What a scan of ``window`` accumulates (``mlship.monitoring.partial.ScanSpec``, picklable)."""
    from mlship.monitoring.partial import ScanSpec

    sample_fields = _attribution_fields(config, target)
    return ScanSpec(profile=dict(target.bundle.profile), features=target.features, task=target.task,
                    sensitive=target.sensitive, positive=target.positive, window=window,
                    sample_fields=sample_fields, sample_rows=config.attribution_sample_rows,
                    batch_rows=config.batch_rows)


def _stored_to_read(config: MonitorConfig, target: _Target, plan: WindowPlan, now: datetime) -> int:
    """The stored bytes a run reads: the window and, when there are labels to join, the label
    window's records too (24 hours by default: with labels, most of a run's reading). Only
    counted up to the Spark threshold (no threshold: the window's)."""
    stored = plan.bytes
    limit = config.spark_above_bytes
    if limit is not None and stored <= limit and _labels_to_join(config, target, now):
        stored += _label_plan(config, target, _label_window(config, now)).bytes
    return stored


def _spark_wanted(config: MonitorConfig, stored: int, say: Callable[[str], None]) -> bool:
    """True when the run's reading is over the Spark threshold and a Spark application is configured."""
    if config.spark_above_bytes is None or stored <= config.spark_above_bytes:
        return False
    if not config.spark_application_id:
        say(f"the run would read {stored:,} stored bytes, over SPARK_ABOVE_BYTES ({config.spark_above_bytes:,}), "
            "but no Spark application is configured: reading them here")
        return False
    return True


def _labels_to_join(config: MonitorConfig, target: _Target, now: datetime) -> bool:
    """Whether label objects were written during the label window (listed, not read)."""
    from mlship.aws.labels import label_keys

    since = _labels_since(_label_window(config, now))
    return bool(label_keys(config.records_bucket, config.labels_prefix, target.name, since=since))


def _label_window(config: MonitorConfig, now: datetime) -> Any:
    from mlship.monitoring.window import Window

    return Window.ending(now, config.label_window_hours)


def _labels_since(label_window: Any) -> datetime:
    """Label objects written from an hour before the label window on (an hour of slack)."""
    return label_window.start - timedelta(hours=1)


def _attribution_fields(config: MonitorConfig, target: _Target) -> list[str] | None:
    """The fields of the row sample attribution drift explains; None when there is nothing to compare it with."""
    from mlship.monitoring.attribution import read_baseline

    if config.attribution_sample_rows <= 0 or read_baseline(target.bundle.manifest)[0] is None:
        return None
    return [f["name"] for f in target.bundle.manifest["input_schema"]["fields"]]


def _attribution(config: MonitorConfig, target: _Target, scan: _WindowScan,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Attribution drift of the sampled window rows against the bundle's holdout attributions."""
    from mlship.monitoring.attribution import COMPUTED, attribution_drift

    result = attribution_drift(target.bundle, scan.sample, threshold=config.attribution_threshold)
    if result["status"] == COMPUTED:
        say(f"attribution drift over {result['rows_explained']:,} explained rows: total variation "
            f"{result['value']:.3f} (threshold {result['threshold']:g}; most moved: "
            f"{', '.join(result['top_fields'][:3])})")
    else:
        say(f"attribution drift: {result['status'].replace('_', ' ')} ({result['reason']})")
    return result


def _performance(config: MonitorConfig, target: _Target, now: datetime, stats: dict[str, int],
                 say: Callable[[str], None], join: Callable[..., Any] | None = None) -> _Performance:
    """Labels of the label window joined to their records, and the primary metric against the holdout."""
    from mlship.aws.labels import read_labels
    from mlship.monitoring.performance import evaluate

    label_window = _label_window(config, now)
    labels = read_labels(config.records_bucket, config.labels_prefix, target.name,
                         since=_labels_since(label_window), stats=stats)
    if not labels:
        say("no labels in the label window")
        return _Performance(label_window, {"status": "no-labels", "labelled_rows": 0, "degraded": False}, None)
    label_plan = _label_plan(config, target, label_window)
    labelled = (join or _join_here(config))(labels, label_plan, target)
    perf = evaluate(labelled, target.bundle.manifest, metric=config.primary_metric,
                    tolerance=config.performance_tolerance, min_rows=config.min_labelled_rows)
    say(f"{len(labels):,} labels, {len(labelled):,} joined to records: {perf['primary_metric']} = "
        f"{perf.get('value')} (holdout {perf.get('reference')}; {perf['status']})")
    return _Performance(label_window, perf, labelled)


def _label_plan(config: MonitorConfig, target: _Target, label_window: Any) -> WindowPlan:
    """The label window's prefixes and objects (the records the labels join to)."""
    from mlship.monitoring.window import hour_prefixes, list_window_objects

    prefixes = hour_prefixes(config.records_prefix, target.name, target.version, label_window, config.layout)
    return WindowPlan(window=label_window, prefixes=prefixes,
                      objects=list_window_objects(config.records_bucket, prefixes))


def _join_here(config: MonitorConfig) -> Callable[..., Any]:
    """The in-process join: the label window's records read here (``read_workers`` threads)."""
    from mlship.monitoring.performance import join
    from mlship.monitoring.window import iter_object_records

    def joined(labels: dict[tuple[str, int], Any], plan: WindowPlan, target: _Target) -> Any:
        records = iter_object_records(config.records_bucket, plan.objects, plan.window, target.features,
                                      workers=config.read_workers)
        return join(records, labels, target.sensitive)

    return joined


def _fairness(target: _Target, groups: dict[str, list[int]], labelled: Any) -> dict[str, Any] | None:
    """Selection-rate parity over the window and, with labels, fairness metrics of the labelled rows."""
    from mlship.stats.fairness import fairness_metrics

    if not target.sensitive:
        return None
    positive = target.positive
    fairness = {"attribute": target.sensitive, "positive_label": positive, "window": _parity_from_counts(groups)}
    if labelled is not None and len(labelled) and target.task == "classification" and positive is not None:
        fairness["labelled"] = fairness_metrics(labelled.y_true, labelled.y_pred, labelled.sensitive,
                                                positive_label=positive)
    return fairness


def _run_metrics(target: _Target, scan: _WindowScan, perf: dict[str, Any],
                 attribution: dict[str, Any]) -> list[Metric]:
    """The run's drift and quality metrics (dimensions: model, version and, per feature, feature)."""
    from mlship.stats.drift import effect_size

    dims = {"Model": target.name, "Version": target.version}
    drift = scan.drift
    metrics = [Metric("Rows", float(scan.rows), "Count", dims)]
    if drift.dataset_drift is not None:  # no datum without a verdict: too few rows is not "no drift"
        metrics += [Metric("DriftShare", drift.share, "None", dims),
                    Metric("DatasetDrift", float(drift.dataset_drift), "None", dims)]
        for fname, f in drift.features.items():
            effect = effect_size(f)
            if effect is not None:
                metrics.append(Metric("FeatureDrift", effect, "None", {**dims, "Feature": fname}))
    if drift.prediction_drift is not None:
        metrics.append(Metric("PredictionDrift", float(drift.prediction_drift), "None", dims))
    if perf.get("value") is not None:
        metrics.append(Metric("ModelQuality", float(perf["value"]), "None", dims))
        metrics.append(Metric("LabelledRows", float(perf["labelled_rows"]), "Count", dims))
    metrics.append(Metric("PerformanceDegraded", float(bool(perf.get("degraded"))), "None", dims))
    metrics += _attribution_metrics(attribution, dims)
    return metrics


def _attribution_metrics(attribution: dict[str, Any], dims: dict[str, str]) -> list[Metric]:
    """``AttributionShift`` (the total variation of the attribution shares), ``AttributionDrift`` (0/1)
    and per feature ``FeatureAttributionShift`` (its largest |share shift| over targets): only when
    computed, so a run that could not explain publishes no datum rather than a reassuring zero."""
    if attribution.get("status") != "computed":
        return []
    metrics = [Metric("AttributionShift", float(attribution["value"]), "None", dims),
               Metric("AttributionDrift", float(bool(attribution["drifted"])), "None", dims)]
    for fname, f in attribution["fields"].items():
        metrics.append(Metric("FeatureAttributionShift", float(max(abs(v) for v in f["share_shift"])), "None",
                              {**dims, "Feature": fname}))
    return metrics


def _fairness_metrics(config: MonitorConfig, target: _Target, fairness: dict[str, Any] | None,
                      metrics: list[Metric]) -> str | None:
    """Append the fairness gap metrics; return the alert message when a gap exceeds the threshold."""
    if not fairness:
        return None
    dims = {"Model": target.name, "Version": target.version}
    fair_alert = None
    block = fairness.get("labelled") or fairness.get("window") or {}
    for key, metric_name in (("demographic_parity_difference", "DemographicParityDifference"),
                             ("equalized_odds_difference", "EqualizedOddsDifference")):
        value = block.get(key)
        if value is not None and np.isfinite(value):
            metrics.append(Metric(metric_name, float(value), "None", dims))
            if value > config.fairness_threshold:
                fair_alert = f"{key} {value:.3f} > {config.fairness_threshold:g} by {target.sensitive}"
    return fair_alert


def _alerts_and_events(config: MonitorConfig, target: _Target, scan: _WindowScan, perf: dict[str, Any],
                       uris: dict[str, str],
                       attribution: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Alerts for the report and EventBridge events for drift, attribution drift and degraded performance."""
    drift = scan.drift
    alerts, events = [], []
    detail_base = {"model": {"name": target.name, "version": target.version}, "report": uris["html"],
                   "report_json": uris["json"], "window": scan.window.to_dict()}
    if drift.dataset_drift or drift.prediction_drift:
        alerts.append({"type": "DriftDetected", "message": drift.summary()})
        events.append({"detail_type": "DriftDetected",
                       "detail": {**detail_base, "share": drift.share, "dataset_drift": drift.dataset_drift,
                                  "prediction_drift": drift.prediction_drift,
                                  "drifted_features": drift.drifted_features, "rows": scan.rows}})
    if attribution.get("status") == "computed" and attribution["drifted"]:
        top = attribution["top_fields"][:3]
        alerts.append({"type": "AttributionDrift",
                       "message": f"attribution shares moved by {attribution['value']:.3f} (total variation; "
                                  f"threshold {attribution['threshold']:g}), most in {', '.join(top)}"})
        events.append({"detail_type": "AttributionDrift",
                       "detail": {**detail_base, "statistic": attribution["statistic"], "value": attribution["value"],
                                  "threshold": attribution["threshold"], "top_fields": top,
                                  "share_shift": {f: attribution["fields"][f]["share_shift"] for f in top},
                                  "rows_explained": attribution["rows_explained"], "rows": scan.rows}})
    if perf.get("degraded"):
        msg = (f"{perf['primary_metric']} {perf['value']:.4f} vs holdout {perf['reference']:.4f} "
               f"over {perf['labelled_rows']} labelled rows (tolerance {config.performance_tolerance:g})")
        alerts.append({"type": "PerformanceDegraded", "message": msg})
        events.append({"detail_type": "PerformanceDegraded",
                       "detail": {**detail_base, "metric": perf["primary_metric"], "value": perf["value"],
                                  "reference": perf["reference"], "labelled_rows": perf["labelled_rows"]}})
    return alerts, events


def _publish(config: MonitorConfig, result: MonitorResult, scan: _WindowScan, perf: dict[str, Any],
             now: datetime, *, base: str, stamp: str, say: Callable[[str], None]) -> None:
    """Render the HTML report with its history; write the reports, metrics and events."""
    from mlship.monitoring import html as html_report
    from mlship.monitoring import publish

    drift = scan.drift
    reports_bucket = config.reports_bucket or config.records_bucket
    html_uri = result.report["reports"]["html"]
    history = publish.read_history(reports_bucket, base) if config.reports_bucket is not None else []
    pred_score = next((p.get("score") for p in drift.to_dict()["predictions"].values()), None)
    entry = {"time": now.isoformat(), "share": drift.share, "dataset_drift": drift.dataset_drift,
             "prediction_score": pred_score, "quality": perf.get("value"), "rows": scan.rows, "report": html_uri,
             "attribution_shift": result.report["attribution_drift"].get("value")}
    result.html = html_report.render(result.report, [*history, entry])
    if config.reports_bucket is not None:
        result.report_uris = publish.write_reports(reports_bucket, base, stamp, result.report, result.html, entry)
        say(f"report written to {result.report_uris['html']}")
    result.report["metrics_published"] = publish.publish_metrics(result.metrics, config.namespace,
                                                                 config.metrics_mode)
    if config.emit_events and result.events:
        publish.put_events(result.events, config.event_bus_name)
        say(f"events sent to bus '{config.event_bus_name}': {', '.join(e['detail_type'] for e in result.events)}")


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
