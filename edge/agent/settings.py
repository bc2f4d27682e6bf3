"""The device agent's environment (stdlib only: pydantic is not installed on devices).

Command-line options win; these variables supply their defaults (handy in a systemd unit's
``Environment=`` lines), and the extraction caps bound every package the agent unpacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlship.runtime.archive import (
    DEFAULT_MAX_BUNDLE_BYTES,
    DEFAULT_MAX_MEMBER_BYTES,
    MAX_BUNDLE_BYTES_ENV,
    MAX_MEMBER_BYTES_ENV,
    ExtractLimits,
)
from mlship.runtime.settings import EnvSettings, setting


@dataclass(frozen=True, kw_only=True)
class DeviceSettings(EnvSettings):
    """Defaults for ``python -m mlship.edge.agent`` and the caps on unpacking a package."""

    device_dir: Path | None = setting("MLSHIP_DEVICE_DIR", None, parse=Path,
                                      doc="device directory when --device is not given")
    host: str = setting("MLSHIP_AGENT_HOST", "127.0.0.1", doc="address `run --port` listens on (like --host)")
    port: int | None = setting("MLSHIP_AGENT_PORT", None, minimum=1, maximum=65535,
                               doc="`run` serves /predict on this port when --port is not given")
    poll_seconds: float = setting("MLSHIP_AGENT_POLL_SECONDS", 30.0, minimum=0.1,
                                  doc="seconds between update polls (like --poll)")
    max_bundle_bytes: int = setting(MAX_BUNDLE_BYTES_ENV, DEFAULT_MAX_BUNDLE_BYTES, minimum=1,
                                    doc="largest total size a package may extract to")
    max_member_bytes: int | None = setting(MAX_MEMBER_BYTES_ENV, None, minimum=1,
                                           doc="largest single file in a package (default: 2 GiB - 1, "
                                               "or the total cap if smaller)")

    def extract_limits(self) -> ExtractLimits:
        """The caps ``extract_tarball`` applies, with ``ExtractLimits.from_env``'s defaults."""
        member = self.max_member_bytes or min(self.max_bundle_bytes, DEFAULT_MAX_MEMBER_BYTES)
        return ExtractLimits(total_bytes=self.max_bundle_bytes, member_bytes=member)
