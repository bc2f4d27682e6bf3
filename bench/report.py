"""Render bench/results/*.json into the README's benchmark table (between markers)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import RESULTS

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def advantage(row: dict) -> str:
    """mlship's advantage over the baseline as one factor (>1: mlship is better), whatever the unit."""
    try:
        ours, theirs = float(row["mlship"]), float(row["baseline"])
    except (KeyError, TypeError, ValueError):
        return "-"
    if ours <= 0 or theirs <= 0:
        return "-"
    unit = str(row.get("unit", ""))
    higher_is_better = "higher" in unit or "/s" in unit
    factor = ours / theirs if higher_is_better else theirs / ours
    if 0.98 <= factor <= 1.02:
        return "about the same"
    return f"{factor:.2f}x " + ("better" if factor >= 1 else "worse")


def render() -> str:
    lines = ["| area | benchmark | mlship | baseline | baseline is | mlship vs baseline | unit |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        when = doc.get("machine", {}).get("when", "")[:10]
        area = f"{doc.get('area', path.stem)} ({when})" if when else doc.get("area", path.stem)
        for row in doc.get("table", []):
            unit = str(row.get("unit", "")).replace(" (lower is better)", "").replace(" (higher is better)", "")
            lines.append(f"| {area} | {row['benchmark']} | {row['mlship']} | {row.get('baseline', '')} | "
                         f"{row.get('baseline_name', '')} | {advantage(row)} | {unit} |")
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
