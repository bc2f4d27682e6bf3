"""Tampering with any bundle file, the manifest or the signature makes verification fail, naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlship.errors import VerificationError
from mlship.runtime.archive import pack_bundle
from mlship.runtime.bundle import Bundle
from mlship.runtime.predictor import Predictor
from mlship.runtime.signing import generate_keypair, load_public_key
from mlship.runtime.sources import open_bundle


@pytest.fixture
def bundle_copy(churn_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(churn_bundle, tmp_path / "bundle"))


def _flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _files(churn_bundle: Path) -> list[str]:
    return sorted(json.loads((churn_bundle / "manifest.json").read_text())["files"])


def test_intact_bundle_verifies_with_signature(churn_bundle, signing_keys):
    notes = Bundle(churn_bundle).verify(load_public_key(signing_keys / "mlship.pub"))
    assert notes == []


def test_every_listed_file_is_covered(churn_bundle):
    files = _files(churn_bundle)
    assert {"model.onnx", "golden.json", "profile.json", "model_card.md", "model_card.html"} <= set(files)
    assert any(f.startswith("card/") for f in files)


@pytest.mark.parametrize("relpath", ["model.onnx", "golden.json", "profile.json", "model_card.md",
                                     "model_card.html", "card/confusion_matrix.png", "card/roc.png"])
def test_one_changed_byte_in_a_file_is_named(bundle_copy, relpath, signing_keys):
    _flip_byte(bundle_copy / relpath)
    with pytest.raises(VerificationError) as err:
        Bundle(bundle_copy).verify(load_public_key(signing_keys / "mlship.pub"))
    assert err.value.problems == [f"{relpath}: sha256 does not match the manifest (file changed)"]


@pytest.mark.parametrize("field,change", [
    ("version", lambda m: m.update(version="2")),
    ("metrics", lambda m: m["metrics"]["holdout"].update(accuracy=0.99)),
    ("input_schema", lambda m: m["input_schema"]["fields"][0].update(nullable=True)),
    ("files", lambda m: m["files"].update({"model.onnx": "0" * 64})),
])
def test_changed_manifest_field_is_named(bundle_copy, signing_keys, field, change):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    change(manifest)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(VerificationError) as err:
        Bundle(bundle_copy).verify(load_public_key(signing_keys / "mlship.pub"))
    assert f"manifest.json field '{field}' does not match its signature" in err.value.problems


def test_one_changed_byte_in_the_manifest_is_named(bundle_copy, signing_keys):
    path = bundle_copy / "manifest.json"
    text = path.read_text()
    i = text.index('"description": "test bundle"') + len('"description": "t')
    path.write_text(text[:i] + "X" + text[i + 1:])
    with pytest.raises(VerificationError, match="manifest.json field 'description' does not match"):
        Bundle(bundle_copy).verify(load_public_key(signing_keys / "mlship.pub"))


def test_a_corrupt_manifest_is_named(bundle_copy):
    _flip_byte(bundle_copy / "manifest.json", offset=0)
    with pytest.raises(VerificationError, match="manifest.json is not valid JSON"):
        Bundle(bundle_copy)


def test_wrong_key_and_tampered_signature_fail(bundle_copy, tmp_path, signing_keys):
    other = generate_keypair(tmp_path / "other")[1]
    with pytest.raises(VerificationError, match="not the trusted key"):
        Bundle(bundle_copy).verify(load_public_key(other))
    sig = json.loads((bundle_copy / "signature.json").read_text())
    sig["field_digests"]["metrics"] = "0" * 64  # forge the signed digest of a field
    (bundle_copy / "signature.json").write_text(json.dumps(sig))
    with pytest.raises(VerificationError, match="signature does not match its signed field digests"):
        Bundle(bundle_copy).verify(load_public_key(signing_keys / "mlship.pub"))


def test_missing_and_unexpected_files_are_named(bundle_copy):
    (bundle_copy / "profile.json").unlink()
    (bundle_copy / "extra.bin").write_bytes(b"x")
    with pytest.raises(VerificationError) as err:
        Bundle(bundle_copy).verify()
    assert "profile.json: listed in the manifest but missing" in err.value.problems
    assert "extra.bin: not listed in the manifest (unexpected file)" in err.value.problems


def test_unsigned_bundle_is_refused_when_a_key_is_required(bundle_copy, signing_keys):
    (bundle_copy / "signature.json").unlink()
    with pytest.raises(VerificationError, match="signature.json is missing"):
        Predictor.load(bundle_copy, public_key=signing_keys / "mlship.pub")
    assert Predictor.load(bundle_copy).model_version == "1"  # hashes alone still verify


def test_tarball_round_trip_and_tampered_tarball(churn_bundle, tmp_path, signing_keys):
    tar = pack_bundle(churn_bundle, tmp_path / "b.tar.gz")
    assert tar.read_bytes() == pack_bundle(churn_bundle, tmp_path / "again.tar.gz").read_bytes()  # deterministic
    bundle = open_bundle(tar)
    assert bundle.verify(load_public_key(signing_keys / "mlship.pub")) == []
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tar.read_bytes()[: len(tar.read_bytes()) // 2])
    with pytest.raises(Exception, match="not a readable bundle archive"):
        open_bundle(broken)


@pytest.mark.parametrize("relpath", ["model.onnx", "manifest.json"])
def test_cli_verify_names_the_tampered_file(bundle_copy, signing_keys, relpath):
    if relpath == "manifest.json":
        manifest = json.loads((bundle_copy / relpath).read_text())
        manifest["name"] = "evil"
        (bundle_copy / relpath).write_text(json.dumps(manifest))
        expected = "manifest.json field 'name' does not match its signature"
    else:
        _flip_byte(bundle_copy / relpath)
        expected = "model.onnx: sha256 does not match"
    proc = subprocess.run([sys.executable, "-m", "mlship", "verify", str(bundle_copy), "--public-key",
                           str(signing_keys / "mlship.pub")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def _cli_verify(target: Path, env: dict[str, str] | None = None, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlship", "verify", str(target), *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def _error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("document,change,named", [
    ("signature.json", lambda d: {**d, "signature": 12345}, "signature.json field 'signature' must be a string"),
    ("signature.json", lambda d: [d], "signature.json is not a JSON object (got an array)"),
    ("signature.json", lambda d: "signed", "signature.json is not a JSON object (got a string)"),
    ("manifest.json", lambda d: {**d, "files": sorted(d["files"])}, "manifest.json field 'files' must be an object"),
    ("manifest.json", lambda d: {**d, "files": {**d["files"], "model.onnx": 7}},
     "manifest.json field 'files[model.onnx]' must be a sha256 hex digest"),
])
def test_malformed_document_types_are_named_verification_failures(bundle_copy, signing_keys, document, change,
                                                                  named):
    """Issue 11 item 5: these crashed with TypeError/AttributeError; now each is a named failure."""
    path = bundle_copy / document
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(VerificationError) as err:
        Bundle(bundle_copy).verify(load_public_key(signing_keys / "mlship.pub"))
    assert any(named in p for p in err.value.problems), err.value.problems
    proc = _cli_verify(bundle_copy, None, "--public-key", str(signing_keys / "mlship.pub"))
    assert len(_error_lines(proc)) == 1
    assert named in proc.stderr


def test_cli_verify_honours_mlship_public_key(bundle_copy, tmp_path, signing_keys, monkeypatch):
    """Issue 11 item 12: a bundle signed by another key printed OK when the key came from the environment."""
    from mlship.runtime.bundle import sign_bundle
    from mlship.runtime.signing import load_private_key

    other = generate_keypair(tmp_path / "other")[0]
    sign_bundle(bundle_copy, load_private_key(other))
    trusted = signing_keys / "mlship.pub"
    for configured in (str(trusted), trusted.read_text()):  # a path or the PEM itself, as every loader
        proc = _cli_verify(bundle_copy, {"MLSHIP_PUBLIC_KEY": configured}, "--no-golden")
        assert len(_error_lines(proc)) == 1
        assert "not the trusted key" in proc.stderr
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", str(trusted))
    with pytest.raises(VerificationError, match="not the trusted key"):  # the loader agrees
        Predictor.load(bundle_copy)


def test_cli_verify_with_an_unreadable_key_is_one_error_line(churn_bundle, tmp_path):
    missing = tmp_path / "missing.pub"
    proc = _cli_verify(churn_bundle, {"MLSHIP_PUBLIC_KEY": str(missing)}, "--no-golden")
    assert _error_lines(proc) == [f"error: cannot read public key {missing}: No such file or directory"]


def test_declared_sizes_and_links_in_a_directory_are_named(bundle_copy, signing_keys):
    from mlship.runtime.bundle import file_sizes, sign_bundle, write_manifest
    from mlship.runtime.signing import load_private_key

    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["sizes"] = file_sizes(bundle_copy)
    write_manifest(bundle_copy, manifest)
    sign_bundle(bundle_copy, load_private_key(signing_keys / "mlship.key"))
    key = load_public_key(signing_keys / "mlship.pub")
    assert Bundle(bundle_copy).verify(key) == []
    with (bundle_copy / "profile.json").open("a") as fh:
        fh.write(" ")
    (bundle_copy / "card" / "roc.png").unlink()
    (bundle_copy / "card" / "roc.png").symlink_to(bundle_copy / "model.onnx")
    with pytest.raises(VerificationError) as err:
        Bundle(bundle_copy).verify(key)
    size = manifest["sizes"]["profile.json"]
    assert err.value.problems == [f"profile.json: {size + 1} bytes, the manifest says {size} (file changed)",
                                  "card/roc.png: is a symbolic link, not a regular file"]
