"""SYNC and HISTORY, and the inbox replay at LOGIN: an account's messages, numbered without gaps, each
sent once and in order even while new ones arrive (live ones wait while a replay is under way).
"""

from __future__ import annotations

from bleeper.chat.core import Core, Verb, flowing, known
from bleeper.chat.names import group_key, name_key
from bleeper.chat.receipts import note_delivered
from bleeper.chat.records import (
    InboxEntry,
)
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import GroupTarget, History, RoleTarget, Sync
from bleeper.protocol.wire import format_ms

SYNC_BATCH = 1000
REPLAY_BYTES = 256 * 1024  # replay at most this much at once: well inside a client's send buffer


def replay(hub: Core, session: Session, entries: list[InboxEntry], since: int) -> tuple[int, int]:
    """Send stored messages as MSG events with their original time and sequence number, up to about
    :data:`REPLAY_BYTES`. Returns the last sequence number sent (*since* when none) and how many were sent.

    A message that reaches the account for the first time is recorded as delivered (and its sender told);
    one sent again because a client asked (SYNC) is not: ``DELIVERED`` comes once per person."""
    upto, count, size = since, 0, 0
    account, codec = session.account, session.codec
    first_time = hub.delivered_marks.get(account, 0) if account is not None else 0
    for entry in entries:
        message = entry.message
        tail = codec.message_tail(message.id, format_ms(message.created_ms), message.sender, message.to, message.text)
        hub.answer(session, codec.urgent_head(entry.seq) if message.urgent else codec.message_head(entry.seq))
        if message.to != "*" and entry.seq > first_time:
            note_delivered(hub, message, (session,), name_key(message.sender))
        hub.answer(session, tail)
        upto, count = entry.seq, count + 1
        size += len(tail)
        if size >= REPLAY_BYTES:
            break
    if account is not None and count:
        hub.mark_delivered(account, since + 1, upto)
    return upto, count


def release_held(hub: Core, session: Session, upto: int) -> None:
    """After a replay: send the live messages that arrived meanwhile and were not part of it, in order."""
    held, session.held = session.held or [], None
    for seq, head, tail in held:
        if seq > upto:
            hub.answer(session, head)
            hub.answer(session, tail)
            if session.account is not None:
                hub.mark_delivered(session.account, seq, seq)


async def sync(hub: Core, session: Session, command: Sync) -> None:
    account = session.account
    if account is None:
        hub.reply(session, codes.FORBIDDEN, "SYNC needs an account: LOGIN <name> <password>")
        return
    session.held = []  # as at LOGIN: live messages wait for the replay, so each number arrives once, in order
    entries = await known(hub.backend.inbox(account, command.since, SYNC_BATCH)) or []
    # Read after the inbox, so it counts every message the replay could hold: <m> is never negative.
    last = max(await known(hub.backend.last_seq(account)) or 0, entries[-1].seq if entries else 0)
    if command.since > last:
        release_held(hub, session, command.since)
        hub.reply(session, codes.BAD_SYNTAX, f"your last message is number {last}; SYNC {last} or lower")
    elif command.since < last and (not entries or entries[0].seq != command.since + 1):
        release_held(hub, session, command.since)
        first = entries[0].seq if entries else last + 1
        hub.reply(session, codes.GONE, f"{first} gap: messages {command.since + 1} to {first - 1} are gone")
    else:
        upto, sent = replay(hub, session, entries, command.since)
        release_held(hub, session, upto)
        hub.reply(session, codes.SYNCED, f"{upto} sent {sent}; {max(0, last - upto)} more")


async def history(hub: Core, session: Session, command: History) -> None:
    target = command.target
    if isinstance(target, GroupTarget):
        key = group_key(target.name)
        group = hub.groups.get(key)
        if group is None:
            hub.reply(session, codes.NOT_FOUND, f"no such group: {target.name}")
            return
        if session not in hub.registry.members(key) and (
            session.account is None or session.account not in group.accounts
        ):
            hub.reply(session, codes.FORBIDDEN, f"join {group.name} to read its history")
            return
        conversation, label = key, group.name
    elif isinstance(target, RoleTarget):
        role = hub.roles.get(name_key(target.name[1:]))
        if role is None or (session.key or "") not in role.holders:
            hub.reply(session, codes.FORBIDDEN, f"take {target.name} (ONCALL TAKE) to read its history")
            return
        conversation, label = f"role:{name_key(target.name[1:])}", role.name
    else:
        keys = {name_key(name) for name in target.names} | {session.key or ""}
        conversation, label = "@" + ",".join(sorted(keys)), ",".join(target.names)
    messages = await known(hub.backend.history(conversation, command.count)) or []
    items = [f"{m.id} {format_ms(m.created_ms)} {m.sender} {m.to} {m.text}" for m in messages]
    hub.listing(session, codes.HISTORY_LIST, items, f"{len(items)} message(s) with {label}")


VERBS = (
    Verb("SYNC", Sync, flowing(sync), "resend your messages after number <since>"),
    Verb("HISTORY", History, flowing(history), "recent messages of a conversation"),
)
