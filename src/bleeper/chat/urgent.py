"""Urgent messages: who still has to acknowledge, when to alert again, and when to escalate. Pure state fed
the time, so the rules are tested without waiting (the hub sends what :meth:`UrgentDesk.due` asks for).

Each alert or escalation is a numbered *step*. Before taking one, the hub claims it from the backend
(``claim_step``): of several servers sharing a database, exactly one gets each step, and a server that was
paused and is behind cannot take a step again (the number has moved on). :meth:`UrgentDesk.due` says what is
due, :meth:`UrgentDesk.advance` takes a step that was granted, :meth:`UrgentDesk.refused` one that was not."""

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
    steps: int = 0  # alert and escalation steps taken so far (by any server): the fencing token of the next
    claiming: bool = False  # its next step is being claimed


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

    def waiting_on(self, msg_id: int, key: str) -> Urgent:
        """The message *key* may acknowledge. KeyError: no such urgent message; NotWaiting: not sent to *key*."""
        urgent = self.find(msg_id)
        if urgent is None:
            raise KeyError(msg_id)
        if key not in urgent.waiting:
            raise NotWaiting(key)
        return urgent

    def ack(self, urgent: Urgent, key: str, now: float) -> None:
        """Close the message: *key* acknowledged it first (as the backend settled). Once only."""
        if urgent.acked_by is None:
            urgent.acked_by, urgent.acked_at = key, now
            self.open.pop(urgent.id, None)
            self._close(urgent)

    def _close(self, urgent: Urgent) -> None:
        self.closed[urgent.id] = urgent
        while len(self.closed) > CLOSED_KEPT:
            self.closed.popitem(last=False)

    def closed_elsewhere(self, msg_id: int) -> None:
        """Another server closed it (acknowledged, or recalled): no more alerts from here. Who acknowledged
        is asked of the backend when someone here acknowledges it too."""
        urgent = self.open.pop(msg_id, None)
        if urgent is not None:
            self._close(urgent)

    def update(self, stood: Urgent, now: float) -> None:
        """Another server took a step (or sent it): *stood* is how it stands now. Its next step is due an
        interval from now."""
        urgent = self.open.get(stood.id)
        if urgent is None:
            if stood.id in self.closed:
                return
            stood.since, stood.next_at = now, now + self.interval
            self.open[stood.id] = stood
            for copy in stood.copies:
                self.aliases[copy] = stood.id
            return
        if stood.steps < urgent.steps:
            return  # an older state, overtaken
        urgent.waiting, urgent.alerts, urgent.escalated = stood.waiting, stood.alerts, stood.escalated
        if stood.steps > urgent.steps or not urgent.claiming:
            urgent.next_at = now + self.interval
        urgent.steps = stood.steps

    def escalate_next(self, urgent: Urgent) -> None:
        """An escalation could not be made (storage failed): its next step escalates again, rather than
        starting another round of alerts to people who have not answered."""
        urgent.alerts = self.attempts

    def escalated(self, urgent: Urgent, to_key: str) -> None:
        """*to_key* now has the message too (same id) and may acknowledge it."""
        urgent.escalated.append(to_key)
        if to_key not in urgent.waiting:
            urgent.waiting.append(to_key)

    def due(self, now: float) -> list[Urgent]:
        """The messages whose next step is due: claim each (the backend's ``claim_step``), then
        :meth:`advance` or :meth:`refused`."""
        found = [urgent for urgent in self.open.values() if urgent.next_at <= now and not urgent.claiming]
        for urgent in found:
            urgent.claiming = True
        return found

    def advance(self, urgent: Urgent, now: float) -> str:
        """Take the step that was granted: ``"alert"`` again, or ``"escalate"`` once the alerts are used up."""
        urgent.claiming = False
        urgent.steps += 1
        urgent.next_at = now + self.interval
        if urgent.alerts < self.attempts:
            urgent.alerts += 1
            return "alert"
        urgent.alerts = 0  # the escalation target gets a fresh round of alerts
        return "escalate"

    def refused(self, urgent: Urgent, now: float, step: int) -> None:
        """The step was not granted: the message stands at *step* (another server took it, -1: it was
        acknowledged elsewhere) or it is not due yet by the database's clock (asked again shortly)."""
        urgent.claiming = False
        if step < 0:  # acknowledged elsewhere (its news may have been lost): no more alerts from here
            self.closed_elsewhere(urgent.id)
            return
        if step > urgent.steps:
            urgent.steps = max(urgent.steps, step)
            urgent.next_at = now + self.interval  # its server tells how it stands; this is only a fallback
        else:
            urgent.next_at = now + min(1.0, self.interval / 4)

    def waiting_for(self, key: str) -> int:
        return sum(1 for urgent in self.open.values() if key in urgent.waiting)
