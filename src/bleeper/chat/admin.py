"""KICK, ANNOUNCE and HEALTH: for accounts added with --admin."""

from __future__ import annotations

from bleeper.chat.core import Core, Verb
from bleeper.chat.delivery import everyone
from bleeper.chat.names import name_key
from bleeper.chat.records import (
    content_hash,
)
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Announce, Health, Kick


def kick(hub: Core, session: Session, command: Kick) -> None:
    if not session.admin:
        hub.reply(session, codes.FORBIDDEN, "KICK is for administrators (accounts added with --admin)")
        return
    key = name_key(command.name)
    if not hub.registry.online(key):
        hub.reply(session, codes.NOT_FOUND, f"{command.name} is not online; WHO lists who is")
        return
    reason = f"kicked by {session.name}" + (f": {command.reason}" if command.reason else "")
    closed = hub.delivery.disconnect(key, reason)
    hub.audit("admin", session.account or "", key, action="kick", reason=command.reason, connections=closed)
    hub.reply(session, codes.OK, f"disconnected {command.name} ({closed} connection(s))")


def announce(hub: Core, session: Session, command: Announce) -> None:
    if not session.admin:
        hub.reply(session, codes.FORBIDDEN, "ANNOUNCE is for administrators (accounts added with --admin)")
        return
    reached = hub.delivery.event(everyone(but=session), "ANNOUNCE", session.name or "", command.text)
    hub.audit(
        "admin", session.account or "", "*", action="announce", sha256=content_hash(command.text), reached=reached
    )
    hub.reply(session, codes.OK, f"announced to {reached} connection(s)")


def health(hub: Core, session: Session, command: Health) -> None:
    if not session.admin:
        hub.reply(session, codes.FORBIDDEN, "HEALTH is for administrators (accounts added with --admin)")
        return
    now = hub.monotonic()
    oldest = min(hub.urgent.open.values(), key=lambda u: u.since, default=None)
    lines = [
        f"uptime {int(now - hub.started)} s",
        f"connections {len(hub.sessions)}, people {hub.registry.count()}, groups {len(hub.groups)}",
        f"urgent waiting {len(hub.urgent.open)}",
    ]
    if oldest is not None:
        lines.append(f"oldest urgent {oldest.id} from {oldest.sender}, {int(now - oldest.since)} s unacknowledged")
    lines += hub.vital_signs()
    hub.listing(session, codes.HEALTH_REPORT, lines, "end of health")


VERBS = (
    Verb("HEALTH", Health, health, "the server's vital signs (administrators)"),
    Verb("KICK", Kick, kick, "disconnect someone (administrators)"),
    Verb("ANNOUNCE", Announce, announce, "tell everyone online (administrators)"),
)
