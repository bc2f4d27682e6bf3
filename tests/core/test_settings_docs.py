"""README's configuration section lists every setting of every process kind, with its default.

``python tests/core/test_settings_docs.py`` prints the per-process tables to paste into the
section (the core never imports the targets, so the generator lives with the test).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

# (heading, module, class names): one process kind each; the heading is the README subsection title.
PROCESS_KINDS = [
    ("Predict Lambda", "functions.predict.settings", ("PredictSettings", "InitSettings")),
    ("Monitor Lambda", "mlship.monitoring.settings", ("MonitorSettings",)),
    ("`mlship serve`", "mlship.serving.settings", ("ServeSettings",)),
    ("Batch job", "mlship.batch.settings", ("BatchSettings",)),
    ("Device agent", "mlship.edge.agent.settings", ("DeviceSettings",)),
]
REQUIRED_CLASSES = {"PredictSettings", "MonitorSettings", "ServeSettings", "BatchSettings", "DeviceSettings"}


def default_cell(row: Any) -> str:
    """How the README writes a default: required, unset, or the value as it would be set."""
    if row.required:
        return "required"
    return f"`{row.default}`" if row.default != "" else "unset"


def _classes(module_name: str, names: tuple[str, ...]) -> list[Any]:
    """The settings classes of one process kind (optional ones may be absent)."""
    module = importlib.import_module(module_name)
    found = [getattr(module, name) for name in names if hasattr(module, name)]
    missing = [name for name in names if name in REQUIRED_CLASSES and not hasattr(module, name)]
    assert not missing, f"{module_name} has no {', '.join(missing)}"
    return found


def render_table(classes: list[Any]) -> str:
    """The Markdown table of one process kind's settings."""
    lines = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for cls in classes:
        for row in cls.describe():
            meaning = row.description.replace("|", "\\|")
            lines.append(f"| `{row.env}` | {row.type} | {default_cell(row)} | {meaning} |")
    return "\n".join(lines)


def configuration_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Configuration\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def subsection(section: str, heading: str) -> str:
    """The text under ``### <heading>`` up to the next heading."""
    match = re.search(rf"^### {re.escape(heading)}[^\n]*\n(.*?)(?=^#{{2,3}} |\Z)", section, re.M | re.S)
    assert match, f"README.md's configuration section has no '### {heading}' subsection"
    return match.group(1)


def table_rows(text: str) -> dict[str, list[str]]:
    """Table rows keyed by their first cell's variable name."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if cells and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells
    return rows


@pytest.mark.parametrize(("heading", "module_name", "names"), PROCESS_KINDS, ids=[k[0] for k in PROCESS_KINDS])
def test_readme_lists_every_setting_with_its_default(heading: str, module_name: str, names: tuple[str, ...]) -> None:
    try:
        classes = _classes(module_name, names)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        pytest.skip(f"{module_name} does not exist yet: no settings to check for {heading}")
    rows = table_rows(subsection(configuration_section(), heading))
    problems = []
    for cls in classes:
        for row in cls.describe():
            if row.env not in rows:
                problems.append(f"{row.env} ({cls.__name__}) is missing")
            elif len(rows[row.env]) < 3 or rows[row.env][2] != default_cell(row):
                problems.append(f"{row.env}: README's default {rows[row.env][2:3]} is not {default_cell(row)!r}")
    assert not problems, (f"README.md '### {heading}' is out of date: " + "; ".join(problems)
                          + " (regenerate with `python tests/core/test_settings_docs.py`)")


def test_table_check_catches_a_missing_variable_and_a_wrong_default() -> None:
    text = "| `A` | string | `x` | a |\n| `B` | integer | `2` | b |\n"
    rows = table_rows(text)
    assert rows["A"][2] == "`x`" and "C" not in rows
    assert table_rows("| variable | type | default | meaning |") == {}


def main() -> int:
    sys.path.insert(0, str(REPO))
    for heading, module_name, names in PROCESS_KINDS:
        print(f"### {heading}\n\n{render_table(_classes(module_name, names))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
