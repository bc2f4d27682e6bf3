"""The bundle archive shipped to Spark executors: packed once per bundle identity, verified on load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mlship.batch.job import ship_bundle

from mlship.errors import BundleError
from mlship.runtime.archive import extract_tarball
from mlship.runtime.predictor import Predictor


def test_same_bundle_is_packed_once_and_another_bundle_gets_its_own_archive(
        churn_bundle: Path, strict_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    first, digest = ship_bundle(str(churn_bundle))
    packed_at = first.stat().st_mtime_ns
    again, digest_again = ship_bundle(str(churn_bundle))
    assert (again, digest_again) == (first, digest) and again.stat().st_mtime_ns == packed_at  # not re-packed
    # the same bundle given as its .tar.gz resolves to the same identity
    assert ship_bundle(str(churn_bundle) + ".tar.gz")[0] == first
    other, other_digest = ship_bundle(str(strict_bundle))
    assert other != first and other_digest != digest
    shipped = Predictor.load(extract_tarball(first, tmp_path / "shipped"))
    golden: Any = shipped.bundle.golden["inputs"]
    assert shipped.predict(golden).labels.tolist() == Predictor.load(churn_bundle).predict(golden).labels.tolist()


def test_a_tampered_cached_archive_is_refused_by_the_worker_loader(
        churn_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache is keyed by the manifest; the hashes inside it still guard the shipped files."""
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    archive, _ = ship_bundle(str(churn_bundle))
    evil = shutil.copytree(churn_bundle, tmp_path / "evil")
    (evil / "golden.json").write_text((evil / "golden.json").read_text().replace("0.", "0.9", 1))
    from mlship.runtime.archive import pack_bundle

    pack_bundle(evil, archive)  # someone overwrites the cached archive in place
    assert ship_bundle(str(churn_bundle))[0] == archive
    with pytest.raises(BundleError, match="golden.json"):
        Predictor.load(archive)
