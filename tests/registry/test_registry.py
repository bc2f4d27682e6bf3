"""The S3 registry against moto: immutable versions, aliases as compare-and-swap, the audit log,
registry URIs and the SageMaker Model Registry mirror."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from mlship.registry.store import (
    AliasConflictError,
    NotFoundError,
    Registry,
    RegistryError,
    VersionExistsError,
    parse_uri,
    resolve_uri,
)


def test_register_stores_bundle_and_record(registry: Registry, churn_bundle: Path, bucket: str,
                                           signing_keys: Path) -> None:
    record, created = registry.register(churn_bundle, public_key=signing_keys / "mlship.pub")
    assert created
    assert (record.name, record.version, record.signed) == ("churn", "1", True)
    assert record.bundle_uri == f"s3://{bucket}/models/churn/1/bundle.tar.gz"
    assert record.metrics["accuracy"] > 0.5
    assert registry.list_models() == ["churn"]
    assert [r.version for r in registry.list_versions("churn")] == ["1"]
    assert registry.get_version("churn", "1") == record


def test_register_requires_valid_signature_when_key_given(registry: Registry, versions: Any,
                                                          signing_keys: Path) -> None:
    from mlship.errors import VerificationError

    unsigned = versions("2")
    with pytest.raises(VerificationError, match="not signed"):
        registry.register(unsigned, public_key=signing_keys / "mlship.pub")
    assert registry.list_models() == []


def test_versions_are_immutable(registry: Registry, versions: Any, bucket: str) -> None:
    from mlship.aws.clients import client

    first = versions("7", description="first")
    record, created = registry.register(first)
    assert created
    etag = client("s3").head_object(Bucket=bucket, Key="models/churn/7/bundle.tar.gz")["ETag"]
    # same content again: idempotent, same record
    again, created_again = registry.register(first)
    assert not created_again and again == record
    # different content under the same version: refused, nothing replaced
    with pytest.raises(VersionExistsError, match="versions are immutable"):
        registry.register(versions("7", description="second"))
    assert client("s3").head_object(Bucket=bucket, Key="models/churn/7/bundle.tar.gz")["ETag"] == etag
    assert registry.get_version("churn", "7") == record
    assert len(registry.sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1


def test_concurrent_registrations_of_one_version_keep_one_content(
        registry: Registry, versions: Any, atomic_s3_conditions: None) -> None:
    bundles = [versions("9", description=f"writer {i}") for i in range(4)]
    outcomes: list[Any] = [None] * len(bundles)
    barrier = threading.Barrier(len(bundles))

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = registry.register(bundles[i])[0]
        except VersionExistsError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bundles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(winners) == 1
    assert registry.get_version("churn", "9").content_sha256 == winners[0].content_sha256


def test_alias_moves_and_audit_log(registry: Registry, versions: Any) -> None:
    for v in ("1", "2", "3"):
        registry.register(versions(v))
    assert registry.get_alias("churn", "champion") is None
    first = registry.set_alias("churn", "champion", "1", expect=None, reason="first model", who="alice")
    assert (first.generation, first.previous, first.version) == (1, None, "1")
    second = registry.set_alias("churn", "champion", "2", expect="1", reason="better auc", who="bob")
    assert (second.generation, second.previous) == (2, "1")
    with pytest.raises(AliasConflictError, match="points at 2, not 1"):
        registry.set_alias("churn", "champion", "3", expect="1")
    with pytest.raises(AliasConflictError, match="moved from 1 to 2"):
        registry.set_alias("churn", "champion", "3", expect=first)  # a stale read
    with pytest.raises(NotFoundError, match="version 42 is not registered"):
        registry.set_alias("churn", "champion", "42")
    registry.set_alias("churn", "challenger", "3", reason="shadow")
    history = registry.history("churn", "champion")
    assert [(h.previous, h.version, h.updated_by, h.reason) for h in history] == [
        (None, "1", "alice", "first model"), ("1", "2", "bob", "better auc")]
    assert all(h.updated_at.endswith("Z") for h in history)
    assert set(registry.list_aliases("churn")) == {"champion", "challenger"}


def test_audit_entry_backfilled_after_crash(registry: Registry, versions: Any, bucket: str) -> None:
    """A mover that dies between the pointer write and the audit write loses no entry."""
    from mlship.aws.clients import client

    for v in ("1", "2", "3"):
        registry.register(versions(v))
    registry.set_alias("churn", "champion", "1")
    registry.set_alias("churn", "champion", "2", reason="crash after this move")
    # simulate the crash: the second move's audit entry was never written
    client("s3").delete_object(Bucket=bucket, Key="audit/churn/champion/000000000002.json")
    registry.set_alias("churn", "champion", "3")
    assert [(h.generation, h.version, h.reason) for h in registry.history("churn", "champion")] == [
        (1, "1", ""), (2, "2", "crash after this move"), (3, "3", "")]


def test_racing_conditional_moves_have_one_winner(registry: Registry, versions: Any,
                                                  atomic_s3_conditions: None) -> None:
    """Two promotions decided against the same champion: exactly one moves the alias."""
    for v in ("1", "2", "3"):
        registry.register(versions(v))
    registry.set_alias("churn", "champion", "1")
    for _ in range(5):  # several rounds make an interleaving bug visible
        base = registry.get_alias("churn", "champion")
        candidates = ["2", "3"] if base.version == "1" else ["1", "3"] if base.version == "2" else ["1", "2"]
        results: dict[str, Any] = {}
        barrier = threading.Barrier(2)

        def promote(version: str, base: Any = base, results: dict[str, Any] = results,
                    barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                results[version] = Registry(registry.bucket).set_alias("churn", "champion", version,
                                                                       expect=base)
            except AliasConflictError as exc:
                results[version] = exc

        threads = [threading.Thread(target=promote, args=(v,)) for v in candidates]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [v for v, r in results.items() if not isinstance(r, Exception)]
        assert len(winners) == 1, results
        now = registry.get_alias("churn", "champion")
        assert now.version == winners[0] and now.generation == base.generation + 1
        assert now.previous == base.version
    history = registry.history("churn", "champion")
    assert [h.generation for h in history] == list(range(1, 7))
    assert all(b.previous == a.version for a, b in zip(history, history[1:], strict=False))


def test_racing_unconditional_moves_lose_no_update(registry: Registry, versions: Any,
                                                   atomic_s3_conditions: None) -> None:
    """Eight writers moving the alias at once: every move lands once, and the audit is a chain."""
    targets = [str(v) for v in range(1, 9)]
    for v in targets:
        registry.register(versions(v))
    barrier = threading.Barrier(len(targets))
    errors: list[Exception] = []

    def move(version: str) -> None:
        barrier.wait()
        try:
            Registry(registry.bucket).set_alias("churn", "live", version, who=f"writer-{version}")
        except Exception as exc:  # any failure is a test failure below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = registry.history("churn", "live")
    assert [h.generation for h in history] == list(range(1, 9))
    assert sorted(h.version for h in history) == sorted(targets)  # no move lost
    assert history[0].previous is None
    assert all(b.previous == a.version for a, b in zip(history, history[1:], strict=False))
    assert registry.get_alias("churn", "live").version == history[-1].version


def test_uris_resolve_through_bundle_loader(registry: Registry, versions: Any, bucket: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlship.runtime.predictor import Predictor
    from mlship.runtime.sources import resolve_local

    registry.register(versions("1"))
    registry.set_alias("churn", "champion", "1")
    assert resolve_uri(f"mlship://churn@champion?bucket={bucket}") == f"s3://{bucket}/models/churn/1/bundle.tar.gz"
    monkeypatch.setenv("MLSHIP_REGISTRY_BUCKET", bucket)
    assert resolve_uri("mlship://churn/1").endswith("models/churn/1/bundle.tar.gz")
    predictor = Predictor.load("mlship://churn@champion")
    assert predictor.model_version == "1"
    assert (resolve_local("mlship://churn/1") / "model.onnx").is_file()
    with pytest.raises(NotFoundError, match="churn@nope is not set"):
        resolve_uri("mlship://churn@nope")
    with pytest.raises(NotFoundError, match="version 5 is not registered"):
        resolve_uri("mlship://churn/5")


@pytest.mark.parametrize("uri", ["mlship://churn", "mlship://@x", "mlship://churn@1bad", "s3://x/y",
                                 "mlship://ch urn/1"])
def test_bad_uris_are_named(uri: str) -> None:
    with pytest.raises(RegistryError):
        parse_uri(uri)


def test_missing_bucket_is_one_clear_error(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLSHIP_REGISTRY_BUCKET", raising=False)
    with pytest.raises(RegistryError, match="no registry bucket"):
        Registry()
    with pytest.raises(RegistryError, match="does not exist"):
        Registry("mlship-no-such-bucket-here").list_models()


def test_registry_module_is_import_light() -> None:
    import subprocess
    import sys

    code = ("import sys, mlship.registry.store, mlship.runtime.bundle; "
            "heavy = ('pandas', 'sklearn', 'sagemaker', 'matplotlib', 'pyspark'); "
            "bad = [m for m in heavy if m in sys.modules]; "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sagemaker_mirror_versions_and_approval(registry: Registry, versions: Any, bucket: str) -> None:
    from mlship.aws.clients import client

    r1, _ = registry.register(versions("1"))
    r2, _ = registry.register(versions("2"))
    sm = client("sagemaker")
    packages = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert sorted(p["ModelPackageDescription"] for p in packages) == ["mlship churn version 1",
                                                                     "mlship churn version 2"]
    assert {p["ModelApprovalStatus"] for p in packages} == {"PendingManualApproval"}
    described = sm.describe_model_package(ModelPackageName=r2.sagemaker_package_arn)
    metrics_uri = described["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    key = metrics_uri.split(f"s3://{bucket}/", 1)[1]
    metrics = json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert metrics["holdout"]["accuracy"] == pytest.approx(r2.metrics["accuracy"])
    registry.approve("churn", "2", description="gate passed")
    assert registry.approval_status("churn", "2") == "Approved"
    assert registry.approval_status("churn", "1") == "PendingManualApproval"
    assert sm.describe_model_package(ModelPackageName=r2.sagemaker_package_arn)["ApprovalDescription"] == \
        "gate passed"
