"""One version ordering for mlship: PEP 440, through ``packaging.version``.

Every place that compares model or package versions (the edge agent's downgrade check, export's
refusal of unparseable versions) goes through this module, so that ``1`` < ``1.2.3``, and
``1.0``, ``1.0.0`` and ``01.0.0`` are the same version everywhere. Runtime tier: standard
library and ``packaging`` only (it runs on devices).
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

from mlship.errors import MlshipError

__all__ = ["InvalidVersionError", "Version", "is_newer", "parse_version", "same_version"]


class InvalidVersionError(MlshipError):
    """A version string is not a PEP 440 version; ``text`` is the string that was refused."""

    kind = "invalid_version"

    def __init__(self, text: object):
        self.text = text
        super().__init__(
            f"version {text!r} is not a valid PEP 440 version (expected e.g. '1.2.3', '2026.11.23', '1.0rc1')"
        )


def parse_version(text: object) -> Version:
    """``text`` as a PEP 440 :class:`Version`; raises :class:`InvalidVersionError` naming it."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidVersionError(text)
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidVersionError(text) from None


def is_newer(candidate: object, installed: object) -> bool:
    """True when ``candidate`` is strictly newer than ``installed`` (equal versions are not newer)."""
    return parse_version(candidate) > parse_version(installed)


def same_version(a: object, b: object) -> bool:
    """True when ``a`` and ``b`` are the same PEP 440 version (``1.0`` == ``01.0.0``)."""
    return parse_version(a) == parse_version(b)
