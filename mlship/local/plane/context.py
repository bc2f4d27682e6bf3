"""What every control-plane service is given: where moto is, where the plane is, logs, time scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlaneContext:
    """Shared settings of the plane's services.

    ``time_scale`` multiplies every wait the plane simulates (baking intervals, termination
    waits, alarm periods, CodeDeploy intervals): 1.0 is AWS's pace, 0.01 rehearses a five-minute
    canary in three seconds.
    """

    upstream: str  # the moto server, e.g. http://localhost:5000
    url: str  # the plane itself (what child processes use for sagemaker-runtime / lambda)
    log_dir: Path
    time_scale: float = 1.0
    region: str = "us-east-1"
    metrics: Any = None  # the plane's MetricStore (mlship.local.plane.metrics), shared by its services

    def scaled(self, seconds: float) -> float:
        """``seconds`` of AWS time in local seconds."""
        return max(0.0, float(seconds) * self.time_scale)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on moto (never on the plane: no loops)."""
        import boto3

        return boto3.session.Session().client(
            service, endpoint_url=self.upstream, region_name=self.region,
            aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106 - moto's
