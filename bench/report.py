"""Render bench/results/*.json into the README's benchmark table (between markers)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import RESULTS

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def render() -> str:
    lines = ["| area | benchmark | mlship | baseline | baseline is | ratio | unit |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        when = doc.get("machine", {}).get("when", "")[:10]
        for row in doc.get("table", []):
            lines.append(f"| {doc.get('area', path.stem)} | {row['benchmark']} | {row['mlship']} | "
                         f"{row.get('baseline', '')} | {row.get('baseline_name', '')} | {row.get('ratio', '')} | "
                         f"{row.get('unit', '')} |")
        lines[-1] += f" <!-- {when} -->" if when else ""
    return "\n".join(lines)


def update_readme() -> None:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        print("README has no benchmark markers; table not updated")
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{render()}\n{END}{tail}")
    print(f"README benchmark table updated from {RESULTS}")


if __name__ == "__main__":
    update_readme()
