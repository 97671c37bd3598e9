"""STATUS: available, busy, away or do not disturb, for all of a person's devices; do-not-disturb tells
each private sender once and still delivers.
"""

from __future__ import annotations

import logging

from bleeper.chat.core import Core, Handler
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Status
from bleeper.protocol.wire import event, reply

log = logging.getLogger("bleeper.events")


def set_status(hub: Core, session: Session, command: Status) -> None:
    status = hub.presence.set(session.key or "", command.state, command.note)
    note = f" ({status.note})" if status.note else ""
    dnd = "; private messages still arrive, and senders are told once" if status.state == "dnd" else ""
    hub.answer(session, reply(codes.STATUS_SET, f"{status.state}{note}{dnd}"))
    shown = event("PRESENCE", session.name or "", status.state, *([status.note] if status.note else []))
    hub.to_everyone(shown, session)  # user lists stay live without polling WHO


def tell_not_disturbed(hub: Core, sender: Session, key: str, shown: str) -> None:
    """Do-not-disturb answers each private sender once with the note; the message is delivered anyway."""
    status = hub.presence.do_not_disturb(key, sender.key or "")
    if status is not None:
        hub.answer(sender, event("STATUS", shown, status.state, *([status.note] if status.note else [])))


HANDLERS: dict[type, Handler] = {
    Status: set_status,
}
