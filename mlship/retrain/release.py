"""The release step: the challenger that passed the gate goes into the release loop.

It runs the command a user runs, ``mlship rollout endpoint|lambda``, in a child process (the
same checks, alarms, rollback and registry settlement; its progress goes to this process's
stderr): ``canary`` rolls ``NAME/VERSION`` out (``--strategy canary`` on an endpoint unless
``retrain.release_args`` says otherwise) and a success moves ``champion``; ``shadow`` puts it on
the endpoint's shadow variant, where ``mlship shadow report`` and the gate's ``shadow:``
thresholds decide its promotion later; ``none`` leaves it as ``challenger``. A rollout that is
rolled back, times out or is refused fails the step with the rollout's own reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from mlship.errors import MlshipError


class ReleaseFailed(MlshipError):
    """The rollout did not succeed (rolled back, refused or timed out): champion unchanged."""

    kind = "retrain_release"

    def __init__(self, message: str, outcome: dict[str, Any] | None = None):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Released:
    detail: str
    outcome: dict[str, Any] | None = field(default=None)


def release_target(inputs: Any) -> str:
    """``endpoint`` or ``lambda``: configured, else the endpoint when the project has one."""
    if inputs.config.release_target:
        return str(inputs.config.release_target)
    project = inputs.project
    return "endpoint" if project is not None and project.endpoint.enabled else "lambda"


def rollout_command(inputs: Any, version: str) -> list[str]:
    """The ``mlship rollout`` command line of this release."""
    target, mode = release_target(inputs), inputs.config.release
    if mode == "shadow" and target != "endpoint":
        raise ReleaseFailed("retrain.release shadow needs an endpoint (a Lambda's shadow model is the "
                            "SHADOW_MODEL_URI setting): set release_target endpoint or release canary")
    ref = f"{inputs.model}/{version}"
    args = [sys.executable, "-m", "mlship", "rollout", target, "--shadow" if mode == "shadow" else "--model", ref,
            "--json", "--bucket", inputs.registry.bucket]
    if inputs.env:
        args += ["--env", inputs.env]
    extra = list(inputs.config.release_args)
    if mode == "canary" and target == "endpoint" and "--strategy" not in extra:
        args += ["--strategy", "canary"]
    return args + extra


def release_challenger(inputs: Any, version: str, timeout_seconds: float = 6 * 3600) -> Released:
    """Roll ``version`` out as configured (see the module docstring)."""
    if inputs.config.release == "none":
        return Released(f"release none: v{version} stays challenger until `mlship rollout --model "
                        f"{inputs.model}@challenger`")
    command = rollout_command(inputs, version)
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        raise ReleaseFailed(f"the rollout of v{version} did not end within {timeout_seconds:.0f} s") from None
    outcome = _outcome(done.stdout)
    verdict = outcome.get("outcome") if outcome else None
    where = f"{command[4]} {(outcome or {}).get('endpoint') or ''}".strip()
    if done.returncode != 0 or verdict not in (None, "succeeded"):
        reason = (outcome or {}).get("reason") or f"`{' '.join(command[2:])}` exited {done.returncode}"
        raise ReleaseFailed(f"the {inputs.config.release} of v{version} on {where} {verdict or 'failed'}: {reason}; "
                            "champion unchanged", outcome)
    if inputs.config.release == "shadow":
        return Released(f"v{version} is the shadow of {where}: promote it after `mlship shadow report` "
                        "passes the gate", outcome)
    return Released(f"canary of v{version} on {where} succeeded: champion -> v{version}", outcome)


def _outcome(stdout: str) -> dict[str, Any] | None:
    """The rollout's ``--json`` document (None when it printed none, e.g. refused before starting)."""
    text = (stdout or "").strip()
    if not text:
        return None
    try:
        doc = json.loads(text[text.index("{"):])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
