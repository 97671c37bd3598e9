"""Presence: available, busy, away or do-not-disturb, with a note; kept per person (all their devices)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bleeper.protocol.commands import STATUS_STATES as STATES

MAX_NOTE = 200


@dataclass(slots=True)
class Status:
    state: str = "available"
    note: str = ""
    told: set[str] = field(default_factory=set)  # senders already answered with the note (dnd says it once)


class Presence:
    """Who has said what about their availability. Everyone is ``available`` until they say otherwise; the
    status goes when the person's last connection does."""

    def __init__(self) -> None:
        self._by_key: dict[str, Status] = {}

    def set(self, key: str, state: str, note: str = "") -> Status:
        if state not in STATES:
            raise ValueError(f"unknown status {state!r}: use {', '.join(STATES)}")
        status = self._by_key[key] = Status(state, note[:MAX_NOTE])
        if state == "available" and not note:
            del self._by_key[key]  # the default needs no entry
        return status

    def get(self, key: str) -> Status | None:
        return self._by_key.get(key)

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)

    def do_not_disturb(self, recipient: str, sender: str) -> Status | None:
        """The recipient's status when *sender* should be told they are not to be disturbed: once per sender
        for each time they set do-not-disturb."""
        status = self._by_key.get(recipient)
        if status is None or status.state != "dnd" or sender in status.told:
            return None
        status.told.add(sender)
        return status
