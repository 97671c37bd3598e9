"""SAY and TELL (URGENT is TELL that must be acknowledged): who a message is for, then store, then deliver,
then acknowledge. Nobody sees a message that could still be lost; up to 64 per connection wait for storage
at once, their replies kept in command order; one formatted message is shared by every recipient.
"""

from __future__ import annotations

import logging
from typing import Any

from bleeper.chat.backend import Pending
from bleeper.chat.core import MAX_IN_FLIGHT, Core, Handler
from bleeper.chat.flow import run
from bleeper.chat.names import name_key
from bleeper.chat.notify import Kind
from bleeper.chat.receipts import note_delivered
from bleeper.chat.records import (
    NewMessage,
    StorageFull,
    StorageUnsure,
    StoredMessage,
)
from bleeper.chat.session import Session
from bleeper.chat.standing import urgent_row
from bleeper.chat.status import tell_not_disturbed
from bleeper.protocol import codes
from bleeper.protocol.commands import GroupTarget, RoleTarget, Say, Tell
from bleeper.protocol.wire import format_ms, reply

log = logging.getLogger("bleeper.events")


def say(hub: Core, session: Session, command: Say) -> Pending[object] | None:
    targets = [other for devices in hub.users.values() for other in devices if other is not session]
    accounts = {other.account for other in targets if other.account and other.account != session.account}
    return send(hub, session, "*", "*", command.text, targets, sorted(accounts), command.client_id)


def tell(hub: Core, session: Session, command: Tell) -> Pending[object] | None:
    target = command.target
    if isinstance(target, GroupTarget):
        group = hub.groups.get("#" + name_key(target.name[1:]))
        if group is None:
            hub.answer(session, reply(codes.NOT_FOUND, f"no such group: {target.name}; GROUPS lists them"))
            return None
        targets = [other for other in group.members if other is not session]
        accounts = sorted(group.accounts - {session.account} if session.account else group.accounts)
        conversation = "#" + name_key(group.name[1:])
        waiting = None
        if command.urgent:
            waiting = sorted((group.accounts | {m.key for m in group.members if m.key}) - {session.key})
        return send(hub, session, group.name, conversation, command.text, targets, accounts, command.client_id, waiting)
    if isinstance(target, RoleTarget):
        return tell_role(hub, session, command, target)
    if len(target.names) == 1:  # the common case: one person
        key = name_key(target.names[0])
        devices = hub.users.get(key)
        if devices or key in hub.accounts:
            shown = devices[0].name if devices else hub.accounts[key]
            targets = [other for other in devices or () if other is not session]
            accounts = [key] if key in hub.accounts and key != session.account else []
            me = session.key or ""
            conversation = f"@{key},{me}" if key < me else f"@{me},{key}"
            if key == me:
                conversation = f"@{key}"
            if hub.presence.get(key) is not None:
                tell_not_disturbed(hub, session, key, shown or key)
            return send(
                hub,
                session,
                f"@{shown}",
                conversation,
                command.text,
                targets,
                accounts,
                command.client_id,
                [key] if command.urgent else None,
            )
    names: dict[str, str] = {}  # key -> display name
    missing: list[str] = []
    for name in target.names:
        key = name_key(name)
        if key in hub.users:
            names.setdefault(key, hub.users[key][0].name or name)
        elif key in hub.accounts:
            names.setdefault(key, hub.accounts[key])
        else:
            missing.append(name)
    if missing:
        shown = ", ".join(missing[:10])
        hub.answer(session, reply(codes.NOT_FOUND, f"no such user: {shown}; nothing was sent (WHO lists people)"))
        return None
    for key, shown in names.items():
        tell_not_disturbed(hub, session, key, shown)
    targets = [other for key in names for other in hub.users.get(key, ()) if other is not session]
    accounts = [key for key in names if key in hub.accounts and key != session.account]
    conversation = "@" + ",".join(sorted({*names, session.key or ""}))
    to = "@" + ",".join(names.values())
    waiting = [key for key in names if key != session.key] if command.urgent else None
    return send(hub, session, to, conversation, command.text, targets, accounts, command.client_id, waiting)


def tell_role(hub: Core, session: Session, command: Tell, target: RoleTarget) -> Pending[object] | None:
    key = name_key(target.name[1:])
    role = hub.roles.get(key)
    if role is None:
        hub.answer(session, reply(codes.NOT_FOUND, f"nobody holds {target.name}; ONCALL lists the roles"))
        return None
    holders = role.holders
    targets = [other for holder in holders for other in hub.users.get(holder, ()) if other is not session]
    accounts = [holder for holder in holders if holder in hub.accounts and holder != session.account]
    waiting = [holder for holder in holders if holder != session.key] if command.urgent else None
    return send(hub, session, role.name, f"role:{key}", command.text, targets, accounts, command.client_id, waiting)


def send(
    hub: Core,
    session: Session,
    to: str,
    conversation: str,
    text: str,
    targets: list[Session],
    accounts: list[str],
    client_id: str | None,
    waiting: list[str] | None = None,
) -> Pending[object] | None:
    """Store, then deliver and acknowledge: nobody sees a message that could still be lost.

    A client id counts only for accounts: an anonymous name is not the same sender after a reconnect.
    *waiting* (name keys) makes the message urgent: any one of them must acknowledge it.
    """
    created_ms = int(hub.clock() * 1000)
    client_id = client_id if session.account is not None else None
    new = NewMessage(
        session.name or "",
        session.account,
        to,
        conversation,
        text,
        created_ms,
        tuple(accounts),
        client_id,
        waiting is not None,
    )
    pending = hub.backend.store(new)
    answer = Reply(hub, session)
    if not pending.done():  # its reply keeps its place while later lines are read and answered
        answer.reserve()
    failed = lambda exc: answer(reply(codes.SERVER_ERROR, "internal error: the message may or may not be sent"))  # noqa: E731
    stored = run(deliver_stored(hub, session, pending, answer, targets, accounts, waiting), failed)
    # Pipelining: the next lines are read at once, unless too many messages already wait for storage.
    return stored if len(session.slots) > MAX_IN_FLIGHT else None


class Reply:
    """A message command's one reply: straight out, or into the slot reserved for it while its message is
    being stored, so that replies to later lines cannot overtake it. Said once, whatever happens after."""

    __slots__ = ("hub", "said", "session", "slot")

    def __init__(self, hub: Core, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.slot: list[Any] | None = None
        self.said = False

    def reserve(self) -> None:
        if self.slot is None:
            self.slot = [False, []]
            self.session.slots.append(self.slot)

    def __call__(self, data: bytes) -> None:
        if self.said:
            return
        self.said = True
        if self.slot is None:
            self.hub.answer(self.session, data)
        else:
            self.slot[1].append(data)
            self.slot[0] = True
            self.hub.release(self.session)


async def deliver_stored(
    hub: Core,
    session: Session,
    pending: Pending[StoredMessage],
    answer: Reply,
    targets: list[Session],
    accounts: list[str],
    waiting: list[str] | None,
) -> None:
    """The second half of :func:`send`: once the message is stored, deliver it, then say 250 (in the
    command's own slot, so replies keep the order of the lines)."""
    try:
        message = await pending
    except StorageFull:
        answer(reply(codes.STORAGE_FULL, "storage full: the message was NOT sent; try again later"))
        return
    except StorageUnsure as exc:
        log.error("storing a message from %s was interrupted: %s", session.label, exc)
        answer(
            reply(
                codes.STORAGE_ERROR,
                "storage interrupted: the message may or may not be stored; send it again with the same ID to be sure",
            )
        )
        return
    except Exception as exc:
        log.error("storing a message from %s failed: %s", session.label, exc)
        answer(reply(codes.STORAGE_ERROR, "storage error: the message was NOT sent; try again"))
        return
    stamp = format_ms(message.created_ms)
    if message.duplicate:
        answer(reply(codes.MESSAGE_ACCEPTED, f"{message.id} {stamp} reached 0; already sent (same ID), not sent again"))
        return
    reached = hub.deliver(message, stamp, targets)
    note, kept = "", None
    if waiting is not None:
        urgent = hub.urgent.add(
            message.id,
            session.key or "",
            session.name or "",
            message.to,
            message.text,
            waiting,
            hub.monotonic(),
            message.created_ms,
        )
        kept = hub.keep(urgent_row(urgent))
        note = f"; urgent: alerts every {hub.limits.urgent_interval:g} s until acknowledged, then escalates"
    accepted = reply(codes.MESSAGE_ACCEPTED, f"{message.id} {stamp} reached {reached}{note}")
    if kept is None or kept.done():
        answer(accepted)
    else:  # the 250 waits for the alert state: it keeps its place ahead of what follows
        answer.reserve()
    if message.to != "*" and (message.seqs or message.urgent or message.to[0] == "@"):
        note_delivered(hub, message, targets, session.key or "", session)  # after the 250 that gives the id
    if hub.notifier.enabled:
        kind: Kind | None = "urgent" if waiting is not None else None
        if kind is None and message.conversation.startswith(("@", "role:")):
            kind = "message"  # addressed to people, as a page is; not SAY, nor a group's chatter
        if kind is not None:
            hub.notify_offline(accounts, kind, message.id, message.sender)
    if kept is not None and not kept.done():
        try:
            await kept  # accepted once its alerts would survive a restart too
        except (GeneratorExit, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # not kept (or the server stops): the message is stored and delivered
            log.error("keeping the alert state of urgent message %d failed: %s", message.id, exc)
        finally:
            answer(accepted)


HANDLERS: dict[type, Handler] = {
    Say: say,
    Tell: tell,
}
