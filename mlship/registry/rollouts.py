"""Rollout records: what happened when a version was taken to live traffic.

A rollout driver (``mlship rollout endpoint|lambda``) writes one immutable record per attempt
under the version (``models/NAME/VERSION/rollouts/STAMP-ID.json``, see
:meth:`mlship.registry.store.Registry.record_rollout`). A version's *status* is derived from its
latest record; nothing in ``version.json`` (immutable) changes. The alias history shows an
alias's moves and, between them, the attempts that failed to move it.

This module is pure (standard library only): the storage lives in :mod:`mlship.registry.store`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OUTCOMES = ("succeeded", "rolled_back", "failed", "timeout")
# a version's status is that of its latest rollout: "deployed" means the latest attempt succeeded
# (a later rollout of another version to the same target may have replaced it since)
STATUS_OF_OUTCOME = {"succeeded": "deployed", "rolled_back": "rolled_back", "failed": "failed",
                     "timeout": "timeout"}
ROLLOUTS_DIR = "rollouts"


@dataclass(frozen=True)
class RolloutRecord:
    """One rollout attempt of a version to one target (``endpoint:NAME``, ``lambda:FUNCTION:ALIAS``)."""

    name: str
    version: str
    outcome: str
    target: str
    recorded_at: str
    recorded_by: str
    id: str
    reason: str = ""
    alarm: str | None = None
    previous_version: str | None = None
    alias: str = "champion"  # the registry alias a success of this rollout moves
    details: dict[str, Any] | None = None

    @property
    def shadow(self) -> bool:
        """A shadow deployment (a copy of the traffic, no answer returned: nothing moves)."""
        return (self.details or {}).get("mode") == "shadow"

    @property
    def status(self) -> str:
        """The version status this outcome gives (see :data:`STATUS_OF_OUTCOME`); a successful
        shadow deployment is ``shadowed``, not ``deployed``: it answers nobody."""
        if self.shadow and self.succeeded:
            return "shadowed"
        return STATUS_OF_OUTCOME[self.outcome]

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def describe(self, alias_version: str | None = None) -> str:
        """One line: ``v3 rollout rolled_back on endpoint:x (alarm A): champion stayed 2; reason``."""
        alarm = f" (alarm {self.alarm})" if self.alarm else ""
        text = f"v{self.version} rollout {self.outcome} on {self.target}{alarm}"
        if not self.succeeded:
            text += f": {self.alias} stayed {alias_version or 'unset'}"
        return text + (f"; {self.reason}" if self.reason else "")


def stamp(recorded_at: str) -> str:
    """A key-safe, sortable form of an ISO timestamp (``2026-12-01T10:49:13.123Z`` -> ``20261201T104913123Z``)."""
    return "".join(ch for ch in recorded_at if ch.isalnum())


def latest(records: list[RolloutRecord]) -> RolloutRecord | None:
    """The most recent record (records in any order)."""
    return max(records, key=order_key, default=None)


def order_key(record: RolloutRecord) -> tuple[str, str]:
    return record.recorded_at, record.id


def status_by_version(records: list[RolloutRecord]) -> dict[str, str]:
    """Each version's status, from its latest record."""
    last: dict[str, RolloutRecord] = {}
    for record in sorted(records, key=order_key):
        last[record.version] = record
    return {version: record.status for version, record in last.items()}


@dataclass(frozen=True)
class HistoryEntry:
    """One line of an alias's history: a move (an audit entry) or a rollout that did not move it."""

    kind: str  # "move" | "rollout"
    at: str
    move: Any = None  # AliasRecord for a move
    rollout: RolloutRecord | None = None
    alias_version: str | None = None  # what the alias pointed at after this entry

    def to_dict(self) -> dict[str, Any]:
        if self.rollout is None:
            return {"kind": "move", **self.move.to_dict()}
        return {"kind": "rollout", **self.rollout.to_dict(), "alias_version": self.alias_version,
                "summary": self.rollout.describe(self.alias_version)}


def merge_history(moves: list[Any], rollouts: list[RolloutRecord]) -> list[HistoryEntry]:
    """Moves (AliasRecords) in generation order, with the failed rollout attempts of the alias
    placed between them by time.

    Each rollout shows the version the alias pointed at then (that of the last move before it),
    so "champion stayed 2" is read from the audit log, not from what the driver believed.
    """
    pending = sorted((r for r in rollouts if not r.succeeded), key=order_key)
    out: list[HistoryEntry] = []
    pointing: str | None = None
    for move in sorted(moves, key=lambda m: m.generation):
        while pending and pending[0].recorded_at < move.updated_at:
            record = pending.pop(0)
            out.append(HistoryEntry("rollout", record.recorded_at, rollout=record, alias_version=pointing))
        pointing = move.version
        out.append(HistoryEntry("move", move.updated_at, move=move, alias_version=pointing))
    out += [HistoryEntry("rollout", r.recorded_at, rollout=r, alias_version=pointing) for r in pending]
    return out
