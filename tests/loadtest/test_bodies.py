"""Request bodies: files as given, and rows generated from a bundle that its own schema accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlship.loadtest.bodies import CSV, JSON, from_bundle, from_file
from mlship.loadtest.errors import BadInput


def test_generated_rows_are_golden_first_then_profile_draws_the_schema_accepts(churn_bundle: Path) -> None:
    from mlship.runtime.predictor import Predictor

    golden = json.loads((churn_bundle / "golden.json").read_text())["inputs"]
    bodies = from_bundle(str(churn_bundle), count=400, seed=3)
    rows = [json.loads(b)["instances"][0] for b in bodies.items]
    assert len(rows) == 400 and rows[: len(golden)] == golden and bodies.content_type == JSON
    result = Predictor.load(churn_bundle).predict(rows)  # raises ValidationError on any bad field
    assert len(result.labels) == 400
    drawn = rows[len(golden):]
    assert len({r["contract"] for r in drawn}) == 3 and len({r["tenure_months"] for r in drawn}) > 30
    assert all(isinstance(r["tenure_months"], int) for r in drawn)


def test_body_files(tmp_path: Path) -> None:
    lines = tmp_path / "many.jsonl"
    lines.write_text('{"instances": [{"a": 1}]}\n\n{"instances": [{"a": 2}]}\n')
    many = from_file(lines)
    assert many.items == (b'{"instances": [{"a": 1}]}', b'{"instances": [{"a": 2}]}') and many[3] == many.items[1]
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b\n1,2\n")
    assert from_file(csv).content_type == CSV
    for name, text, message in (("empty.jsonl", "\n", "holds no request body"),
                                ("bad.jsonl", '{"a": 1}\n{nope\n', "line 2 is not valid JSON"),
                                ("bad.json", "[1,", "not valid JSON")):
        (tmp_path / name).write_text(text)
        with pytest.raises(BadInput, match=message):
            from_file(tmp_path / name)
    with pytest.raises(BadInput, match="not found"):
        from_file(tmp_path / "missing.json")
    with pytest.raises(BadInput, match="cannot read bodies"):
        from_bundle(str(tmp_path / "no-bundle"))
