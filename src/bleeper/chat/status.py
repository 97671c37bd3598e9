"""STATUS: available, busy, away or do not disturb, for all of a person's devices; do-not-disturb tells
each private sender once and still delivers.
"""

from __future__ import annotations

from bleeper.chat.core import Core, Verb
from bleeper.chat.delivery import everyone
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Status


def set_status(hub: Core, session: Session, command: Status) -> None:
    status = hub.registry.set_status(session.key or "", command.state, command.note)
    note = f" ({status.note})" if status.note else ""
    dnd = "; private messages still arrive, and senders are told once" if status.state == "dnd" else ""
    hub.reply(session, codes.STATUS_SET, f"{status.state}{note}{dnd}")
    said = [status.note] if status.note else []
    hub.delivery.event(everyone(but=session), "PRESENCE", session.name or "", status.state, *said)  # WHO stays live


def tell_not_disturbed(hub: Core, sender: Session, key: str, shown: str) -> None:
    """Do-not-disturb answers each private sender once with the note; the message is delivered anyway."""
    status = hub.registry.do_not_disturb(key, sender.key or "")
    if status is not None:
        hub.notice(sender, "STATUS", shown, status.state, *([status.note] if status.note else []))


VERBS = (Verb("STATUS", Status, set_status, "tell others whether you can be reached (shown in WHO)"),)
