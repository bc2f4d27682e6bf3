"""Running ``mlship local`` as a user does: a real CLI process with its own per-user state home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlship.local.environment import is_alive


@dataclass
class LocalCli:
    """``mlship local ...`` in a subprocess with ``MLSHIP_LOCAL_HOME=home`` and no AWS overrides."""

    home: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_ENDPOINT_URL")
               and k not in ("MLSHIP_STATE_DIR", "MLSHIP_REGISTRY_BUCKET", "MLSHIP_CDK_JSON")}
        env["MLSHIP_LOCAL_HOME"] = str(self.home)
        return env

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """By default in the home's parent: outside any project, so the built-in configuration applies."""
        self.home.mkdir(parents=True, exist_ok=True)
        return subprocess.run([sys.executable, "-m", "mlship", "local", *args], capture_output=True, text=True,
                              env=self.env, cwd=cwd or self.home.parent, timeout=timeout)

    def ok(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, cwd=cwd)
        assert done.returncode == 0, f"mlship local {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def state(self) -> dict[str, Any]:
        return json.loads((self.home / "local.json").read_text())

    def exports(self, cwd: Path | None = None) -> dict[str, str]:
        lines = self.ok("env", cwd=cwd).stdout.splitlines()
        return dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))


def wait_gone(pid: int, timeout: float = 15.0) -> bool:
    """True once ``pid`` has exited (bounded wait: an orphan is reaped by PID 1, which may be slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.05)
    return not is_alive(pid)


def plane_available() -> bool:
    """Whether ``python -m mlship.local.plane`` can build its services in this checkout."""
    probe = subprocess.run([sys.executable, "-c", "from mlship.local.plane.server import SERVICES, build_services;"
                            "import importlib; [importlib.import_module(s.split(':')[0]) for s in SERVICES]"],
                           capture_output=True, text=True, timeout=120)
    return probe.returncode == 0


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes in process group ``pgid`` (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members
