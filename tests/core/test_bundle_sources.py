"""Bundles load from a directory, a .tar.gz, an s3:// object or an s3:// prefix (moto in-process)."""

from __future__ import annotations

import pytest

from mlship.aws import client
from mlship.bundle import open_bundle
from mlship.errors import BundleError
from mlship.predictor import Predictor


def test_s3_tarball_and_prefix_load_and_are_cached(aws, churn_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    s3 = client("s3")
    s3.create_bucket(Bucket="bundles")
    s3.upload_file(str(churn_bundle) + ".tar.gz", "bundles", "churn/1/bundle.tar.gz")
    for path in churn_bundle.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "bundles", f"dirs/churn-1/{path.relative_to(churn_bundle).as_posix()}")

    from_tar = Predictor.load("s3://bundles/churn/1/bundle.tar.gz")
    from_prefix = Predictor.load("s3://bundles/dirs/churn-1/")
    local = Predictor.load(churn_bundle)
    golden = local.bundle.golden["inputs"]
    assert from_tar.predict(golden).probabilities.tolist() == local.predict(golden).probabilities.tolist()
    assert from_prefix.predict(golden).labels.tolist() == local.predict(golden).labels.tolist()
    assert str(from_tar.bundle.path).startswith(str(tmp_path / "cache"))
    # a second load reuses the cached copy (same directory, no second download)
    assert open_bundle("s3://bundles/churn/1/bundle.tar.gz").path == from_tar.bundle.path


def test_concurrent_loads_of_one_s3_bundle_share_the_cache(aws, churn_bundle, tmp_path, monkeypatch):
    """Threads of one process downloading the same bundle at once must not trip over each other's files."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    s3 = client("s3")
    s3.create_bucket(Bucket="shared")
    s3.upload_file(str(churn_bundle) + ".tar.gz", "shared", "churn/1/bundle.tar.gz")
    for prefix in ("churn/1/bundle.tar.gz", "dirs/"):
        if prefix == "dirs/":
            for path in churn_bundle.rglob("*"):
                if path.is_file():
                    s3.upload_file(str(path), "shared", f"dirs/{path.relative_to(churn_bundle).as_posix()}")
        with ThreadPoolExecutor(max_workers=8) as pool:
            paths = list(pool.map(lambda uri: open_bundle(uri).path, [f"s3://shared/{prefix}"] * 16))
        assert len(set(paths)) == 1
        assert Predictor.load(paths[0]).bundle.manifest["name"] == Predictor.load(churn_bundle).bundle.manifest["name"]
    leftovers = [p.name for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".part") or p.name.startswith(".")]
    assert leftovers == []


def test_missing_s3_objects_are_named(aws, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    client("s3").create_bucket(Bucket="empty")
    with pytest.raises(BundleError, match="nothing found at s3://empty/models/x/"):
        open_bundle("s3://empty/models/x/")
    with pytest.raises(BundleError, match="cannot download bundle s3://empty/missing.tar.gz"):
        open_bundle("s3://empty/missing.tar.gz")


def test_tampered_s3_bundle_is_refused(aws, churn_bundle, tmp_path, monkeypatch):
    import shutil

    from mlship.bundle import pack_bundle

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    copy = shutil.copytree(churn_bundle, tmp_path / "copy")
    (copy / "golden.json").write_text((copy / "golden.json").read_text().replace("0.", "0.9", 1))
    client("s3").create_bucket(Bucket="evil")
    client("s3").upload_file(str(pack_bundle(copy, tmp_path / "evil.tar.gz")), "evil", "b.tar.gz")
    with pytest.raises(BundleError, match="golden.json: sha256 does not match"):
        Predictor.load("s3://evil/b.tar.gz")
