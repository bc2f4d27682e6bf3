"""Generators of bad requests for the fuzz suites, and the checks every answer must pass.

One class of bad input found once gets a generator here: huge integers, deep nesting, numbers
beyond float32, NaN tokens, NUL bytes, invalid UTF-8, bad base64, wrong CSV field counts, quoted
newlines, malformed event shapes. The suites (``realtime/test_fuzz.py``, the edge agent's) draw
from these and assert the same promise: a 4xx naming the problem, or a 5xx only for a model-side
failure (``model_error``), and never a stack trace or a Python exception's text in a body.
"""

from __future__ import annotations

import base64
import csv
import functools
import io
import json
import os
from typing import Any

from hypothesis import strategies as st

# Python's own wording when code trips over unexpected input: none of it may reach a client.
LEAK_MARKERS = ("Traceback", 'File "', "object has no attribute", "NoneType", "unhashable type",
                "is not subscriptable", "object is not iterable", "RecursionError", "TypeError",
                "AttributeError", "KeyError", "IndexError", "OverflowError", "ZeroDivisionError")

NUMBER_TOKENS = ("1" + "0" * 400, "-1" + "0" * 400, "1e39", "-1e39", "1e308", "-1e308", "3.5e38", "1e-50",
                 "NaN", "Infinity", "-Infinity", "1" * 5000, "0x10", "01", "1.", ".5", "1e", "--1", "+1",
                 "true", "null", '"12"', "[]", "{}", '"\\u0000"')

CONTENT_TYPES = (None, "application/json", "text/csv", "application/json; charset=utf-8", "text/csv; header=present",
                 "text/plain", "application/octet-stream", "multipart/form-data; boundary=x", "application/xml",
                 "", ";", "application/json;;", "APPLICATION/JSON", "application/vnd.api+json")

ACCEPTS = (None, "*/*", "application/json", "text/csv", "text/csv;q=0.9, application/json;q=0.1", "text/html",
           "application/xml;q=1", "*/*;q=abc", ";;,,", "text/*", "image/png, text/csv;q=0")

_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


def fuzz_settings_profile() -> dict[str, Any]:
    """Derandomised in CI (a landing must not depend on a lucky draw); random everywhere else."""
    return {"deadline": None, "database": None, "derandomize": os.environ.get("CI") == "true"}


@functools.cache  # building a recursive strategy is costly: one per size, shared by every draw
def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Arbitrary JSON documents (finite floats; the NaN tokens come as raw text below)."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(
        max_size=20)
    return st.recursive(scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=10), c,
                                                                                      max_size=5),
                        max_leaves=max_leaves)


@st.composite
def mutated_records(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    """A valid record with fields dropped, added, or given arbitrary values."""
    rec = dict(record)
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=3, unique=True)):
        action = draw(st.sampled_from(("drop", "value", "value")))
        if action == "drop":
            rec.pop(name)
        else:
            rec[name] = draw(json_values(6))
    if draw(st.booleans()):
        rec[draw(st.text(max_size=8))] = draw(json_values(3))
    return rec


@st.composite
def raw_token_records(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    """JSON text of a valid record with one field's value replaced by a raw (possibly invalid) token."""
    name = draw(st.sampled_from(sorted(record)))
    token = draw(st.sampled_from(NUMBER_TOKENS))
    text = json.dumps({**record, name: "__TOKEN__"}).replace('"__TOKEN__"', token)
    return text.encode()


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from((200, 999, 1000, 3000, 20_000)))
    opener, closer = draw(st.sampled_from((("[", "]"), ('{"a":', "}"))))
    inner = opener * depth + "1" + closer * depth
    return draw(st.sampled_from((inner, f'{{"instances": {inner}}}', f'{{"tenure_months": {inner}}}'))).encode()


@st.composite
def csv_bodies(draw: st.DrawFn, record: dict[str, Any]) -> bytes:
    """CSV with a header, rows of the wrong field count, quoted newlines, NUL bytes, huge numbers."""
    names = sorted(record)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if draw(st.booleans()):
        writer.writerow(names)
    for _ in range(draw(st.integers(1, 4))):
        row = ["" if record[n] is None else str(record[n]) for n in names]
        change = draw(st.sampled_from(("extra", "missing", "value", "newline", "none")))
        if change == "extra":
            row.append(draw(st.text(max_size=5)))
        elif change == "missing" and row:
            row.pop()
        elif change == "value":
            row[draw(st.integers(0, len(row) - 1))] = draw(st.sampled_from(NUMBER_TOKENS) | st.text(max_size=10))
        elif change == "newline":
            row[0] = "a\nb"
        writer.writerow(row)
    text = out.getvalue()
    if draw(st.booleans()):
        text = text.replace(",", "\x00", 1)
    return text.encode("utf-8", "surrogatepass")


def request_bodies(record: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Every class of bad (and some good) body the suites send."""
    return st.one_of(
        st.binary(max_size=200),
        st.just(b"\xff\xfe\x00bad utf-8"),
        json_values().map(lambda doc: json.dumps(doc).encode()),
        mutated_records(record).map(lambda rec: json.dumps(rec).encode()),
        mutated_records(record).map(lambda rec: json.dumps({"instances": [rec, rec]}).encode()),
        raw_token_records(record),
        deep_nesting(),
        csv_bodies(record),
        st.text(max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


@st.composite
def http_parts(draw: st.DrawFn, record: dict[str, Any]) -> dict[str, Any]:
    """Method, path, headers and body of one HTTP request."""
    headers = {}
    content_type = draw(st.sampled_from(CONTENT_TYPES) | _header_text)
    if content_type is not None:
        headers["Content-Type"] = content_type
    accept = draw(st.sampled_from(ACCEPTS) | _header_text)
    if accept is not None:
        headers["Accept"] = accept
    method = draw(st.sampled_from(("POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH")))
    return {"method": method, "path": draw(st.sampled_from(("/invocations", "/invocations", "/ping", "/predict"))),
            "headers": headers, "body": draw(request_bodies(record))}


def b64(body: bytes) -> str:
    return base64.b64encode(body).decode()


def check_body(text: str | bytes, content_type: str | None) -> Any:
    """A response body is free of leaked exception text; JSON ones are strict JSON (no NaN)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    leaked = [marker for marker in LEAK_MARKERS if marker in text]
    assert not leaked, f"exception text {leaked} in a body: {text[:300]}"
    if content_type and content_type.startswith("text/csv"):
        return list(csv.reader(io.StringIO(text)))
    return json.loads(text, parse_constant=_no_constant)


def check_status(status: int, body: Any) -> None:
    """4xx for the client's mistakes; a 5xx only when the model itself failed."""
    if status >= 500:
        kind = body.get("kind") if isinstance(body, dict) else None
        assert kind == "model_error", f"{status} {body}"


def _no_constant(token: str) -> Any:
    raise AssertionError(f"{token} in a JSON body")
