"""Urgent messages: who still has to acknowledge, when to alert again, and when to escalate. Pure state fed
the time, so the rules are tested without waiting (the hub sends what :meth:`UrgentDesk.due` asks for)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

CLOSED_KEPT = 1000  # acknowledged messages remembered, to answer a late ACK kindly


@dataclass(slots=True)
class Urgent:
    id: int
    sender_key: str
    sender: str  # display name
    to: str
    text: str  # kept in memory only, to pass on when escalating
    waiting: list[str]  # name keys of the people any one of whom may acknowledge it
    next_at: float
    since: float = 0.0  # when it was sent (monotonic)
    alerts: int = 1  # the delivery counts as the first
    escalated: list[str] = field(default_factory=list)
    # Ids of copies sent to backups and new role holders by servers before one page kept one id: stored
    # standing state may still name them, and each still acknowledges the original.
    copies: list[int] = field(default_factory=list)
    sent_ms: int = 0  # when it was sent (wall clock, ms): kept across a restart, where monotonic time is not
    acked_by: str | None = None
    acked_at: float = 0.0


class NotWaiting(Exception):
    """ACK from someone the message was not sent to."""


class UrgentDesk:
    def __init__(self, interval: float = 120.0, attempts: int = 3) -> None:
        self.interval = interval
        self.attempts = attempts
        self.open: dict[int, Urgent] = {}
        self.aliases: dict[int, int] = {}  # an older server's escalation copy's id -> the original's id
        self.closed: OrderedDict[int, Urgent] = OrderedDict()

    def add(self, msg_id: int, sender_key: str, sender: str, to: str, text: str, waiting: list[str],
            now: float, sent_ms: int = 0) -> Urgent:  # fmt: skip
        urgent = Urgent(msg_id, sender_key, sender, to, text, list(dict.fromkeys(waiting)), now + self.interval, now)
        urgent.sent_ms = sent_ms
        self.open[msg_id] = urgent
        return urgent

    def resume(self, urgent: Urgent, now: float, age: float) -> None:
        """Take back a message still waiting when the server stopped, *age* seconds after it was sent: its
        alerts go on where they left off, the next one an interval from now."""
        urgent.since, urgent.next_at = now - age, now + self.interval
        self.open[urgent.id] = urgent
        for copy in urgent.copies:
            self.aliases[copy] = urgent.id

    def find(self, msg_id: int) -> Urgent | None:
        msg_id = self.aliases.get(msg_id, msg_id)
        return self.open.get(msg_id) or self.closed.get(msg_id)

    def ack(self, msg_id: int, key: str, now: float) -> Urgent:
        """Close the message on the first acknowledgement by anyone it waits for. KeyError: no such urgent
        message; NotWaiting: not sent to *key*. Acknowledging again returns the closed message as it is."""
        urgent = self.find(msg_id)
        if urgent is None:
            raise KeyError(msg_id)
        if key not in urgent.waiting:
            raise NotWaiting(key)
        if urgent.acked_by is None:
            urgent.acked_by, urgent.acked_at = key, now
            del self.open[urgent.id]
            self.closed[urgent.id] = urgent
            while len(self.closed) > CLOSED_KEPT:
                self.closed.popitem(last=False)
        return urgent

    def escalated(self, urgent: Urgent, to_key: str) -> None:
        """*to_key* now has the message too (same id) and may acknowledge it."""
        urgent.escalated.append(to_key)
        if to_key not in urgent.waiting:
            urgent.waiting.append(to_key)

    def due(self, now: float) -> list[tuple[Urgent, str]]:
        """What to do now: ``("alert", ...)`` again, or ``("escalate", ...)`` once the alerts are used up."""
        actions: list[tuple[Urgent, str]] = []
        for urgent in self.open.values():
            if urgent.next_at > now:
                continue
            urgent.next_at = now + self.interval
            if urgent.alerts < self.attempts:
                urgent.alerts += 1
                actions.append((urgent, "alert"))
            else:
                urgent.alerts = 0  # the escalation target gets a fresh round of alerts
                actions.append((urgent, "escalate"))
        return actions

    def waiting_for(self, key: str) -> int:
        return sum(1 for urgent in self.open.values() if key in urgent.waiting)
