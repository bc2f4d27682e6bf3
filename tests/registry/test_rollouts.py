"""Rollout records on versions (moto S3): immutable records, the status they give a version, the
champion move after a success (compare-and-swap), the alias history that shows failed attempts,
and concurrent writers that lose nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlship.registry.rollouts import RolloutRecord, merge_history, status_by_version
from mlship.registry.store import AliasConflictError, AliasRecord, NotFoundError, Registry, RegistryError

ENDPOINT = "endpoint:mlship-dev-churn"


@pytest.fixture
def reg(bucket: str, versions: Any) -> Registry:
    """A registry (no SageMaker mirror) with versions 1, 2 and 3 of churn."""
    registry = Registry(bucket, sagemaker=False)
    for v in ("1", "2", "3"):
        registry.register(versions(v))
    return registry


def test_records_are_stored_per_version_and_give_the_status(reg: Registry) -> None:
    assert reg.rollouts("churn") == [] and reg.version_status("churn", "1") is None
    first = reg.record_rollout("churn", "1", outcome="succeeded", target=ENDPOINT, who="ci",
                               details={"endpoint_config": "churn-1-abc", "phases": [{"status": "Creating"}]})
    failed = reg.record_rollout("churn", "2", outcome="rolled_back", target=ENDPOINT, previous_version="1",
                                reason="alarm fired during baking", alarm="churn-5xx", who="ci")
    assert (first.recorded_by, first.alias, first.status) == ("ci", "champion", "deployed")
    stored = reg.rollouts("churn", "2")
    assert stored == [failed] and stored[0].details is None
    assert reg.rollouts("churn", "1")[0].details == {"endpoint_config": "churn-1-abc",
                                                      "phases": [{"status": "Creating"}]}
    keys = [o["Key"] for o in reg.s3.list_objects_v2(Bucket=reg.bucket, Prefix="models/churn/2/rollouts/")["Contents"]]
    assert keys == [f"models/churn/2/rollouts/{failed.id}.json"]
    assert reg.version_status("churn", "2") == "rolled_back"
    retry = reg.record_rollout("churn", "2", outcome="timeout", target="lambda:mlship-dev-predict:live")
    assert reg.last_rollout("churn", "2") == retry and reg.version_status("churn", "2") == "timeout"
    assert [r.id for r in reg.rollouts("churn")] == [first.id, failed.id, retry.id]  # time order, all versions
    assert reg.statuses("churn") == {"1": "deployed", "2": "timeout"}
    assert reg.get_version("churn", "2").version == "2"  # version.json itself is untouched
    assert [v.version for v in reg.list_versions("churn")] == ["1", "2", "3"]


def test_bad_records_are_refused_before_writing(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="invalid rollout outcome 'ok': use one of succeeded, rolled_back"):
        reg.record_rollout("churn", "1", outcome="ok", target=ENDPOINT)
    with pytest.raises(RegistryError, match="needs a target"):
        reg.record_rollout("churn", "1", outcome="failed", target=" ")
    with pytest.raises(NotFoundError, match="model churn version 9 is not registered"):
        reg.record_rollout("churn", "9", outcome="failed", target=ENDPOINT)
    with pytest.raises(RegistryError, match="invalid model name"):
        reg.record_rollout("../x", "1", outcome="failed", target=ENDPOINT)
    assert reg.rollouts("churn") == []


def test_champion_moves_only_after_a_recorded_success(reg: Registry) -> None:
    with pytest.raises(RegistryError, match="cannot move churn@champion to 1: no rollout record"):
        reg.promote_after_rollout("churn", "1", expected_previous=None, evidence={})
    reg.record_rollout("churn", "1", outcome="succeeded", target=ENDPOINT)
    first = reg.promote_after_rollout("churn", "1", expected_previous=None, evidence={"endpoint_config": "c1"})
    assert (first.previous, first.version, first.reason) == (None, "1", f"rollout succeeded on {ENDPOINT}")
    assert first.evidence["endpoint_config"] == "c1" and first.evidence["rollout"]["outcome"] == "succeeded"
    again = reg.promote_after_rollout("churn", "1", expected_previous="1")  # a re-rollout of the same version
    assert again.generation == 1

    reg.record_rollout("churn", "2", outcome="rolled_back", target=ENDPOINT, alarm="churn-5xx")
    with pytest.raises(RegistryError, match="its latest rollout rolled_back"):
        reg.promote_after_rollout("churn", "2", expected_previous="1")
    reg.record_rollout("churn", "3", outcome="succeeded", target=ENDPOINT)
    with pytest.raises(AliasConflictError, match="expected to be unset but points at 1"):
        reg.promote_after_rollout("churn", "3", expected_previous=None)
    with pytest.raises(AliasConflictError, match="points at 1, not 2"):
        reg.promote_after_rollout("churn", "3", expected_previous="2")
    started_on = reg.get_alias("churn", "champion")
    reg.set_alias("churn", "champion", "2", reason="someone moved it by hand during the rollout")
    with pytest.raises(AliasConflictError, match="moved from 1 to 2"):
        reg.promote_after_rollout("churn", "3", expected_previous=started_on)
    moved = reg.promote_after_rollout("churn", "3", expected_previous="2", reason="canary 10% then all")
    assert (moved.previous, moved.version, moved.reason) == ("2", "3", "canary 10% then all")
    assert [h.version for h in reg.history("churn", "champion")] == ["1", "2", "3"]


def test_alias_history_shows_failed_attempts_between_moves(reg: Registry) -> None:
    reg.record_rollout("churn", "1", outcome="succeeded", target=ENDPOINT)
    reg.promote_after_rollout("churn", "1", expected_previous=None)
    reg.record_rollout("churn", "2", outcome="succeeded", target=ENDPOINT, previous_version="1")
    reg.promote_after_rollout("churn", "2", expected_previous="1")
    reg.record_rollout("churn", "3", outcome="rolled_back", target=ENDPOINT, previous_version="2",
                       alarm="mlship-dev-churn-5xx", reason="Invocation5XXErrors over 1% for 2 periods")
    reg.record_rollout("churn", "3", outcome="failed", target="lambda:f:live", alias="live-model")  # another alias
    entries = reg.history_with_rollouts("churn", "champion")
    assert [(e.kind, e.alias_version) for e in entries] == [("move", "1"), ("move", "2"), ("rollout", "2")]
    assert entries[-1].rollout.describe(entries[-1].alias_version) == (
        f"v3 rollout rolled_back on {ENDPOINT} (alarm mlship-dev-churn-5xx): champion stayed 2; "
        "Invocation5XXErrors over 1% for 2 periods")
    as_json = [e.to_dict() for e in entries]
    assert as_json[0]["kind"] == "move" and as_json[0]["generation"] == 1
    assert as_json[-1]["kind"] == "rollout" and as_json[-1]["alias_version"] == "2"
    assert as_json[-1]["outcome"] == "rolled_back" and as_json[-1]["alarm"] == "mlship-dev-churn-5xx"
    assert [e.kind for e in reg.history_with_rollouts("churn", "live-model")] == ["rollout"]


def test_concurrent_records_lose_nothing(reg: Registry) -> None:
    """Eight drivers record five attempts each at once: every record is stored and listed once."""
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    written: list[RolloutRecord] = []

    def driver(n: int) -> None:
        try:
            barrier.wait(timeout=60)
            for i in range(5):
                written.append(Registry(reg.bucket, sagemaker=False).record_rollout(
                    "churn", str(1 + (n % 3)), outcome="failed", target=f"endpoint:e{n}", reason=f"attempt {i}"))
        except BaseException as exc:  # reported below, with the partner threads released
            barrier.abort()
            errors.append(exc)

    threads = [threading.Thread(target=driver, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = reg.rollouts("churn")
    assert len(stored) == 40 and {r.id for r in stored} == {r.id for r in written}
    assert stored == sorted(stored, key=lambda r: (r.recorded_at, r.id))


def _move(generation: int, version: str, at: str) -> AliasRecord:
    return AliasRecord("m", "champion", version, generation, None, at, "x")


def _attempt(version: str, outcome: str, at: str) -> RolloutRecord:
    return RolloutRecord("m", version, outcome, "endpoint:e", at, "x", f"{at}-{version}")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["1", "2", "3"]),
                          st.sampled_from(["succeeded", "rolled_back", "failed", "timeout"]),
                          st.integers(0, 50)), max_size=12))
def test_history_merge_keeps_moves_in_generation_order(events: list[tuple[bool, str, str, int]]) -> None:
    """Whatever the times, moves stay in generation order, successes never show, and each failed
    attempt shows the version of the last move before it."""
    moves = [_move(i + 1, v, f"2026-12-01T10:00:{t:02d}.000Z") for i, (m, v, _, t) in enumerate(events) if m]
    attempts = [_attempt(v, o, f"2026-12-01T10:00:{t:02d}.500Z") for m, v, o, t in events if not m]
    merged = merge_history(moves, attempts)
    assert [e.move for e in merged if e.kind == "move"] == sorted(moves, key=lambda m: m.generation)
    assert sorted((e.rollout for e in merged if e.kind == "rollout"), key=lambda r: r.id) == \
        sorted((a for a in attempts if a.outcome != "succeeded"), key=lambda r: r.id)
    pointing = None
    for e in merged:
        if e.kind == "move":
            pointing = e.move.version
        assert e.alias_version == pointing
    statuses = status_by_version(attempts)
    assert set(statuses) == {a.version for a in attempts}
