"""The evaluation gate: judge a candidate against thresholds and the current champion, and
promote it to challenger (move the alias, approve the SageMaker package) only if every check
passes. The champion moves only after a successful rollout (mlship rollout).

Thresholds file (YAML or JSON)::

    metrics:                 # holdout metrics: absolute bounds and improvement over the champion
      roc_auc: {min: 0.80, min_improvement: 0.0}
      accuracy: {min: 0.70}
      log_loss: {max: 0.60}
    latency:                 # single-row latency through onnxruntime, milliseconds
      p95_ms: 20
    fairness:                # by a sensitive attribute (fairlearn's definitions)
      attribute: gender
      demographic_parity_difference: 0.10     # max
      equalized_odds_difference: 0.15         # max
      demographic_parity_ratio: 0.80          # min
    loadtest:                # optional: the newest load-test report attached to the version (mlship loadtest
      p99_ms: 50             #   --register): the highest rate whose p99 and error rate meet these limits
      error_rate: 0.01       #   must reach min_rps
      min_rps: 200
    shadow:                  # optional: the newest shadow report attached to the version (mlship shadow
      min_agreement_lower: 0.99   #   report --register): agreement interval, p99 |Δp|, shadow errors and,
      max_delta_p99: 0.05    #   on late-labelled rows, the largest drop of the metric vs the champion
      max_error_rate: 0.01
      max_metric_drop: 0.0
      min_rows: 500
    bootstrap: 200           # resamples for confidence intervals (paired between the two models)
    latency_rows: 200        # single-row calls timed per model (only when latency is gated)

``min_improvement`` is measured in the metric's better direction (higher for AUC, lower for log
loss); a negative value tolerates a small regression. With ``significance: true`` the lower
bound of the paired bootstrap interval of the improvement must clear it. The first model of a
name (no champion yet) is judged on the absolute thresholds alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlship.errors import MlshipError
from mlship.evaluation.evaluate import (
    HIGHER_IS_BETTER,
    TEMPLATES,
    Evaluation,
    evaluate,
    interval,
    metric_names,
    write_report_pair,
)
from mlship.registry.attachments import attached_prefix, latest_report
from mlship.registry.store import RegistryError
from mlship.runtime.jsonutil import jsonable
from mlship.stats.plots import BAD, CURRENT, GOOD, REFERENCE, figure_uri, pyplot
from mlship.stats.reports import render_page


class GateError(MlshipError):
    """The gate cannot run (bad thresholds file, unknown metric, data mismatch)."""

    kind = "gate"


class Bound(BaseModel):
    """Bounds on one metric."""

    model_config = ConfigDict(extra="forbid")
    min: float | None = None
    max: float | None = None
    min_improvement: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Bound:
        if self.min is None and self.max is None and self.min_improvement is None:
            raise ValueError("give at least one of min, max, min_improvement")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


class LatencyLimits(BaseModel):
    """Maximum single-row latency percentiles (ms)."""

    model_config = ConfigDict(extra="forbid")
    p50_ms: float | None = Field(None, gt=0)
    p95_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)


class FairnessLimits(BaseModel):
    """Maximum fairness gaps by a sensitive attribute."""

    model_config = ConfigDict(extra="forbid")
    attribute: str
    demographic_parity_difference: float | None = Field(None, ge=0, le=1)
    equalized_odds_difference: float | None = Field(None, ge=0, le=1)
    demographic_parity_ratio: float | None = Field(None, ge=0, le=1)


class LoadTestLimits(BaseModel):
    """A load-test SLO: p99 latency (ms, from the intended send time), error rate, and the rate that
    must meet both. ``mlship loadtest --thresholds`` reads the same section as its SLO."""

    model_config = ConfigDict(extra="forbid")
    p99_ms: float = Field(..., gt=0)
    error_rate: float = Field(0.01, ge=0, le=1)
    min_rps: float | None = Field(None, gt=0)


class ShadowLimits(BaseModel):
    """What the newest shadow report attached to the version (``mlship shadow report --register``)
    must show: the agreement interval's lower bound, the p99 |Δp|, the shadow's error rate and, on
    late-labelled rows, at most this much worse than the champion; over at least ``min_rows``."""

    model_config = ConfigDict(extra="forbid")
    min_agreement_lower: float | None = Field(None, ge=0, le=1)
    max_delta_p99: float | None = Field(None, ge=0)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_metric_drop: float | None = Field(None, ge=0)
    min_rows: int = Field(100, ge=1)


class Thresholds(BaseModel):
    """The gate's configuration (validated; unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, Bound] = Field(default_factory=dict)
    latency: LatencyLimits | None = None
    fairness: FairnessLimits | None = None
    loadtest: LoadTestLimits | None = None
    shadow: ShadowLimits | None = None
    slices: list[str] = Field(default_factory=list)
    bootstrap: int = Field(200, ge=0, le=10000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    significance: bool = False
    seed: int = 0
    latency_rows: int = Field(200, ge=0, le=100000)

    @model_validator(mode="after")
    def _something(self) -> Thresholds:
        if not self.metrics and all(getattr(self, k) is None for k in ("latency", "fairness", "loadtest", "shadow")):
            raise ValueError("no thresholds: give at least one of metrics, latency, fairness, loadtest, shadow")
        return self

    def check_metrics(self, task: str) -> None:
        """Refuse metric names the task does not produce."""
        known = metric_names(task)
        unknown = sorted(set(self.metrics) - set(known))
        if unknown:
            raise GateError(f"unknown {task} metric(s) in thresholds: {', '.join(unknown)} "
                            f"(known: {', '.join(known)})")


def load_thresholds(path: str | Path) -> Thresholds:
    """Read and validate a thresholds file (``.yaml``/``.yml`` or ``.json``)."""
    p = Path(path)
    if not p.is_file():
        raise GateError(f"thresholds file not found: {p}")
    text = p.read_text("utf-8")
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise GateError(f"{p.name} is not valid {'YAML' if p.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: "
                        f"{exc}") from None
    return parse_thresholds(data, source=p.name)


def parse_thresholds(data: Any, source: str = "thresholds") -> Thresholds:
    """Validate a thresholds mapping; errors name every bad field."""
    try:
        return Thresholds.model_validate(data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise GateError(f"{source}: {problems}") from None


@dataclass
class Check:
    """One threshold and the value it was compared with."""

    name: str
    kind: str  # min | max | min_improvement | latency | fairness | loadtest | shadow
    threshold: float
    value: float | None
    passed: bool
    champion: float | None = None
    interval: dict[str, float | None] | None = None
    note: str = ""

    @property
    def sign(self) -> str:
        """How the value must compare with the threshold (``>=`` or ``<=``)."""
        if (self.kind == "fairness" and self.name.startswith("demographic_parity_ratio")) or \
                self.name == LOADTEST_RATE_CHECK or self.name.startswith(SHADOW_MIN_CHECKS):
            return ">="
        return {"min": ">=", "min_improvement": ">="}.get(self.kind, "<=")

    def describe(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        sign = self.sign
        extra = f" (champion {self.champion:.4f})" if self.champion is not None else ""
        return f"{self.name}: {value} {sign} {self.threshold:g}{extra}{' - ' + self.note if self.note else ''}"


@dataclass
class GateResult:
    """Every check of one gate run, and the evaluations behind them."""

    candidate: Evaluation
    champion: Evaluation | None
    checks: list[Check]
    thresholds: Thresholds
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self) -> dict[str, Any]:
        """A compact, JSON-ready summary (stored with the alias move as evidence)."""
        return jsonable({"passed": self.passed,
                       "candidate": f"{self.candidate.model['name']}:{self.candidate.model['version']}",
                       "champion": None if self.champion is None else
                       f"{self.champion.model['name']}:{self.champion.model['version']}",
                       "data_fingerprint": self.candidate.data["fingerprint"],
                       "checks": [c.__dict__ for c in self.checks]})

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**self.summary(), "thresholds": self.thresholds.model_dump(),
                       "comparisons": self.comparisons, "candidate_evaluation": self.candidate.to_dict(),
                       "champion_evaluation": None if self.champion is None else self.champion.to_dict()})


def improvement(metric: str, candidate: float | None, champion: float | None) -> float | None:
    """How much better the candidate is, in the metric's better direction."""
    if candidate is None or champion is None:
        return None
    return candidate - champion if metric in HIGHER_IS_BETTER else champion - candidate


def paired_improvements(candidate: Evaluation, champion: Evaluation, confidence: float) -> dict[str, dict[str, Any]]:
    """Point improvement and paired bootstrap interval per metric: both models scored on the same
    rows and the same resamples, so the interval is that of the difference, not of each model."""
    from mlship.evaluation.evaluate import bootstrap_metrics

    if candidate.row_index is None or champion.row_index is None or \
            not np.array_equal(candidate.row_index, champion.row_index):
        return {}  # the two schemas rejected different rows: no pairing possible
    task = candidate.task
    samples = candidate.samples
    if samples is None or len(samples) == 0:
        return {}
    cand = candidate.boot
    champ = champion.boot
    if champion.samples is None or not np.array_equal(champion.samples, samples):
        champ = bootstrap_metrics(task, champion.y_true, champion.labels, champion.scores,
                                  champion.details.get("classes"), samples)
    out = {}
    for m in metric_names(task):
        if m not in cand or m not in champ:
            continue
        diffs = cand[m] - champ[m] if m in HIGHER_IS_BETTER else champ[m] - cand[m]
        out[m] = {"candidate": candidate.metrics.get(m), "champion": champion.metrics.get(m),
                  "improvement": improvement(m, candidate.metrics.get(m), champion.metrics.get(m)),
                  "interval": interval(diffs, confidence)}
    return out


def judge(candidate: Evaluation, champion: Evaluation | None, thresholds: Thresholds,
          comparisons: dict[str, dict[str, Any]] | None = None) -> list[Check]:
    """Compare evaluations with thresholds; one :class:`Check` per threshold."""
    checks: list[Check] = []
    comparisons = comparisons or {}
    for metric, bound in thresholds.metrics.items():
        value = candidate.metrics.get(metric)
        champ = None if champion is None else champion.metrics.get(metric)
        ci = candidate.intervals.get(metric)
        missing = "metric not available on this data" if value is None else ""
        if bound.min is not None:
            checks.append(Check(metric, "min", bound.min, value, value is not None and value >= bound.min,
                                champ, ci, missing))
        if bound.max is not None:
            checks.append(Check(metric, "max", bound.max, value, value is not None and value <= bound.max,
                                champ, ci, missing))
        if bound.min_improvement is not None:
            if champion is None:
                continue  # first model of a name: absolute thresholds only
            gain = improvement(metric, value, champ)
            gain_ci = (comparisons.get(metric) or {}).get("interval")
            judged = gain
            note = "improvement over the champion"
            if thresholds.significance:
                judged = None if not gain_ci else gain_ci.get("low")
                note = f"lower bound of the {thresholds.confidence:.0%} paired interval of the improvement"
            checks.append(Check(f"{metric} improvement", "min_improvement", bound.min_improvement, judged,
                                judged is not None and judged >= bound.min_improvement, champ, gain_ci, note))
    if thresholds.latency is not None:
        lat = (candidate.latency or {}).get("single_row_ms") or {}
        champ_lat = ((champion.latency or {}).get("single_row_ms") or {}) if champion else {}
        for pct in ("p50", "p95", "p99"):
            limit = getattr(thresholds.latency, f"{pct}_ms")
            if limit is None:
                continue
            value = lat.get(pct)
            checks.append(Check(f"latency {pct} (ms)", "latency", limit, value,
                                value is not None and value <= limit, champ_lat.get(pct)))
    if thresholds.fairness is not None:
        fair = candidate.fairness or {}
        champ_fair = (champion.fairness or {}) if champion else {}
        limits = thresholds.fairness
        for metric in ("demographic_parity_difference", "equalized_odds_difference", "demographic_parity_ratio"):
            limit = getattr(limits, metric)
            if limit is None:
                continue
            value = fair.get(metric)
            ok = value is not None and (value >= limit if metric.endswith("ratio") else value <= limit)
            checks.append(Check(f"{metric} by {limits.attribute}", "fairness", limit, value, ok,
                                champ_fair.get(metric)))
    return checks


def run_gate(candidate: Any, champion: Any | None, frame: Any, label: str | None, thresholds: Thresholds, *,
             public_key: Any = None, progress: Callable[[str], None] | None = None) -> GateResult:
    """Evaluate the candidate (and the champion, when there is one) on the same data and judge."""
    from mlship.runtime.predictor import Predictor

    say = progress or (lambda _m: None)
    cand_pred = candidate if isinstance(candidate, Predictor) else Predictor.load(candidate, public_key=public_key)
    thresholds.check_metrics(cand_pred.task)
    sensitive = thresholds.fairness.attribute if thresholds.fairness else None
    label = label or (cand_pred.bundle.manifest.get("lineage") or {}).get("label")
    kwargs = {"slices": thresholds.slices, "sensitive": sensitive, "bootstrap": thresholds.bootstrap,
              "confidence": thresholds.confidence, "seed": thresholds.seed,
              "latency_rows": thresholds.latency_rows if thresholds.latency is not None else 0,
              # the gate judges metrics; each bundle's explanations are in its model card and `mlship evaluate`
              "explain_rows": 0}
    say(f"evaluating candidate {cand_pred.model_name}:{cand_pred.model_version}")
    cand_ev = evaluate(cand_pred, frame, label, progress=say, **kwargs)
    champ_ev = None
    comparisons: dict[str, dict[str, Any]] = {}
    if champion is not None:
        champ_pred = champion if isinstance(champion, Predictor) else Predictor.load(champion, public_key=public_key)
        if champ_pred.task != cand_pred.task:
            raise GateError(f"candidate is a {cand_pred.task} model but the champion is a {champ_pred.task} model")
        say(f"evaluating champion {champ_pred.model_name}:{champ_pred.model_version} on the same data")
        champ_ev = evaluate(champ_pred, frame, label, progress=say, **kwargs)
        if thresholds.bootstrap:
            comparisons = paired_improvements(cand_ev, champ_ev, thresholds.confidence)
    checks = judge(cand_ev, champ_ev, thresholds, comparisons)
    return GateResult(cand_ev, champ_ev, checks, thresholds, comparisons)


# ---------------------------------------------------------------------------------- load-test SLO
LOADTEST_DIR = "loadtests"
LOADTEST_RATE_CHECK = "loadtest rate meeting the SLO (rps)"


def loadtest_prefix(registry: Any, name: str, version: str) -> str:
    """Where ``mlship loadtest --register`` stores a version's reports (the registry's version layout)."""
    return attached_prefix(registry, name, version, LOADTEST_DIR)


def latest_loadtest(registry: Any, name: str, version: str) -> dict[str, Any] | None:
    """The newest load-test report attached to ``NAME/VERSION`` (keys sort by creation time)."""
    try:
        return latest_report(registry, name, version, LOADTEST_DIR)
    except RegistryError as exc:
        raise GateError(str(exc)) from None


def loadtest_checks(report: dict[str, Any] | None, limits: LoadTestLimits) -> list[Check]:
    """Judge a load-test report's steps against the gate's load-test SLO.

    The judged step is the highest-rate step whose p99 and error rate meet *these* limits (the run's
    own SLO may have been different); with none, the lowest step, so the failure shows its numbers."""
    if report is None:
        note = "no load-test report attached to this version (run mlship loadtest --register NAME/VERSION)"
        out = [Check("loadtest p99 (ms)", "loadtest", limits.p99_ms, None, False, note=note)]
        if limits.min_rps is not None:
            out.append(Check(LOADTEST_RATE_CHECK, "loadtest", limits.min_rps, None, False, note=note))
        return out
    steps = [s for s in report.get("steps") or [] if s]
    good = [s for s in steps if (s["latency_ms"].get("p99") or float("inf")) <= limits.p99_ms
            and s["error_rate"] <= limits.error_rate]
    point = max(good, key=lambda s: s["target_rps"]) if good else (steps[0] if steps else None)
    note = f"report {report.get('id')} of {report.get('created')} on {report.get('target')}"
    p99 = None if point is None else point["latency_ms"].get("p99")
    errors = None if point is None else point["error_rate"]
    out = [Check("loadtest p99 (ms)", "loadtest", limits.p99_ms, p99, bool(good), note=note),
           Check("loadtest error rate", "loadtest", limits.error_rate, errors, bool(good), note=note)]
    if limits.min_rps is not None:
        rate = point["achieved_rps"] if good and point else None
        out.append(Check(LOADTEST_RATE_CHECK, "loadtest", limits.min_rps, rate,
                         rate is not None and rate >= limits.min_rps, note=note))
    return out


# ---------------------------------------------------------------------------------- shadow report
SHADOW_DIR = "shadows"
SHADOW_AGREEMENT_CHECK = "shadow agreement (interval lower bound)"
SHADOW_ROWS_CHECK = "shadow rows compared"
SHADOW_MIN_CHECKS = (SHADOW_AGREEMENT_CHECK, SHADOW_ROWS_CHECK, "shadow metric vs champion on labelled rows")


def shadow_checks(report: dict[str, Any] | None, limits: ShadowLimits) -> list[Check]:
    """Judge the newest shadow report of the version against the gate's shadow limits."""
    if report is None:
        note = "no shadow report attached to this version (run mlship shadow report --register NAME/VERSION)"
        return [Check(SHADOW_ROWS_CHECK, "shadow", limits.min_rows, None, False, note=note)]
    note = f"report {report.get('id')} of {report.get('created')}"
    rows = report["agreement"]["rows"]
    out = [Check(SHADOW_ROWS_CHECK, "shadow", limits.min_rows, rows, rows >= limits.min_rows, note=note),
           Check("shadow error rate", "shadow", limits.max_error_rate, report["errors"]["rate"],
                 (report["errors"]["rate"] or 0.0) <= limits.max_error_rate, note=note)]
    if limits.min_agreement_lower is not None:
        lower = report["agreement"]["lower"]
        out.append(Check(SHADOW_AGREEMENT_CHECK, "shadow", limits.min_agreement_lower, lower,
                         lower is not None and lower >= limits.min_agreement_lower, note=note))
    if limits.max_delta_p99 is not None:
        p99 = report["delta"]["p99"]
        out.append(Check("shadow |Δp| p99", "shadow", limits.max_delta_p99, p99,
                         p99 is not None and p99 <= limits.max_delta_p99, note=note))
    if limits.max_metric_drop is not None:
        out.append(_shadow_metric_check(report.get("labelled"), limits.max_metric_drop, note))
    return out


def _shadow_metric_check(labelled: dict[str, Any] | None, max_drop: float, note: str) -> Check:
    name = "shadow metric vs champion on labelled rows"
    if not labelled:
        return Check(name, "shadow", -max_drop, None, False, note=f"{note}: no labelled rows")
    return Check(f"{name} ({labelled['metric']} improvement)", "shadow", -max_drop, labelled["improvement"],
                 labelled["improvement"] >= -max_drop, champion=labelled["primary"], note=note)


# ---------------------------------------------------------------------------------- promotion
@dataclass
class Promotion:
    """The outcome of :func:`promote`: the gate result and, when it passed, the alias move."""

    gate: GateResult
    alias: str
    against: str = "champion"
    moved: Any = None  # AliasRecord when the alias moved
    package_arn: str | None = None
    report_paths: tuple[Path, Path] | None = None


def promote(registry: Any, name: str, version: str, frame: Any, thresholds: Thresholds, *,
            label: str | None = None, alias: str = "challenger", against: str = "champion", reason: str = "",
            who: str | None = None, public_key: Any = None, report_dir: str | Path | None = None,
            progress: Callable[[str], None] | None = None) -> Promotion:
    """Gate ``NAME/VERSION`` against ``NAME@AGAINST`` (the champion) and, only if every check
    passes, move ``NAME@ALIAS`` (the challenger) to it and approve its SageMaker package.

    The offline gate never moves the champion: a successful rollout does
    (:meth:`~mlship.registry.store.Registry.promote_after_rollout`). ``Approved`` in SageMaker
    means "passed the gate, may be rolled out". With no ``AGAINST`` yet, the absolute thresholds
    alone decide. The move is a compare-and-swap on the ``ALIAS`` pointer read before the
    evaluation, and ``AGAINST`` is re-read before it: if either moved meanwhile,
    :class:`~mlship.registry.store.AliasConflictError` is raised and nothing changes. On a failed
    gate nothing in the registry or SageMaker changes. When the approval fails after the move, the
    alias is moved back (see :func:`_roll_back_alias`). ``alias == against`` gates against and
    moves one alias (the behaviour before challenger and champion were split).
    """
    registry.get_version(name, version)  # the candidate must be registered
    baseline, current = _read_aliases(registry, name, version, alias, against)
    champion_uri = registry.bundle_uri(name, baseline.version) if baseline else None
    result = run_gate(registry.bundle_uri(name, version), champion_uri, frame, label, thresholds,
                      public_key=public_key, progress=progress)
    if thresholds.loadtest is not None:
        result.checks += loadtest_checks(latest_loadtest(registry, name, version), thresholds.loadtest)
    if thresholds.shadow is not None:
        try:
            report = latest_report(registry, name, version, SHADOW_DIR)
        except RegistryError as exc:
            raise GateError(str(exc)) from None
        result.checks += shadow_checks(report, thresholds.shadow)
    promotion = Promotion(gate=result, alias=alias, against=against)
    if report_dir is not None:
        promotion.report_paths = write_gate_report(result, report_dir)
    if not result.passed:
        return promotion
    if alias != against:
        _check_unmoved(registry, name, against, baseline)
    basis = f"against {name}@{against} {baseline.version}" if baseline else f"no {name}@{against} yet"
    why = reason or f"gate passed ({len(result.checks)} checks, {basis})"
    evidence = {"gate": result.summary(), "against": {"alias": against,
                                                      "version": baseline.version if baseline else None}}
    promotion.moved = registry.set_alias(name, alias, version, expect=current, reason=why, who=who,
                                         evidence=evidence)
    promotion.package_arn = _approve(registry, name, version, alias, current, promotion.moved, who,
                                     f"mlship gate passed ({len(result.checks)} checks, {basis}); {name}@{alias}")
    return promotion


def _read_aliases(registry: Any, name: str, version: str, alias: str, against: str) -> tuple[Any, Any]:
    """The pointers the gate is judged against and moves (one read when they are the same alias)."""
    from mlship.registry.store import RegistryError

    baseline = registry.get_alias(name, against)
    current = baseline if alias == against else registry.get_alias(name, alias)
    if baseline is not None and baseline.version == version:
        raise RegistryError(f"{name}@{against} already points at version {version}: nothing to gate it against")
    if current is not None and current.version == version:
        raise RegistryError(f"{name}@{alias} already points at version {version}")
    return baseline, current


def _check_unmoved(registry: Any, name: str, against: str, baseline: Any) -> None:
    """Refuse the move if the alias the gate judged against moved during the evaluation."""
    from mlship.registry.store import AliasConflictError

    now = registry.get_alias(name, against)
    if (now is None) != (baseline is None) or (now is not None and now.etag != baseline.etag):
        was = baseline.version if baseline else "unset"
        raise AliasConflictError(f"{name}@{against} moved from {was} to {now.version if now else 'unset'} while "
                                 f"the gate was judging against it: nothing changed, re-run the gate")


def _approve(registry: Any, name: str, version: str, alias: str, previous: Any, moved: Any, who: str | None,
             description: str) -> str | None:
    """Approve the candidate's SageMaker package; on failure move the alias back and raise."""
    from mlship.registry.store import RegistryError

    try:
        return registry.approve(name, version, description=description)
    except RegistryError as exc:
        _roll_back_alias(registry, name, alias, previous, moved, who, exc)
    return None


def _roll_back_alias(registry: Any, name: str, alias: str, previous: Any, moved: Any, who: str | None,
                     cause: Exception) -> None:
    """The alias moved but the SageMaker approval failed: move it back (compare-and-swap on our own
    move, recorded in the audit log) and raise, so the alias and the approval never disagree."""
    from mlship.registry.store import RegistryError

    if previous is None:  # the alias was unset before: nothing to return to, say exactly what state we left
        raise RegistryError(f"{cause}; {name}@{alias} now points at version {moved.version} (it had no "
                            f"previous version to return to) but its SageMaker package is not approved: "
                            f"fix the cause and approve it, or move the alias") from None
    try:
        registry.set_alias(name, alias, previous.version, expect=moved, who=who,
                           reason=f"rolled back: SageMaker approval of version {moved.version} failed")
    except Exception as rollback_exc:  # e.g. someone moved the alias meanwhile: report both
        raise RegistryError(f"{cause}; rolling {name}@{alias} back to version {previous.version} also failed: "
                            f"{rollback_exc}") from None
    raise RegistryError(f"{cause}; {name}@{alias} was moved back to version {previous.version}, "
                        f"nothing is promoted") from None


# ---------------------------------------------------------------------------------- reports
def gate_figures(result: GateResult) -> list[tuple[str, str]]:
    """Candidate vs champion metric bars with intervals, and the threshold checks."""
    plt = pyplot()
    figs = []
    names = [m for m in metric_names(result.candidate.task) if result.candidate.metrics.get(m) is not None]
    if names:
        figs.append(("Candidate vs champion", _metrics_vs_champion(plt, result, names)))
    if result.comparisons:
        ms = [m for m, c in result.comparisons.items() if c.get("improvement") is not None]
        fig, ax = plt.subplots(figsize=(8, 3.2))
        vals = [result.comparisons[m]["improvement"] for m in ms]
        lows = [v - (result.comparisons[m]["interval"].get("low") or v) for m, v in zip(ms, vals, strict=True)]
        highs = [(result.comparisons[m]["interval"].get("high") or v) - v for m, v in zip(ms, vals, strict=True)]
        ax.bar(ms, vals, yerr=[lows, highs], capsize=4, color=[GOOD if v >= 0 else BAD for v in vals])
        ax.axhline(0, color="k", lw=1)
        ax.set(title="Improvement over the champion (paired bootstrap)", ylabel="better →")
        figs.append(("Improvement", figure_uri(fig)))
    return figs


def _metrics_vs_champion(plt: Any, result: GateResult, names: list[str]) -> str:
    """Grouped bars (candidate, champion) per metric with bootstrap intervals and threshold dashes."""
    cand, champ = result.candidate, result.champion
    fig, ax = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(names))
    width = 0.38 if champ else 0.6
    models = [("candidate " + cand.model["version"], cand, CURRENT)]
    if champ:
        models.append(("champion " + champ.model["version"], champ, REFERENCE))
    for i, (label, ev, colour) in enumerate(models):
        vals = [ev.metrics.get(m) or 0.0 for m in names]
        err = [[v - (ev.intervals.get(m, {}).get("low") or v) for m, v in zip(names, vals, strict=True)],
               [(ev.intervals.get(m, {}).get("high") or v) - v for m, v in zip(names, vals, strict=True)]]
        offset = (i - (len(models) - 1) / 2) * width
        ax.bar(x + offset, vals, width, yerr=err, capsize=3, label=label, color=colour)
    for j, m in enumerate(names):
        bound = result.thresholds.metrics.get(m)
        if bound and bound.min is not None:
            ax.hlines(bound.min, j - 0.45, j + 0.45, colors=GOOD, linestyles="--")
        if bound and bound.max is not None:
            ax.hlines(bound.max, j - 0.45, j + 0.45, colors=BAD, linestyles="--")
    ax.set_xticks(x, names)
    ax.set(title=f"Metrics (bars: {result.thresholds.confidence:.0%} bootstrap intervals; dashes: thresholds)")
    ax.legend()
    return figure_uri(fig)


def gate_html(result: GateResult) -> str:
    """A self-contained HTML gate report, from ``templates/gate.html.j2``."""
    from mlship.evaluation.evaluate import evaluation_figures

    champ = "none (first model: absolute thresholds only)" if result.champion is None else \
        f"{result.champion.model['name']}:{result.champion.model['version']}"
    comparisons = [[m, c.get("improvement"), (c.get("interval") or {}).get("low"),
                    (c.get("interval") or {}).get("high")] for m, c in result.comparisons.items()]
    figures = [{"title": t, "uri": u} for t, u in gate_figures(result) + evaluation_figures(result.candidate)]
    return render_page(TEMPLATES, "gate.html.j2", result=result, candidate=result.candidate.model,
                       champion=champ, comparisons=comparisons, figures=figures)


def write_gate_report(result: GateResult, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``gate.json`` and ``gate.html``; returns both paths."""
    return write_report_pair(out_dir, "gate",
                             json.dumps(result.to_dict(), indent=2, allow_nan=False, default=str) + "\n",
                             gate_html(result))
