"""Tamper suite: every malformed signature/manifest field and every hostile archive is refused with
a named reason by ``mlship verify`` (one ``error:`` line, non-zero exit, no traceback) and by
``Predictor.load`` (a BundleError subclass), never with a TypeError or a half-written cache.

One good signed bundle per module (the session fixture); every case mutates a hard-linked copy
(the mutated file is unlinked first, so the shared bundle is never touched) or a rebuilt archive.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tamper import HOSTILE, archive, file_member, members
from typer.testing import CliRunner

from mlship.cli import app
from mlship.errors import BundleError, VerificationError
from mlship.runtime.archive import ArchiveError, pack_bundle
from mlship.runtime.bundle import MANIFEST, SIGNATURE, Bundle
from mlship.runtime.manifest import _TOP_FIELDS, MalformedDocumentError
from mlship.runtime.predictor import Predictor
from mlship.runtime.signing import RECORD_FIELDS, load_public_key

# one value of every JSON type; a case uses each one whose type differs from the field's own
JSON_VALUES: dict[str, Any] = {"integer": 12345, "number": 1.5, "boolean": True, "null": None,
                               "string": "text", "array": [1, "a"], "object": {"a": 1}}
_PY_TYPE = {"integer": int, "number": float, "boolean": bool, "null": type(None), "string": str,
            "array": list, "object": dict}


RECORD_TYPES = {"algorithm": str, "key_id": str, "field_digests": dict, "signature": str}


def _wrong_types(fields: dict[str, type]) -> list[tuple[str, str]]:
    """(field, JSON type name) for every JSON type other than the field's own."""
    return [(field, kind) for field, right in sorted(fields.items()) for kind in JSON_VALUES
            if _PY_TYPE[kind] is not right and not (right is int and kind == "boolean")]


@pytest.fixture(scope="module")
def good(churn_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The signed session bundle, its archive, its parsed documents and the trusted key."""
    tar = pack_bundle(churn_bundle, tmp_path_factory.mktemp("good") / "good.tar.gz")
    return {"dir": churn_bundle, "tar": tar, "manifest": json.loads((churn_bundle / MANIFEST).read_text()),
            "signature": json.loads((churn_bundle / SIGNATURE).read_text())}


@pytest.fixture(autouse=True)
def trusted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signing_keys: Path) -> None:
    """Every loader trusts the signing key (as a deployment does) and caches under this test's tmp dir."""
    monkeypatch.setenv("MLSHIP_PUBLIC_KEY", str(signing_keys / "mlship.pub"))
    monkeypatch.setenv("MLSHIP_CACHE_DIR", str(tmp_path / "cache"))


def _linked_copy(src: Path, dest: Path) -> Path:
    return Path(shutil.copytree(src, dest, copy_function=os.link))


def _replace(path: Path, data: bytes) -> None:
    path.unlink()  # break the hard link before writing: the session bundle stays intact
    path.write_bytes(data)


def _with_document(good: dict[str, Any], tmp_path: Path, name: str, data: bytes) -> Path:
    copy = _linked_copy(good["dir"], tmp_path / "bundle")
    _replace(copy / name, data)
    return copy


def _refused_by_cli(target: Path) -> str:
    result = CliRunner().invoke(app, ["verify", str(target)])
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")], result.stderr
    return result.stderr


def _refused_by_loader(target: Path) -> BundleError:
    with pytest.raises(BundleError) as err:
        Predictor.load(target)
    return err.value


def _refused(target: Path, *names: str) -> BundleError:
    """Both loaders refuse ``target``; each of ``names`` appears in both reasons."""
    stderr = _refused_by_cli(target)
    error = _refused_by_loader(target)
    for name in names:
        assert name in stderr and name in str(error), (name, stderr, str(error))
    return error


# ---------------------------------------------------------------------- signature.json
def test_signature_types_match_the_signer(good):
    assert {k: type(v) for k, v in good["signature"].items()} == RECORD_TYPES
    assert set(RECORD_FIELDS) == set(RECORD_TYPES)


@pytest.mark.parametrize("field,kind", _wrong_types(RECORD_TYPES))
def test_signature_field_of_wrong_type(good, tmp_path, field, kind):
    record = {**good["signature"], field: JSON_VALUES[kind]}
    target = _with_document(good, tmp_path, SIGNATURE, json.dumps(record).encode())
    error = _refused(target, SIGNATURE, f"'{field}'")
    assert isinstance(error, VerificationError)


@pytest.mark.parametrize("field", RECORD_FIELDS)
def test_signature_field_missing(good, tmp_path, field):
    record = {k: v for k, v in good["signature"].items() if k != field}
    _refused(_with_document(good, tmp_path, SIGNATURE, json.dumps(record).encode()), SIGNATURE, f"'{field}'")


@pytest.mark.parametrize("data,reason", [
    (b"[1, 2]", "not a JSON object (got an array)"),
    (b'"signature"', "not a JSON object (got a string)"),
    (b"12345", "not a JSON object (got an integer)"),
    (b"null", "not a JSON object (got null)"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"algorithm": ', "not valid JSON"),
    (b'{"algorithm": "ed25519", "algorithm": "rsa"}', "appears twice"),
    (b'{"algorithm": NaN}', "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
])
def test_signature_document_malformed(good, tmp_path, data, reason):
    _refused(_with_document(good, tmp_path, SIGNATURE, data), SIGNATURE, reason)


@pytest.mark.parametrize("change,reason", [
    (lambda r: r["field_digests"].update(name=12345), "'field_digests[name]'"),
    (lambda r: r.update(signature="not base64!"), "not a base64"),
    (lambda r: r.update(signature="AAAA"), "64-byte"),
])
def test_signature_field_contents(good, tmp_path, change, reason):
    record = json.loads(json.dumps(good["signature"]))
    change(record)
    _refused(_with_document(good, tmp_path, SIGNATURE, json.dumps(record).encode()), SIGNATURE, reason)


# ---------------------------------------------------------------------- manifest.json
def test_every_manifest_field_is_covered(good):
    """The typed fields below include every field an export writes."""
    assert set(good["manifest"]) <= set(_TOP_FIELDS)


@pytest.mark.parametrize("field,kind", _wrong_types({k: want for k, (want, _) in _TOP_FIELDS.items()}))
def test_manifest_field_of_wrong_type(good, tmp_path, field, kind):
    manifest = {**good["manifest"], field: JSON_VALUES[kind]}
    target = _with_document(good, tmp_path, MANIFEST, json.dumps(manifest).encode())
    error = _refused(target, MANIFEST, f"'{field}'")
    assert isinstance(error, MalformedDocumentError)


@pytest.mark.parametrize("field", sorted(k for k, (_, required) in _TOP_FIELDS.items() if required))
def test_manifest_required_field_missing(good, tmp_path, field):
    manifest = {k: v for k, v in good["manifest"].items() if k != field}
    _refused(_with_document(good, tmp_path, MANIFEST, json.dumps(manifest).encode()), MANIFEST, f"'{field}'")


NESTED: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("files[model.onnx]", lambda m: m["files"].update({"model.onnx": 12345})),
    ("files[model.onnx]", lambda m: m["files"].update({"model.onnx": "abc"})),
    ("files[../outside]", lambda m: m["files"].update({"../outside": "0" * 64})),
    ("files[/etc/passwd]", lambda m: m["files"].update({"/etc/passwd": "0" * 64})),
    ("sizes[model.onnx]", lambda m: m.update(sizes={"model.onnx": "big"})),
    ("sizes[model.onnx]", lambda m: m.update(sizes={"model.onnx": -1})),
    ("sizes[model.onnx]", lambda m: m.update(sizes={"model.onnx": True})),
    ("model.file", lambda m: m["model"].update(file=12345)),
    ("model.file", lambda m: m["model"].update(file="../../elsewhere.onnx")),
    ("model.file", lambda m: m["model"].pop("file")),
    ("input_schema.fields", lambda m: m["input_schema"].update(fields={"a": 1})),
    ("input_schema.fields[0]", lambda m: m["input_schema"]["fields"].__setitem__(0, "tenure")),
    ("input_schema.fields[0].name", lambda m: m["input_schema"]["fields"][0].update(name=7)),
    ("output_schema.onnx_outputs", lambda m: m["output_schema"].update(onnx_outputs=["label"])),
    ("output_schema.onnx_outputs.label", lambda m: m["output_schema"]["onnx_outputs"].update(label=1)),
    ("output_schema.classes", lambda m: m["output_schema"].update(classes="0,1")),
    ("golden.file", lambda m: m["golden"].update(file=[])),
    ("format", lambda m: m.update(format="mlship-bundle/99")),
    ("task", lambda m: m.update(task="clustering")),
]


@pytest.mark.parametrize("field,change", NESTED, ids=[f"{i}-{f}" for i, (f, _) in enumerate(NESTED)])
def test_manifest_nested_field(good, tmp_path, field, change):
    manifest = json.loads(json.dumps(good["manifest"]))
    change(manifest)
    _refused(_with_document(good, tmp_path, MANIFEST, json.dumps(manifest).encode()), MANIFEST, f"'{field}'")


@pytest.mark.parametrize("data,reason", [
    (b"[]", "not a JSON object (got an array)"),
    (b'"manifest"', "not a JSON object (got a string)"),
    (b"\xc3\x28{}", "not UTF-8"),
    (b"{", "not valid JSON"),
    (b'{"format": "mlship-bundle/1", "format": "x"}', "appears twice"),
    (b'{"version": Infinity}', "not valid JSON"),
    (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON"),
])
def test_manifest_document_malformed(good, tmp_path, data, reason):
    _refused(_with_document(good, tmp_path, MANIFEST, data), MANIFEST, reason)


# ---------------------------------------------------------------------- generated documents
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=4), max_leaves=12)


@pytest.fixture(scope="module")
def scratch(good: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _linked_copy(good["dir"], tmp_path_factory.mktemp("scratch") / "bundle")


def _library_refuses(path: Path, key: Any) -> None:
    """Bundle + verify either pass or raise a BundleError subclass: nothing else escapes."""
    with contextlib.suppress(BundleError):
        Bundle(path).verify(key)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(_TOP_FIELDS) + ["extra"]), value=JSON, document=st.sampled_from([MANIFEST,
                                                                                                     SIGNATURE]))
def test_generated_field_values_never_crash(good, scratch, signing_keys, field, value, document):
    key = load_public_key(signing_keys / "mlship.pub")
    base = good["manifest"] if document == MANIFEST else good["signature"]
    _replace(scratch / document, json.dumps({**base, field: value}).encode())
    try:
        _library_refuses(scratch, key)
    finally:
        _replace(scratch / document, (good["dir"] / document).read_bytes())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()),
       document=st.sampled_from([MANIFEST, SIGNATURE]))
def test_generated_documents_never_crash(good, scratch, signing_keys, data, document):
    key = load_public_key(signing_keys / "mlship.pub")
    _replace(scratch / document, data)
    try:
        _library_refuses(scratch, key)
    finally:
        _replace(scratch / document, (good["dir"] / document).read_bytes())


# ---------------------------------------------------------------------- archives
@pytest.mark.parametrize("cut", [0, 10, 200, 0.25, 0.5, 0.75, 0.95])
def test_truncated_archive(good, tmp_path, cut):
    data = good["tar"].read_bytes()
    size = cut if isinstance(cut, int) else int(len(data) * cut)
    target = tmp_path / "cut.tar.gz"
    target.write_bytes(data[:size])
    error = _refused(target, str(target))
    assert isinstance(error, ArchiveError) and error.reason == "unreadable"
    assert not list((tmp_path / "cache").rglob("*.onnx"))  # nothing half-extracted left in the cache


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive(good, tmp_path, case):
    mutate, reason, name = HOSTILE[case]
    target = archive(tmp_path / f"{case}.tar.gz", mutate(list(members(good["tar"]))))
    error = _refused(target, name)
    assert isinstance(error, ArchiveError) and error.reason == reason
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # refused before anything is kept


@pytest.mark.parametrize("missing", ["model.onnx", "golden.json", "card/roc.png", SIGNATURE])
def test_missing_member(good, tmp_path, missing):
    kept = [m for m in members(good["tar"]) if m[0].name != missing]
    target = archive(tmp_path / "missing.tar.gz", kept)
    if missing == SIGNATURE:  # a trusted key makes the signature mandatory
        _refused(target, f"{SIGNATURE} is missing")
    else:
        error = _refused(target, f"{missing}: listed in the manifest but missing")
        assert isinstance(error, VerificationError)


def test_extra_member_before_the_manifest_is_named(good, tmp_path):
    """Members met before the manifest (an archive not packed manifest-first) are checked once it is read."""
    target = archive(tmp_path / "early.tar.gz", [file_member("aaa.bin", b"x"), *members(good["tar"])])
    error = _refused(target, "aaa.bin", f"is not listed in {MANIFEST}")
    assert isinstance(error, ArchiveError) and error.reason == "unexpected"


def test_oversized_member(good, tmp_path, monkeypatch):
    import tarfile

    with tarfile.open(good["tar"]) as archive:
        sizes = {m.name.split("/", 1)[-1]: m.size for m in archive.getmembers() if m.isfile()}
    largest = max(sizes, key=sizes.__getitem__)
    monkeypatch.setenv("MLSHIP_MAX_MEMBER_BYTES", str(sizes[largest] - 1))  # refuses the largest member alone
    error = _refused(good["tar"], largest, "per-member limit", "MLSHIP_MAX_MEMBER_BYTES")
    assert isinstance(error, ArchiveError) and error.reason == "too_large"


def test_oversized_total(good, tmp_path, monkeypatch):
    monkeypatch.setenv("MLSHIP_MAX_BUNDLE_BYTES", "200000")
    error = _refused(good["tar"], "MLSHIP_MAX_BUNDLE_BYTES")
    assert isinstance(error, ArchiveError) and error.reason == "too_large"


def test_the_good_archive_and_directory_load(good):
    """The suite's baseline: the unmutated bundle passes both loaders."""
    for target in (good["dir"], good["tar"]):
        result = CliRunner().invoke(app, ["verify", str(target)])
        assert result.exit_code == 0, result.output
        assert "signature valid" in result.stdout
        assert Predictor.load(target).model_version == "1"
