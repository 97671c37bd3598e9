"""Standing state: what the server must still know after a restart besides messages and groups.

Who holds each on-call role, each person's backup, and the urgent messages nobody has acknowledged yet are
promises to patients' carers: a restart (an upgrade, a crash) must not quietly drop the cardiology bleep or
stop an unanswered page from nagging. Each is kept as one ``(kind, key, value)`` row, written when it
changes and read back at start. These functions turn the hub's state into rows and back; they know nothing
of databases.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bleeper.chat.roles import Role
from bleeper.chat.urgent import Urgent

ROLE, BACKUP, URGENT = "role", "backup", "urgent"
Row = tuple[str, str, str]  # (kind, key, value)


def role_row(key: str, role: Role | None) -> tuple[str, str, str | None]:
    """The row for a role; value None (forget it) once nobody holds it."""
    value = json.dumps({"name": role.name, "holders": role.holders}) if role is not None and role.holders else None
    return ROLE, key, value


def urgent_row(urgent: Urgent) -> tuple[str, str, str | None]:
    """The row for an urgent message; value None once acknowledged. The text stays in the messages table."""
    if urgent.acked_by is not None:
        return URGENT, str(urgent.id), None
    value = {
        "sender_key": urgent.sender_key, "sender": urgent.sender, "to": urgent.to, "waiting": urgent.waiting,
        "sent_ms": urgent.sent_ms, "alerts": urgent.alerts, "escalated": urgent.escalated, "copies": urgent.copies,
        "steps": urgent.steps,
    }  # fmt: skip
    return URGENT, str(urgent.id), json.dumps(value)


@dataclass(slots=True)
class Standing:
    """Rows read back, decoded; rows that cannot be read are counted in *unreadable*, not fatal."""

    roles: dict[str, Role] = field(default_factory=dict)
    backups: dict[str, str] = field(default_factory=dict)
    urgent: list[Urgent] = field(default_factory=list)
    unreadable: int = 0

    def urgent_ids(self) -> list[int]:
        return [urgent.id for urgent in self.urgent]


def read_rows(rows: Iterable[Row]) -> Standing:
    standing = Standing()
    for kind, key, value in rows:
        try:
            if kind == ROLE:
                data = json.loads(value)
                standing.roles[key] = Role(str(data["name"]), [str(h) for h in data["holders"]])
            elif kind == BACKUP:
                standing.backups[key] = value
            elif kind == URGENT:
                standing.urgent.append(_urgent(int(key), json.loads(value)))
            else:
                standing.unreadable += 1
        except (ValueError, KeyError, TypeError):
            standing.unreadable += 1
    return standing


def _urgent(msg_id: int, data: Mapping[str, object]) -> Urgent:
    def names(field: str) -> list[str]:
        value = data.get(field, [])
        if not isinstance(value, list):
            raise TypeError(field)
        return [str(item) for item in value]

    urgent = Urgent(msg_id, str(data["sender_key"]), str(data["sender"]), str(data["to"]), "", names("waiting"), 0.0)
    urgent.sent_ms = int(data["sent_ms"])  # type: ignore[call-overload]
    urgent.alerts = int(data.get("alerts", 1))  # type: ignore[call-overload]
    urgent.escalated = names("escalated")
    urgent.copies = [int(copy) for copy in names("copies")]
    urgent.steps = int(data.get("steps", 0))  # type: ignore[call-overload]
    return urgent
