"""Strict reading of a bundle's JSON documents and the shape checks of ``manifest.json``.

Every field mlship reads is type-checked before use, so a malformed document is a named
:class:`MalformedDocumentError`, never a ``TypeError``. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlship.errors import BundleError, VerificationError
from mlship.runtime.hashing import is_sha256_hex, json_type

FORMAT = "mlship-bundle/1"

# model evaluations per explained row a sampling explainer may spend (more would cost seconds per row)
MAX_EXPLAIN_BUDGET = 65_536


MANIFEST = "manifest.json"


SIGNATURE = "signature.json"


MODEL_FILE = "model.onnx"


GOLDEN_FILE = "golden.json"


PROFILE_FILE = "profile.json"
EXPLAIN_DIR = "explain"  # the explainer files (mlship.evaluation.explain_export)


UNHASHED = {MANIFEST, SIGNATURE}


TASKS = ("classification", "regression")


MAX_DOCUMENT_BYTES = 16 * 1024**2  # manifest.json / signature.json are read into memory


class MalformedDocumentError(VerificationError):
    """``manifest.json`` or ``signature.json`` is not the documented shape; each problem names the field."""

    def __init__(self, document: str, problems: list[str]):
        self.document = document
        super().__init__(problems)


def safe_relpath(name: str) -> str | None:
    """The normalised relative path of an archive/manifest entry, or None if it could escape."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let two readers of one signed file see different values.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_document(data: bytes, label: str) -> dict[str, Any]:
    """Parse a bundle JSON document strictly: UTF-8, standard JSON, unique keys, an object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedDocumentError(label, [f"{label} is not UTF-8 text (bad byte at offset {exc.start})"]) from None
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise MalformedDocumentError(label, [f"{label} is not valid JSON (nested too deeply)"]) from None
    except ValueError as exc:  # JSONDecodeError, duplicate keys, NaN, over-long integers
        raise MalformedDocumentError(label, [f"{label} is not valid JSON ({exc})"]) from None
    if not isinstance(value, dict):
        raise MalformedDocumentError(label, [f"{label} is not a JSON object (got {json_type(value, article=True)})"])
    return value


def read_document(path: Path, label: str) -> dict[str, Any]:
    """Read and parse ``manifest.json`` / ``signature.json`` (at most 16 MiB)."""
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise MalformedDocumentError(label, [f"{label} is {size} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit"])
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {label} in {path.parent}: {exc.strerror or exc}") from None
    return parse_document(data, label)


_TOP_FIELDS: dict[str, tuple[type, bool]] = {
    "format": (str, True), "name": (str, True), "version": (str, True), "task": (str, True),
    "model": (dict, True), "input_schema": (dict, True), "output_schema": (dict, True),
    "files": (dict, False), "sizes": (dict, False), "description": (str, False), "created_at": (str, False),
    **{k: (dict, False) for k in ("metrics", "parity", "golden", "profile", "libraries", "lineage",
                                  "cross_validation", "edge", "explain")},
}


_ARTICLE = {str: "a string", dict: "an object", list: "an array", int: "an integer"}


def _has_type(value: Any, want: type) -> bool:
    return isinstance(value, want) and not (want is int and isinstance(value, bool))


class _Shape:
    """Collects named type problems of one JSON document."""

    def __init__(self, label: str):
        self.label, self.problems = label, []

    def need(self, doc: Mapping[str, Any], key: str, want: type, path: str, *, required: bool = True,
             nullable: bool = False) -> Any:
        """``doc[key]`` if it has type ``want``; else record the problem and return None."""
        if key not in doc:
            if required:
                self.problems.append(f"{self.label} field '{path}' is missing")
            return None
        value = doc[key]
        if (value is None and nullable) or _has_type(value, want):
            return value
        got = json_type(value, article=True)
        self.problems.append(f"{self.label} field '{path}' must be {_ARTICLE[want]}, got {got}")
        return None

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{self.label} field '{path}' {problem}")


def check_manifest(doc: Mapping[str, Any], label: str = MANIFEST) -> list[str]:
    """Named problems with the shape of a manifest (empty when every field mlship reads is well typed)."""
    shape = _Shape(label)
    values = {k: shape.need(doc, k, want, k, required=req) for k, (want, req) in _TOP_FIELDS.items()}
    if values["format"] is not None and values["format"] != FORMAT:
        shape.add("format", f"is not {FORMAT!r}")
    if values["task"] is not None and values["task"] not in TASKS:
        shape.add("task", f"must be one of {', '.join(TASKS)}, got {values['task']!r}")
    _check_sections(shape, values)
    _check_files(shape, values["files"], values["sizes"])
    return shape.problems


def _check_sections(shape: _Shape, values: Mapping[str, Any]) -> None:
    if values["model"] is not None:
        model_file = shape.need(values["model"], "file", str, "model.file")
        if model_file is not None and safe_relpath(model_file) != model_file:
            shape.add("model.file", f"{model_file!r} is not a relative path inside the bundle")
    if values["input_schema"] is not None:
        schema = values["input_schema"]
        for i, item in enumerate(shape.need(schema, "fields", list, "input_schema.fields") or []):
            if not isinstance(item, dict):
                shape.add(f"input_schema.fields[{i}]", f"must be an object, got {json_type(item, article=True)}")
                continue
            shape.need(item, "name", str, f"input_schema.fields[{i}].name")
            shape.need(item, "dtype", str, f"input_schema.fields[{i}].dtype")
        shape.need(schema, "layout", str, "input_schema.layout", required=False)
        shape.need(schema, "tensor_input", str, "input_schema.tensor_input", required=False, nullable=True)
    if values["output_schema"] is not None:
        outputs = values["output_schema"]
        for name, value in (shape.need(outputs, "onnx_outputs", dict, "output_schema.onnx_outputs") or {}).items():
            if not isinstance(value, str):
                got = json_type(value, article=True)
                shape.add(f"output_schema.onnx_outputs.{name}", f"must be a string, got {got}")
        shape.need(outputs, "classes", list, "output_schema.classes", required=False, nullable=True)
    for section in ("golden", "profile"):
        if values[section] is not None:
            shape.need(values[section], "file", str, f"{section}.file", required=False)
    _check_explain(shape, values["explain"])


EXPLAIN_FILES = {"tree_shap": ("trees",), "linear": ("linear",), "sampling": ("background",)}


def _check_explain(shape: _Shape, explain: Mapping[str, Any] | None) -> None:
    """The explainer entry export writes (what :func:`mlship.runtime.explain.load_explainer` reads)."""
    if explain is not None:
        _check_explain_summary(shape, shape.need(explain, "summary", dict, "explain.summary", required=False))
    method = None if explain is None else shape.need(explain, "method", str, "explain.method")
    if method not in EXPLAIN_FILES:
        return  # "none" (an earlier release) or no entry: load_explainer asks for a re-export
    for key in (*EXPLAIN_FILES[method], "output_space"):
        shape.need(explain, key, str, f"explain.{key}")
    if method == "sampling":
        budget = shape.need(explain, "budget", int, "explain.budget", required=False)
        if budget is not None and not 1 <= budget <= MAX_EXPLAIN_BUDGET:
            shape.add("explain.budget", f"must be 1 to {MAX_EXPLAIN_BUDGET} model evaluations per row, got {budget}")
        return
    shape.need(explain, "features", str, "explain.features", required=False)
    for i, name in enumerate(shape.need(explain, "columns", list, "explain.columns") or []):
        if name is not None and not isinstance(name, str):
            shape.add(f"explain.columns[{i}]", f"must be a field name or null, got {json_type(name, article=True)}")


def _check_explain_summary(shape: _Shape, summary: Mapping[str, Any] | None) -> None:
    """The global attribution summary export stores (the baseline of attribution drift): ``rows`` an
    integer, ``mean_abs`` a mapping of field to a list of numbers (one per target)."""
    if summary is None:
        return
    shape.need(summary, "rows", int, "explain.summary.rows")
    for name, values in (shape.need(summary, "mean_abs", dict, "explain.summary.mean_abs") or {}).items():
        path = f"explain.summary.mean_abs.{name}"
        if not isinstance(values, list):
            shape.add(path, f"must be an array of numbers, got {json_type(values, article=True)}")
            continue
        for i, value in enumerate(values):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                shape.add(f"{path}[{i}]", f"must be a number, got {json_type(value, article=True)}")


def _check_files(shape: _Shape, files: Mapping[str, Any] | None, sizes: Mapping[str, Any] | None) -> None:
    for rel, digest in sorted((files or {}).items()):
        if safe_relpath(rel) != rel or rel in UNHASHED:
            shape.add(f"files[{rel}]", "is not a relative path of a bundle file")
        if not is_sha256_hex(digest):
            shape.add(f"files[{rel}]", f"must be a sha256 hex digest, got {json_type(digest, article=True)}")
    for rel, size in sorted((sizes or {}).items()):
        if not _has_type(size, int) or size < 0:
            shape.add(f"sizes[{rel}]", f"must be a non-negative integer, got {json_type(size, article=True)}")
        elif files is not None and rel not in files:
            shape.add(f"sizes[{rel}]", "names a file that 'files' does not list")
