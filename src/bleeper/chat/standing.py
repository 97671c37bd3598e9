"""Standing state: what the server must still know after a restart besides messages and groups.

Who holds each on-call role, each person's backup, and the urgent messages nobody has acknowledged yet are
promises to patients' carers: a restart (an upgrade, a crash) must not quietly drop the cardiology bleep or
stop an unanswered page from nagging. Each is kept as one ``(kind, key, value)`` row, written when it
changes and read back at start. These functions turn the hub's state into rows and back; they know nothing
of databases.

A role is kept as a row per holder (``holder``, ``"<role> <holder>"``): a TAKE or a LEAVE writes only its own
row, so two servers of a cluster changing one role at once cannot overwrite each other's change. (Servers
before that kept a row per role with its holders; :func:`read_rows` still reads those, and the hub rewrites
them a row per holder.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bleeper.chat.roles import Role
from bleeper.chat.urgent import Urgent

HOLDER, BACKUP, URGENT = "holder", "backup", "urgent"
ROLE = "role"  # a whole role in one row, as older servers kept it: read, and rewritten as HOLDER rows
Row = tuple[str, str, str]  # (kind, key, value)


def holder_row(key: str, name: str, holder: str, since_ms: int | None) -> tuple[str, str, str | None]:
    """The row saying *holder* holds the role *key* (shown as *name*) since *since_ms*; None: no longer."""
    value = json.dumps({"name": name, "since": since_ms}) if since_ms is not None else None
    return HOLDER, f"{key} {holder}", value


def holder_of(row_key: str) -> tuple[str, str]:
    """(role key, holder key) of a HOLDER row's key."""
    key, _, holder = row_key.partition(" ")
    if not holder:
        raise ValueError(f"not a holder row: {row_key!r}")
    return key, holder


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

    roles: dict[str, Role] = field(default_factory=dict)  # holders in the order they took it
    old_roles: list[str] = field(default_factory=list)  # roles read from an older server's one-row form
    backups: dict[str, str] = field(default_factory=dict)
    urgent: list[Urgent] = field(default_factory=list)
    unreadable: int = 0

    def urgent_ids(self) -> list[int]:
        return [urgent.id for urgent in self.urgent]


def read_rows(rows: Iterable[Row]) -> Standing:
    standing = Standing()
    since: dict[tuple[str, str], int] = {}
    for kind, key, value in rows:
        try:
            if kind == HOLDER:
                data = json.loads(value)
                role_key, holder = holder_of(key)
                role = standing.roles.setdefault(role_key, Role(str(data["name"])))
                if holder not in role.holders:
                    role.holders.append(holder)
                since[role_key, holder] = int(data.get("since") or 0)
            elif kind == ROLE:
                data = json.loads(value)
                role = standing.roles.setdefault(key, Role(str(data["name"])))
                role.holders.extend(str(h) for h in data["holders"] if str(h) not in role.holders)
                standing.old_roles.append(key)
            elif kind == BACKUP:
                standing.backups[key] = value
            elif kind == URGENT:
                standing.urgent.append(_urgent(int(key), json.loads(value)))
            else:
                standing.unreadable += 1
        except (ValueError, KeyError, TypeError):
            standing.unreadable += 1
    for key, role in standing.roles.items():  # (stable: an older server's holders keep their order)
        role.holders.sort(key=lambda holder: since.get((key, holder), 0))
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
