"""KICK, ANNOUNCE and HEALTH: for accounts added with --admin."""

from __future__ import annotations

import logging

from bleeper.chat.core import Core, Handler
from bleeper.chat.names import name_key
from bleeper.chat.records import (
    content_hash,
)
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Announce, Health, Kick
from bleeper.protocol.wire import event, multiline, reply

log = logging.getLogger("bleeper.events")


def kick(hub: Core, session: Session, command: Kick) -> None:
    if not session.admin:
        hub.answer(session, reply(codes.FORBIDDEN, "KICK is for administrators (accounts added with --admin)"))
        return
    key = name_key(command.name)
    devices = list(hub.users.get(key, ()))
    if not devices:
        hub.answer(session, reply(codes.NOT_FOUND, f"{command.name} is not online; WHO lists who is"))
        return
    reason = f"kicked by {session.name}" + (f": {command.reason}" if command.reason else "")
    for other in devices:
        hub.drop(other, reason)
    hub.audit("admin", session.account or "", key, action="kick", reason=command.reason, connections=len(devices))
    hub.answer(session, reply(codes.OK, f"disconnected {command.name} ({len(devices)} connection(s))"))


def announce(hub: Core, session: Session, command: Announce) -> None:
    if not session.admin:
        hub.answer(session, reply(codes.FORBIDDEN, "ANNOUNCE is for administrators (accounts added with --admin)"))
        return
    reached = hub.to_everyone(event("ANNOUNCE", session.name or "", command.text), session)
    hub.audit(
        "admin", session.account or "", "*", action="announce", sha256=content_hash(command.text), reached=reached
    )
    hub.answer(session, reply(codes.OK, f"announced to {reached} connection(s)"))


def health(hub: Core, session: Session, command: Health) -> None:
    if not session.admin:
        hub.answer(session, reply(codes.FORBIDDEN, "HEALTH is for administrators (accounts added with --admin)"))
        return
    now = hub.monotonic()
    oldest = min(hub.urgent.open.values(), key=lambda u: u.since, default=None)
    lines = [
        f"uptime {int(now - hub.started)} s",
        f"connections {len(hub.sessions)}, people {len(hub.users)}, groups {len(hub.groups)}",
        f"urgent waiting {len(hub.urgent.open)}",
    ]
    if oldest is not None:
        lines.append(f"oldest urgent {oldest.id} from {oldest.sender}, {int(now - oldest.since)} s unacknowledged")
    lines += hub.vital_signs()
    hub.answer(session, multiline(codes.HEALTH_REPORT, lines, "end of health"))


HANDLERS: dict[type, Handler] = {
    Kick: kick,
    Announce: announce,
    Health: health,
}
