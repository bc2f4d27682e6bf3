"""The load test's user-facing errors."""

from __future__ import annotations

from mlship.errors import MlshipError


class LoadTestError(MlshipError):
    """A load test cannot run as asked (bad target, bad body, bad limits, unreachable target)."""

    kind = "loadtest"


class BadInput(LoadTestError):
    """Input refused before any request is sent (the CLI exits 2)."""

    kind = "loadtest_input"
