"""How ``mlship rollout`` shows progress and verdicts (shared by its commands)."""

from __future__ import annotations

from typing import Any

import typer

from mlship.cli.common import fail


def one_line(text: str) -> str:
    """``text`` on one line (AWS messages carry newlines)."""
    return " ".join(str(text).split())


def phase_line(phase: Any, *, percent: bool = False) -> Any:
    """One line of the progress display: time, status, each variant (or version) with its traffic, alarms.

    ``percent`` shows traffic shares as percentages (a Lambda alias) instead of SageMaker's variant
    phases and weights.
    """
    from datetime import datetime

    from rich.text import Text

    now = datetime.now().astimezone().strftime("%H:%M:%S")
    line = Text.assemble((f"{now} +{phase.at:.0f}s ", "dim"), (f"{phase.endpoint_status:<14}", "bold"))
    for index, (name, variant) in enumerate(phase.variants.items()):
        if percent:
            line.append(f"{' |' if index else ''} {name}: {100 * float(variant.get('weight') or 0):.0f}%")
            continue
        status = ",".join(s for s in variant.get("status") or [] if s) or "-"
        line.append(f"{' |' if index else ''} {name}: {status} weight={variant.get('weight')}")
    if phase.alarms:
        line.append("  alarms:")
        for name, state in phase.alarms.items():
            line.append(f" {name}=")
            line.append(state, style="red bold" if state == "ALARM" else "green" if state == "OK" else "yellow")
    return line


def verdict_message(outcome: Any) -> str:
    """The one-line verdict: what was rolled out, how it ended, why, and which alarm fired."""
    version = f"v{outcome.model_version} " if outcome.model_version else ""
    text = f"rollout {version}of {outcome.endpoint} to {outcome.endpoint_config} {outcome.outcome}"
    if outcome.reason:
        text += f": {one_line(outcome.reason)}"
    if outcome.alarm:
        text += f" (alarm {outcome.alarm} fired)"
    return text


def report(outcome: Any, as_json: bool) -> None:
    """Print the outcome document (``--json``, stdout) and the verdict; exit 1 unless it succeeded."""
    if as_json:
        typer.echo(outcome.to_json())
    if not outcome.ok:
        fail(verdict_message(outcome))
    if not as_json:
        typer.echo(verdict_message(outcome))
