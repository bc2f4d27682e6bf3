"""What demo steps share: the work directory, the local AWS, the trained models and bundles."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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

    @contextmanager
    def control_plane(self, name: str, time_scale: float = 0.01) -> Iterator[Any]:
        """A local control plane in front of the local AWS for the block, with this process's (and
        its commands') SageMaker calls pointed at it, as ``mlship local env`` does."""
        from mlship.aws import clients as aws
        from mlship.local.plane.server import ControlPlane

        variables = ("AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME")
        with ControlPlane(self.endpoint_url, log_dir=self.workdir / name, time_scale=time_scale) as plane:
            os.environ.update(dict.fromkeys(variables, plane.url))
            aws.clear_cache()
            try:
                yield plane
            finally:
                for key in variables:
                    os.environ.pop(key, None)
                aws.clear_cache()
