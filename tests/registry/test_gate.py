"""Evaluation and the gate: metrics through onnxruntime, fairness equal to fairlearn's, thresholds
validation, and promotions that pass, fail without changing anything, or race."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlship.evaluation.evaluate import evaluate, write_report
from mlship.evaluation.gate import GateError, load_thresholds, parse_thresholds, promote
from mlship.registry.store import AliasConflictError, Registry, RegistryError

PASSING = {"metrics": {"roc_auc": {"min": 0.7, "min_improvement": 0.0}, "log_loss": {"max": 0.7}},
           "latency": {"p50_ms": 1000}, "fairness": {"attribute": "gender", "demographic_parity_difference": 0.2},
           "bootstrap": 30}


def test_evaluation_metrics_intervals_slices(churn_bundle: Path, holdout: Any, tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    ev = evaluate(churn_bundle, holdout, "churned", slices=["contract", "tenure_months"], bootstrap=100)
    y = holdout["churned"].to_numpy()[ev.row_index]
    assert ev.data["valid_rows"] == len(holdout)
    assert ev.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, ev.scores[:, 1]), abs=1e-9)
    assert ev.metrics["accuracy"] == pytest.approx(accuracy_score(y, ev.labels.astype(int)))
    assert ev.metrics["log_loss"] == pytest.approx(log_loss(y, ev.scores), abs=1e-6)
    for m in ("roc_auc", "accuracy", "f1"):
        ci = ev.intervals[m]
        assert ci["low"] < ev.metrics[m] < ci["high"] and ci["high"] - ci["low"] < 0.2
    contract = ev.slices["contract"]
    assert sum(g["rows"] for g in contract.values()) == len(holdout)
    value = sorted(contract)[0]
    mask = (holdout["contract"].astype(str) == value).to_numpy()
    assert contract[value]["roc_auc"] == pytest.approx(roc_auc_score(y[mask], ev.scores[mask, 1]), abs=1e-9)
    assert 2 <= len(ev.slices["tenure_months"]) <= 4  # numeric column: quantile bins
    lat = ev.latency["single_row_ms"]
    assert 0 < lat["p50"] <= lat["p99"] and ev.latency["batch"]["rows"] == len(holdout)
    json_path, html_path = write_report(ev, tmp_path / "report")
    assert json.loads(json_path.read_text())["metrics"]["roc_auc"] == pytest.approx(ev.metrics["roc_auc"])
    assert html_path.read_text().count("<img") >= 3


def test_fairness_equals_fairlearn(churn_bundle: Path, logreg_bundle: Path, holdout: Any) -> None:
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )

    for bundle in (churn_bundle, logreg_bundle):
        ev = evaluate(bundle, holdout, "churned", sensitive="gender", bootstrap=0, latency_rows=0)
        y = holdout["churned"].to_numpy()[ev.row_index]
        pred = ev.labels.astype(int)
        groups = holdout["gender"].to_numpy()[ev.row_index]
        assert ev.fairness["n_groups"] >= 2
        assert ev.fairness["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(y, pred, sensitive_features=groups), abs=1e-12)
        assert ev.fairness["demographic_parity_ratio"] == pytest.approx(
            demographic_parity_ratio(y, pred, sensitive_features=groups), abs=1e-12)
        assert ev.fairness["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y, pred, sensitive_features=groups), abs=1e-12)


def test_invalid_rows_are_counted_not_scored(churn_bundle: Path, holdout: Any) -> None:
    frame = holdout.head(300).copy()
    frame["contract"] = frame["contract"].astype(object)
    frame.loc[frame.index[:7], "tenure_months"] = np.nan
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[frame.index[7], "tenure_months"] = "many"
    ev = evaluate(churn_bundle, frame, "churned", bootstrap=0, latency_rows=0)
    assert ev.data["rows"] == 300
    assert ev.data["invalid_rows"] >= 1 and ev.data["valid_rows"] == 300 - ev.data["invalid_rows"]
    assert len(ev.y_true) == ev.data["valid_rows"]


def test_thresholds_are_validated(tmp_path: Path) -> None:
    yaml_file = tmp_path / "gate.yaml"
    yaml_file.write_text("metrics:\n  roc_auc: {min: 0.8, min_improvement: -0.01}\nlatency:\n  p95_ms: 20\n")
    limits = load_thresholds(yaml_file)
    assert limits.metrics["roc_auc"].min_improvement == -0.01 and limits.latency.p95_ms == 20
    json_file = tmp_path / "gate.json"
    json_file.write_text(json.dumps(PASSING))
    assert load_thresholds(json_file).fairness.attribute == "gender"
    with pytest.raises(GateError, match="metrics.roc_auc.minimum: Extra inputs"):
        parse_thresholds({"metrics": {"roc_auc": {"minimum": 0.8}}})
    with pytest.raises(GateError, match="min 0.9 > max 0.8"):
        parse_thresholds({"metrics": {"accuracy": {"min": 0.9, "max": 0.8}}})
    with pytest.raises(GateError, match="no thresholds"):
        parse_thresholds({})
    with pytest.raises(GateError, match="unknown classification metric.*auc_roc"):
        parse_thresholds({"metrics": {"auc_roc": {"min": 0.5}}}).check_metrics("classification")
    (tmp_path / "bad.yaml").write_text("metrics: [unclosed")
    with pytest.raises(GateError, match="not valid YAML"):
        load_thresholds(tmp_path / "bad.yaml")


def _snapshot(registry: Registry) -> tuple[dict[str, str], dict[str, str]]:
    """Every object (key -> ETag) in the registry bucket and every SageMaker approval status."""
    objects = {}
    for page in registry.s3.get_paginator("list_objects_v2").paginate(Bucket=registry.bucket):
        objects.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
    statuses = {p["ModelPackageArn"]: p["ModelApprovalStatus"] for p in
                registry.sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]}
    return objects, statuses


def test_first_model_then_a_better_one_pass(registry: Registry, churn_bundle: Path, logreg_bundle: Path,
                                            holdout: Any, tmp_path: Path) -> None:
    """The gate moves challenger, judges against champion, and never moves champion."""
    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    limits = parse_thresholds(PASSING)
    first = promote(registry, "churn", "1", holdout, limits, reason="first model")
    assert first.gate.passed and first.gate.champion is None
    assert not [c for c in first.gate.checks if c.kind == "min_improvement"]  # absolute thresholds only
    assert (first.moved.alias, first.moved.previous, first.moved.version) == ("challenger", None, "1")
    assert registry.get_alias("churn", "champion") is None
    champion = registry.set_alias("churn", "champion", "1", expect=None, reason="rolled out")  # as a rollout would
    second = promote(registry, "churn", "2", holdout, limits, report_dir=tmp_path / "g2")
    assert second.gate.passed and second.gate.champion.model["version"] == "1"
    gain = next(c for c in second.gate.checks if c.kind == "min_improvement")
    assert gain.value == pytest.approx(second.gate.candidate.metrics["roc_auc"] - gain.champion)
    assert second.gate.comparisons["roc_auc"]["interval"]["low"] is not None
    assert registry.get_alias("churn", "challenger").version == "2"
    assert registry.get_alias("churn", "champion") == champion  # same generation, same ETag: untouched
    assert registry.approval_status("churn", "2") == "Approved"
    entry = registry.history("churn", "challenger")[-1]
    assert (entry.previous, entry.version) == ("1", "2")
    assert entry.evidence["against"] == {"alias": "champion", "version": "1"}
    assert "against churn@champion 1" in entry.reason
    assert entry.evidence["gate"]["passed"] and len(entry.evidence["gate"]["checks"]) == len(second.gate.checks)
    assert [h.version for h in registry.history("churn", "champion")] == ["1"]
    report = json.loads((tmp_path / "g2" / "gate.json").read_text())
    assert report["passed"] and report["champion_evaluation"]["model"]["version"] == "1"
    assert "PASSED" in (tmp_path / "g2" / "gate.html").read_text()


def test_gate_judges_against_champion_not_challenger(registry: Registry, churn_bundle: Path, logreg_bundle: Path,
                                                     versions: Any, holdout: Any) -> None:
    """Champion 2 (logistic, better) and challenger 3 (a copy of the HGB): the HGB candidate 1 is
    compared with the champion, so the improvement check fails although it equals the challenger."""
    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    registry.register(versions("3"))
    registry.set_alias("churn", "champion", "2")
    registry.set_alias("churn", "challenger", "3")
    limits = parse_thresholds({"metrics": {"roc_auc": {"min": 0.5, "min_improvement": 0.0}}, "bootstrap": 0})
    refused = promote(registry, "churn", "1", holdout, limits)
    assert not refused.gate.passed and refused.gate.champion.model["version"] == "2"
    assert registry.get_alias("churn", "challenger").version == "3"
    against_challenger = promote(registry, "churn", "1", holdout, limits, against="challenger")
    assert against_challenger.gate.passed and against_challenger.gate.champion.model["version"] == "3"
    assert registry.get_alias("churn", "challenger").version == "1"
    assert registry.get_alias("churn", "champion").version == "2"
    with pytest.raises(RegistryError, match="churn@champion already points at version 2"):
        promote(registry, "churn", "2", holdout, limits)
    old_style = promote(registry, "churn", "3", holdout, parse_thresholds({"metrics": {"roc_auc": {"min": 0.5}}}),
                        alias="champion", against="champion")  # one alias gated and moved, as before the split
    assert old_style.moved.version == "3" and registry.get_alias("churn", "champion").version == "3"


def test_champion_moving_during_the_gate_refuses_the_move(registry: Registry, churn_bundle: Path,
                                                          logreg_bundle: Path, versions: Any, holdout: Any) -> None:
    """A rollout moves champion while the gate evaluates against the old one: nothing is promoted."""
    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    registry.register(versions("3"))
    registry.set_alias("churn", "champion", "1")
    moved: list[str] = []

    def rollout_meanwhile(message: str) -> None:
        if not moved:
            moved.append(registry.set_alias("churn", "champion", "3", expect="1", reason="rollout").version)

    limits = parse_thresholds({"metrics": {"roc_auc": {"min": 0.5}}, "bootstrap": 0})
    with pytest.raises(AliasConflictError, match="churn@champion moved from 1 to 3 while the gate"):
        promote(registry, "churn", "2", holdout, limits, progress=rollout_meanwhile)
    assert moved == ["3"] and registry.get_alias("churn", "challenger") is None
    assert registry.approval_status("churn", "2") == "PendingManualApproval"


def test_failing_gate_changes_nothing(registry: Registry, churn_bundle: Path, logreg_bundle: Path,
                                     holdout: Any, tmp_path: Path) -> None:
    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    registry.set_alias("churn", "champion", "2")
    registry.approve("churn", "2")
    before = _snapshot(registry)
    strict = parse_thresholds({
        "metrics": {"roc_auc": {"min": 0.5, "min_improvement": 0.0}, "accuracy": {"min": 0.99}},
        "latency": {"p99_ms": 10000},
        "fairness": {"attribute": "gender", "equalized_odds_difference": 0.5, "demographic_parity_ratio": 0.2},
        "bootstrap": 20})
    result = promote(registry, "churn", "1", holdout, strict, report_dir=tmp_path / "refused")
    assert not result.gate.passed and result.moved is None and result.package_arn is None
    by_name = {c.name: c for c in result.gate.checks}
    assert len(result.gate.checks) == 6  # every threshold is reported, passing or not
    assert not by_name["accuracy"].passed and by_name["accuracy"].value < 0.99
    assert not by_name["roc_auc improvement"].passed  # the HGB model is worse than the logistic champion
    assert by_name["roc_auc"].passed and by_name["latency p99 (ms)"].passed
    assert _snapshot(registry) == before
    assert registry.get_alias("churn", "champion").version == "2"
    assert "REFUSED" in (tmp_path / "refused" / "gate.html").read_text()


def _sagemaker_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point SageMaker (only) at a closed local port: a real connection failure from botocore, while
    S3 stays on moto. Used to make the approval step fail after the alias moved."""
    from mlship.aws.clients import clear_cache

    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail at once instead of backing off 5 times
    clear_cache()


def test_failed_approval_moves_the_alias_back(registry: Registry, churn_bundle: Path, logreg_bundle: Path,
                                              holdout: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlship.aws.clients import clear_cache

    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    limits = parse_thresholds(PASSING)
    promote(registry, "churn", "1", holdout, limits)
    _sagemaker_unreachable(monkeypatch)
    with pytest.raises(RegistryError, match="churn@challenger was moved back to version 1, nothing is promoted"):
        promote(registry, "churn", "2", holdout, limits, who="ci")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER")
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    clear_cache()
    assert registry.get_alias("churn", "challenger").version == "1"
    moves = [(h.previous, h.version, h.reason) for h in registry.history("churn", "challenger")]
    assert [(a, b) for a, b, _ in moves] == [(None, "1"), ("1", "2"), ("2", "1")]  # the audit shows both moves
    assert "rolled back: SageMaker approval of version 2 failed" in moves[-1][2]
    assert registry.approval_status("churn", "2") == "PendingManualApproval"
    assert registry.approval_status("churn", "1") == "Approved"


def test_failed_first_approval_says_what_state_is_left(registry: Registry, churn_bundle: Path, holdout: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    registry.register(churn_bundle)
    _sagemaker_unreachable(monkeypatch)
    with pytest.raises(RegistryError, match="churn@challenger now points at version 1 .* not approved"):
        promote(registry, "churn", "1", holdout, parse_thresholds(PASSING))
    assert registry.get_alias("churn", "challenger").version == "1"
    assert registry.get_alias("churn", "champion") is None


def test_racing_promotions_have_one_winner(registry: Registry, churn_bundle: Path, logreg_bundle: Path,
                                           versions: Any, holdout: Any, atomic_s3_conditions: None) -> None:
    """Two promotions judged against the same champion, moving the alias at the same moment."""
    registry.register(churn_bundle)
    registry.register(logreg_bundle)
    registry.register(versions("3"))  # a copy of the HGB model: passes absolute thresholds, no gain needed
    registry.set_alias("churn", "champion", "1")
    registry.set_alias("churn", "challenger", "1")
    limits = parse_thresholds({"metrics": {"roc_auc": {"min": 0.7, "min_improvement": -0.05}}, "bootstrap": 10})
    barrier = threading.Barrier(2)

    class Synchronised(Registry):
        def set_alias(self, *args: Any, **kwargs: Any) -> Any:
            barrier.wait(timeout=120)  # both have read the champion and passed the gate
            return super().set_alias(*args, **kwargs)

    outcomes: dict[str, Any] = {}

    def run(version: str) -> None:
        try:
            outcomes[version] = promote(Synchronised(registry.bucket), "churn", version, holdout, limits)
        except AliasConflictError as exc:
            outcomes[version] = exc
        except Exception as exc:  # any other failure: release the partner now and report it below
            barrier.abort()
            outcomes[version] = exc

    threads = [threading.Thread(target=run, args=(v,)) for v in ("2", "3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
    losers = [v for v, o in outcomes.items() if isinstance(o, AliasConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert "moved from 1 to" in str(outcomes[losers[0]])
    assert registry.get_alias("churn", "challenger").version == winners[0]
    assert registry.get_alias("churn", "champion").version == "1"
    assert registry.approval_status("churn", winners[0]) == "Approved"
    assert registry.approval_status("churn", losers[0]) == "PendingManualApproval"
    assert [(h.previous, h.version) for h in registry.history("churn", "challenger")] == [(None, "1"),
                                                                                       ("1", winners[0])]


def test_gate_refuses_unknown_metric_before_evaluating(registry: Registry, churn_bundle: Path,
                                                       holdout: Any) -> None:
    registry.register(churn_bundle)
    with pytest.raises(GateError, match="unknown classification metric"):
        promote(registry, "churn", "1", holdout, parse_thresholds({"metrics": {"rmse": {"max": 1}}}))
    assert registry.get_alias("churn", "champion") is None and registry.get_alias("churn", "challenger") is None


@pytest.mark.parametrize("name, kind, sign", [
    ("roc_auc", "min", ">="), ("log_loss", "max", "<="), ("roc_auc improvement", "min_improvement", ">="),
    ("latency p95 (ms)", "latency", "<="), ("demographic_parity_ratio by gender", "fairness", ">="),
    ("demographic_parity_difference by gender", "fairness", "<="), ("loadtest p99 (ms)", "loadtest", "<="),
])
def test_each_check_names_how_it_compares(name: str, kind: str, sign: str) -> None:
    from mlship.evaluation.gate import Check

    check = Check(name, kind, 0.5, 0.6, True)
    assert check.sign == sign and f" {sign} 0.5" in check.describe()
