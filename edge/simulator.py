"""A fleet of simulated devices in temporary directories, for tests and the demo.

Each device is a real :class:`~edge.agent.device.Device` (the same code as on hardware).
Online devices are registered as IoT things in the fleet's thing group; :meth:`deliver_jobs`
stands in for the AWS IoT Jobs data plane, which the local AWS (moto) does not implement: it
reads each job targeting the group through the IoT control plane, replaces the presigned-URL
placeholder with a real presigned S3 URL (what IoT does for a device) and hands the job to
the agent, which downloads over HTTP, verifies and installs. Offline devices get packages
"on a USB stick": a local directory that the agent watches.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlship.edge.agent.__main__ import watch_once
from mlship.edge.agent.device import Device, InstallResult
from mlship.edge.agent.iot import PLACEHOLDER, apply_job
from mlship.edge.publish import thing_group


@dataclass
class SimDevice:
    name: str
    device: Device
    online: bool
    usb: Path

    def row(self) -> dict[str, Any]:
        status = self.device.status()
        last = status.get("last_update") or {}
        return {
            "device": self.name,
            "online": self.online,
            "version": (status.get("current") or {}).get("version"),
            "variant": (status.get("current") or {}).get("variant"),
            "state": status.get("state"),
            "last_outcome": last.get("outcome"),
            "reason": last.get("reason"),
        }


class Fleet:
    """``n`` devices under ``root``; the ones in ``offline`` never talk to AWS."""

    def __init__(
        self,
        root: str | Path,
        public_keys: list[str | Path | bytes],
        *,
        n: int = 3,
        offline: tuple[int, ...] = (2,),
        env: str = "dev",
        prefix: str = "sim",
        **config: Any,
    ):
        self.root = Path(root)
        self.group = thing_group(env)
        self.devices: list[SimDevice] = []
        self._done: set[tuple[str, str]] = set()
        self.reports: list[dict[str, Any]] = []
        for i in range(n):
            name = f"{prefix}-device-{i}"
            device = Device.init(self.root / name, public_keys, device_id=name, **config)
            usb = self.root / f"{name}-usb"
            usb.mkdir(parents=True, exist_ok=True)
            self.devices.append(SimDevice(name, device, i not in offline, usb))

    def register(self, create_group: bool = True) -> None:
        """Create the online devices' IoT things and add them to the thing group."""
        from mlship.aws.clients import client

        iot = client("iot")
        try:
            iot.describe_thing_group(thingGroupName=self.group)
        except iot.exceptions.ResourceNotFoundException:
            if not create_group:
                raise
            iot.create_thing_group(thingGroupName=self.group)
        for sim in self.devices:
            if sim.online:
                iot.create_thing(thingName=sim.name, attributePayload={"attributes": {"mlship": "edge-agent"}})
                iot.add_thing_to_thing_group(thingGroupName=self.group, thingName=sim.name)

    def _presign(self, url: str, expires: int = 3600) -> str:
        from mlship.aws.clients import client

        target = url[len(PLACEHOLDER) :].rstrip("}")
        bucket, _, key = target.split("://", 1)[1].split("/", 1)[1].partition("/")
        return client("s3").generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
        )

    def deliver_jobs(self) -> list[tuple[str, str, InstallResult]]:
        """Hand every job that targets the group to each online device once; return the outcomes."""
        from mlship.aws.clients import client

        iot = client("iot")
        group_arn = iot.describe_thing_group(thingGroupName=self.group)["thingGroupArn"]
        jobs = []
        for page in iot.get_paginator("list_jobs").paginate():
            for summary in page.get("jobs", []):
                if summary.get("status") in ("CANCELED", "DELETION_IN_PROGRESS"):
                    continue
                job = iot.describe_job(jobId=summary["jobId"])["job"]
                if group_arn in job.get("targets", []):
                    jobs.append((job.get("createdAt"), summary["jobId"]))
        outcomes = []
        for _, job_id in sorted(jobs):
            document = json.loads(iot.get_job_document(jobId=job_id)["document"])
            package = document.get("package") or {}
            if str(package.get("url", "")).startswith(PLACEHOLDER):
                package["url"] = self._presign(package["url"])
            for sim in self.devices:
                if not sim.online or (sim.name, job_id) in self._done:
                    continue
                sim.device.reporter = self._recorder(sim.name)
                result = apply_job(sim.device, {"job_id": job_id, "thing": sim.name, "document": document})
                self._done.add((sim.name, job_id))
                outcomes.append((sim.name, job_id, result))
        return outcomes

    def _recorder(self, thing: str):  # noqa: ANN202
        """Record what the agent would send to UpdateJobExecution (not implemented by moto)."""

        def report(job: dict[str, Any], result: InstallResult | None, state: str) -> None:
            self.reports.append(
                {
                    "thing": thing,
                    "job_id": job.get("job_id"),
                    "status": state,
                    "outcome": None if result is None else result.outcome,
                }
            )

        return report

    def sideload(self, package: str | Path) -> list[tuple[str, InstallResult]]:
        """Copy a package to every offline device's USB directory and let its agent pick it up."""
        outcomes = []
        for sim in self.devices:
            if sim.online:
                continue
            shutil.copy2(package, sim.usb / Path(package).name)
            outcomes += [(sim.name, r) for r in watch_once(sim.device, sim.usb)]
        return outcomes

    def table(self) -> list[dict[str, Any]]:
        return [sim.row() for sim in self.devices]
