"""Bundles load from a directory, a .tar.gz, an s3:// object or an s3:// prefix (moto in-process)."""

from __future__ import annotations

import json

import pytest

from mlship.aws.clients import client
from mlship.errors import BundleError
from mlship.runtime.predictor import Predictor
from mlship.runtime.sources import open_bundle


def _upload_both_forms(s3, bucket: str, bundle) -> None:
    """The bundle as one archive (churn/1/bundle.tar.gz) and as a directory prefix (dirs/churn-1/)."""
    s3.upload_file(str(bundle) + ".tar.gz", bucket, "churn/1/bundle.tar.gz")
    for path in bundle.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), bucket, f"dirs/churn-1/{path.relative_to(bundle).as_posix()}")


def test_s3_tarball_and_prefix_load_and_are_cached(aws, churn_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    s3 = client("s3")
    s3.create_bucket(Bucket="bundles")
    _upload_both_forms(s3, "bundles", churn_bundle)

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

    from mlship.runtime.archive import pack_bundle

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    copy = shutil.copytree(churn_bundle, tmp_path / "copy")
    (copy / "golden.json").write_text((copy / "golden.json").read_text().replace("0.", "0.9", 1))
    client("s3").create_bucket(Bucket="evil")
    client("s3").upload_file(str(pack_bundle(copy, tmp_path / "evil.tar.gz")), "evil", "b.tar.gz")
    with pytest.raises(BundleError, match="golden.json"):
        Predictor.load("s3://evil/b.tar.gz")


# ---------------------------------------------------------------------- extraction limits and cache healing
def _gzip_of_zeros(size: int, chunk: int = 1 << 20) -> bytes:
    """``size`` zero bytes as concatenated gzip members (valid gzip) built from one compressed chunk."""
    import gzip

    one = gzip.compress(b"\0" * chunk, compresslevel=9)
    return one * (size // chunk) + gzip.compress(b"\0" * (size % chunk))


def _bomb(path, churn_bundle, name: str, size: int, *, manifest_first: bool):
    """A real, complete .tar.gz (a few MB) whose member ``name`` expands to ``size`` zero bytes."""
    import gzip
    import tarfile

    def header(member: str, length: int) -> bytes:
        info = tarfile.TarInfo(member)
        info.size = length
        return info.tobuf(tarfile.USTAR_FORMAT)

    head = b""
    if manifest_first:
        manifest = (churn_bundle / "manifest.json").read_bytes()
        head += header("manifest.json", len(manifest)) + manifest + b"\0" * (-len(manifest) % 512)
    head += header(name, size)  # its data (size is a multiple of 512) and the end blocks follow
    path.write_bytes(gzip.compress(head) + _gzip_of_zeros(size) + gzip.compress(b"\0" * 10240))
    return path


def _disk_bytes(root) -> int:
    return sum(p.lstat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("name,size,manifest_first,reason", [
    ("model.onnx", 2 * 1024**3, False, "per-member limit"),  # first member, nothing known: the header refuses it
    ("model.onnx", 2 * 1024**3, True, "per-member limit"),
    ("weights.bin", 1024**3, True, "not listed in manifest.json"),  # within the limits, but not in the manifest
])
def test_an_archive_declaring_a_2_gib_member_is_refused_before_writing(churn_bundle, tmp_path, monkeypatch, name,
                                                                       size, manifest_first, reason):
    """Issue 11 item 9: a ~2 MB archive with a 2 GiB member used to write 2 GiB before any check."""
    from mlship.runtime.archive import ArchiveError

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLSHIP_MAX_BUNDLE_BYTES", raising=False)
    bomb = _bomb(tmp_path / "bomb.tar.gz", churn_bundle, name, size, manifest_first=manifest_first)
    assert bomb.stat().st_size < 8 * 1024**2
    with pytest.raises(ArchiveError) as err:
        Predictor.load(bomb)
    assert err.value.member == name and reason in str(err.value)
    assert _disk_bytes(tmp_path / "cache") < 64 * 1024  # at most the manifest was written, then removed
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_dir() and p.name.startswith(".")] == []


def test_a_bad_limit_setting_is_named(churn_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLSHIP_MAX_BUNDLE_BYTES", "2GB")
    with pytest.raises(BundleError, match="MLSHIP_MAX_BUNDLE_BYTES must be a positive number of bytes, got '2GB'"):
        open_bundle(str(churn_bundle) + ".tar.gz")


def _corrupt(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _leftovers(root) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith((".extract-", ".stale-")) or
                  p.name.endswith(".part"))


def test_a_corrupt_cache_entry_heals_on_the_next_load(churn_bundle, tmp_path, monkeypatch):
    """Issue 11 item 9: a corrupted extracted copy used to be reused forever, failing every load."""
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    tarball = str(churn_bundle) + ".tar.gz"
    cached = open_bundle(tarball).path
    _corrupt(cached / "model.onnx")
    (cached / "golden.json").unlink()
    predictor = Predictor.load(tarball)
    assert predictor.bundle.path == cached
    assert (cached / "model.onnx").read_bytes() == (churn_bundle / "model.onnx").read_bytes()
    assert (cached / "golden.json").is_file()
    assert _leftovers(tmp_path / "cache") == []


def test_a_failed_cache_replace_is_raised_not_swallowed(churn_bundle, tmp_path, monkeypatch):
    import errno
    import os

    from mlship.runtime import bundle as bundle_module

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    tarball = str(churn_bundle) + ".tar.gz"
    cached = open_bundle(tarball).path
    _corrupt(cached / "model.onnx")
    real_replace = os.replace

    def failing_replace(src, dst):  # fault injection: root ignores permissions, so a real EACCES is not possible
        if os.path.basename(src).startswith(".extract-"):
            raise OSError(errno.EACCES, "Permission denied")
        return real_replace(src, dst)

    monkeypatch.setattr(bundle_module.os, "replace", failing_replace)
    with pytest.raises(BundleError, match=r"cannot move the extracted bundle into .*: Permission denied"):
        Predictor.load(tarball)
    monkeypatch.setattr(bundle_module.os, "replace", real_replace)
    assert Predictor.load(tarball).bundle.path == cached  # and the next load heals it
    assert _leftovers(tmp_path / "cache") == []


def test_a_corrupt_s3_cache_entry_is_downloaded_again(aws, churn_bundle, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    s3 = client("s3")
    s3.create_bucket(Bucket="heal")
    _upload_both_forms(s3, "heal", churn_bundle)
    for uri in ("s3://heal/churn/1/bundle.tar.gz", "s3://heal/dirs/churn-1/"):
        cached = open_bundle(uri).path
        _corrupt(cached / "model.onnx")
        if uri.endswith(".tar.gz"):
            _corrupt(cached.with_suffix(".tar.gz"))  # the downloaded archive too: only S3 is trusted
        assert Predictor.load(uri).bundle.path == cached
        assert (cached / "model.onnx").read_bytes() == (churn_bundle / "model.onnx").read_bytes()
    assert _leftovers(tmp_path / "cache") == []


def test_s3_prefix_keys_that_escape_are_refused(aws, churn_bundle, tmp_path, monkeypatch):
    from mlship.runtime.archive import ArchiveError

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    s3 = client("s3")
    s3.create_bucket(Bucket="escape")
    for path in churn_bundle.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "escape", f"b/{path.relative_to(churn_bundle).as_posix()}")
    s3.put_object(Bucket="escape", Key="b/../../../evil.txt", Body=b"x")
    with pytest.raises(ArchiveError) as err:
        open_bundle("s3://escape/b/")
    assert err.value.reason == "unsafe_path" and err.value.member == "../../../evil.txt"
    assert not list(tmp_path.rglob("evil.txt"))


def test_an_archive_member_whose_size_differs_from_the_manifest_is_refused_before_writing(churn_bundle, tmp_path,
                                                                                          monkeypatch, signing_keys):
    import shutil

    from mlship.runtime.archive import ArchiveError, pack_bundle
    from mlship.runtime.bundle import file_sizes, sign_bundle, write_manifest
    from mlship.runtime.signing import load_private_key

    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))
    copy = shutil.copytree(churn_bundle, tmp_path / "sized")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sizes"] = file_sizes(copy)
    write_manifest(copy, manifest)
    sign_bundle(copy, load_private_key(signing_keys / "mlship.key"))
    assert Predictor.load(pack_bundle(copy, tmp_path / "sized.tar.gz"), public_key=signing_keys / "mlship.pub")
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"\0" * 4096)
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache2"))
    with pytest.raises(ArchiveError) as err:
        open_bundle(pack_bundle(copy, tmp_path / "grown.tar.gz"))
    assert err.value.reason == "size_mismatch" and err.value.member == "model.onnx"
    assert _disk_bytes(tmp_path / "cache2") == 0


@pytest.mark.parametrize("limits,reason", [
    ({"members": 3}, "too_many_members"),
    ({"total_bytes": 100_000}, "too_large"),
    ({"member_bytes": 50_000}, "too_large"),
])
def test_extraction_limits_by_keyword(churn_bundle, tmp_path, limits, reason):
    from mlship.runtime.archive import ArchiveError, ExtractLimits, extract_tarball

    with pytest.raises(ArchiveError) as err:
        extract_tarball(str(churn_bundle) + ".tar.gz", tmp_path / "out", limits=ExtractLimits(**limits))
    assert err.value.reason == reason
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []  # staging removed too
    assert extract_tarball(str(churn_bundle) + ".tar.gz", tmp_path / "out") == tmp_path / "out"  # defaults fit


def test_concurrent_packs_of_one_path_never_share_a_temporary_file(churn_bundle, tmp_path):
    """Eight threads pack the same bundle to the same path: every pack succeeds, the result is whole."""
    import tarfile
    from concurrent.futures import ThreadPoolExecutor

    from mlship.runtime.archive import pack_bundle

    out = tmp_path / "same.tar.gz"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: pack_bundle(churn_bundle, out), range(8)))
    assert results == [out] * 8
    with tarfile.open(out) as tar:
        assert "manifest.json" in tar.getnames()
    assert [p.name for p in tmp_path.iterdir()] == ["same.tar.gz"]  # no temporary file left behind
