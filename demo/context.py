"""What demo steps share: the work directory, the local AWS, the trained models and bundles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass
class DemoContext:
    """State passed from one demo step to the next."""

    workdir: Path
    endpoint_url: str
    bucket: str
    console: Console = field(default_factory=Console)
    data: dict[str, Any] = field(default_factory=dict)  # e.g. "holdout_path", "bundle_dir", "key_dir"

    def step(self, title: str) -> None:
        self.console.rule(f"[bold cyan]{title}")
