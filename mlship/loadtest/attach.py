"""Attach a load-test report to a registered version: ``models/NAME/VERSION/loadtests/<id>.json``
in the registry bucket (beside the version's rollout records). The gate reads the newest one."""

from __future__ import annotations

from typing import Any

from mlship.evaluation.gate import LOADTEST_DIR
from mlship.loadtest.errors import LoadTestError
from mlship.registry.attachments import attach_report
from mlship.registry.store import RegistryError


def attach(registry: Any, name: str, version: str, report: dict[str, Any], html: bytes | None = None) -> str:
    """Store the report (and its page) under the version; returns the JSON object's ``s3://`` URI.

    The version must exist. Keys sort by creation time, so the newest report is the last key."""
    try:
        return attach_report(registry, name, version, LOADTEST_DIR, report, html)
    except RegistryError as exc:
        if type(exc) is not RegistryError:  # NotFoundError and the like: the caller names them
            raise
        raise LoadTestError(str(exc)) from None


__all__ = ["LOADTEST_DIR", "attach"]
