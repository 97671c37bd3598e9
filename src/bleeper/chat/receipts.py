"""Receipts and the record: DELIVERED (once per person), READ, TRACE (a message's ledger from the audit
log) and RECALL (a tombstone instead of the text).
"""

from __future__ import annotations

from collections.abc import Iterable

from bleeper.chat.core import Core, Verb, flowing, known
from bleeper.chat.delivery import Audience, everyone, people
from bleeper.chat.names import name_key
from bleeper.chat.records import (
    Ledger,
    StoredMessage,
    content_hash,
)
from bleeper.chat.session import Session
from bleeper.chat.standing import URGENT
from bleeper.protocol import codes
from bleeper.protocol.commands import Read, Recall, Trace
from bleeper.protocol.wire import format_ms


def note_delivered(
    hub: Core, message: StoredMessage, reached: Iterable[Session], sender_key: str, sender: Session | None = None
) -> None:
    """Receipts: an audit entry per account device reached, and for private, sub-group and urgent
    messages a ``DELIVERED`` event to the sender, once per person. (Not for SAY, nor group messages'
    live events: a sender to a hundred people would get a hundred events per message.)"""
    live = message.urgent or message.to[0] == "@"
    told: set[str] = set()
    for other in reached:
        key = other.key
        if other.closing or key is None or key == sender_key:
            continue
        if other.account is not None:
            hub.audit("delivered", other.account, str(message.id), device=other.address)
        elif message.urgent:  # a page's ledger names everyone it reached, as its ACK does
            hub.audit("delivered", f"guest:{other.name}", str(message.id), device=other.address)
        if live and key not in told:
            told.add(key)
            receipt = (str(message.id), other.name or key)
            hub.delivery.event(people((sender_key,), but=sender), "DELIVERED", *receipt)
            if sender is not None:
                hub.notice(sender, "DELIVERED", *receipt)  # after the 250 that gives the id, even when pipelining


def received(hub: Core, session: Session, ledger: Ledger) -> bool:
    """Whether the message was sent to this person (READ is only for recipients): its conversation's
    people, and those an urgent message was escalated or handed over to."""
    conversation = ledger.message.conversation
    if ledger.message.urgent:
        urgent = hub.urgent.find(ledger.message.id)
        me = session.actor
        if (urgent is not None and (session.key or "") in urgent.waiting) or any(
            entry.kind == "delivered" and entry.actor == me for entry in ledger.entries
        ):
            return True
    if conversation == "*":
        return True
    if conversation.startswith("#"):
        group = hub.groups.get(conversation)
        return group is not None and (
            session.account in group.accounts or session in hub.registry.members(conversation)
        )
    if conversation.startswith("role:"):
        role = hub.roles.get(conversation[5:])
        return role is not None and (session.key or "") in role.holders
    return (session.key or "") in conversation[1:].split(",") and ledger.sender_key != session.key


async def read(hub: Core, session: Session, command: Read) -> None:
    ledger = await known(hub.backend.ledger(command.message_id))
    if ledger is None or not received(hub, session, ledger):
        hub.reply(session, codes.NOT_FOUND, f"no message {command.message_id} was sent to you")
        return
    message = ledger.message
    hub.audit("read", session.actor, str(message.id), device=session.address)
    if message.urgent or message.to[0] == "@":
        sender = ledger.sender_key or name_key(message.sender)
        hub.delivery.event(people((sender,)), "READ", str(message.id), session.name or "")
    hub.reply(session, codes.READ_NOTED, f"{message.id} marked read; {message.sender} is told")


async def trace(hub: Core, session: Session, command: Trace) -> None:
    ledger = await known(hub.backend.ledger(command.message_id))
    if ledger is None:
        hub.reply(session, codes.NOT_FOUND, f"no message {command.message_id}")
    elif not session.admin and (ledger.sender_key or name_key(ledger.message.sender)) != session.key:
        hub.reply(session, codes.FORBIDDEN, "TRACE is for the message's sender and administrators")
    else:
        items = ledger_lines(ledger)
        hub.listing(session, codes.TRACE_LIST, items, f"{len(items)} entries for message {ledger.message.id}")


def audience(hub: Core, ledger: Ledger, but: Session) -> Audience:
    """Who may have a message now: its conversation's people and those an urgent message went on to."""
    conversation = ledger.message.conversation
    if conversation == "*":
        return everyone(but)
    keys: list[str] = []
    group: str | None = None
    if conversation.startswith("#"):
        group = conversation
    elif conversation.startswith("role:"):
        role = hub.roles.get(conversation[5:])
        keys = list(role.holders) if role is not None else []
    else:
        keys = conversation[1:].split(",")
    urgent = hub.urgent.find(ledger.message.id) if ledger.message.urgent else None
    if urgent is not None:
        keys += urgent.waiting
    return Audience(people=tuple(dict.fromkeys(keys)), group=group, but=but)


async def recall(hub: Core, session: Session, command: Recall) -> None:
    ledger = await known(hub.backend.ledger(command.message_id))
    if ledger is None:
        hub.reply(session, codes.NOT_FOUND, f"no message {command.message_id}")
        return
    message = ledger.message
    if (ledger.sender_key or name_key(message.sender)) != session.key:
        hub.reply(session, codes.FORBIDDEN, "only its sender can recall a message")
        return
    if message.text.startswith("[recalled by "):
        hub.reply(session, codes.RECALLED, f"{message.id} was already recalled")
        return
    digest = content_hash(message.text)
    tombstone = f"[recalled by {session.name} at {hub.now()}; sha256 {digest[:16]}]"
    if not await known(hub.backend.recall(message.id, tombstone)):
        hub.reply(session, codes.STORAGE_ERROR, "the recall was NOT stored; try again")
        return
    if hub.urgent.open.pop(message.id, None) is not None:  # a recalled page stops alerting
        hub.keep((URGENT, str(message.id), None))
    hub.delivery.event(audience(hub, ledger, session), "RECALLED", str(message.id), session.name or "")
    hub.audit("recall", session.actor, str(message.id), sha256=digest)
    hub.reply(
        session,
        codes.RECALLED,
        f"{message.id} recalled: its text is gone from history and inboxes; a tombstone remains",
    )


def ledger_lines(ledger: Ledger) -> list[str]:
    """A message's ledger, one line per step, oldest first."""
    message = ledger.message
    urgent = " (urgent)" if message.urgent else ""
    lines = [f"{format_ms(message.created_ms)} stored: from {message.sender} to {message.to}{urgent}"]
    for entry in ledger.entries:
        detail = dict(entry.detail)
        when = format_ms(entry.at_ms)
        if entry.kind == "message":
            continue
        if entry.kind == "delivered":
            lines.append(f"{when} delivered to {entry.actor} ({detail.get('device', '?')})")
        elif entry.kind == "read":
            lines.append(f"{when} read by {entry.actor}")
        elif entry.kind == "ack":
            lines.append(f"{when} acknowledged by {entry.actor}")
        elif entry.kind == "alert":
            round_ = str(detail.get("round", "?")).replace("/", " of ")
            lines.append(f"{when} alerted {str(detail.get('to', '?')).replace(',', ', ')} (alert {round_})")
        elif entry.kind == "escalation" and "from" in detail:
            lines.append(f"{when} handed over to {detail.get('to')} (on-call role, from {detail.get('from')})")
        elif entry.kind == "escalation":
            lines.append(f"{when} escalated to {detail.get('to')} (backup of {detail.get('backup_of')})")
        else:
            lines.append(f"{when} {entry.kind} by {entry.actor}")
    return lines


VERBS = (
    Verb("READ", Read, flowing(read), "tell the sender you have read a message"),
    Verb("TRACE", Trace, flowing(trace), "a message's ledger: stored, delivered, read, acknowledged..."),
    Verb(
        "RECALL",
        Recall,
        flowing(recall),
        "take back a message you sent: its text is replaced by a tombstone everywhere",
    ),
)
