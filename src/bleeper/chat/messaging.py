"""SAY and TELL (URGENT is TELL that must be acknowledged): who a message is for, then store, then deliver,
then acknowledge. Nobody sees a message that could still be lost; up to 64 per connection wait for storage
at once, their replies kept in command order; one formatted message is shared by every recipient.
"""

from __future__ import annotations

import logging
from typing import Any

from bleeper.chat.backend import Pending
from bleeper.chat.core import MAX_IN_FLIGHT, Core, Verb
from bleeper.chat.delivery import Audience, everyone, group, people
from bleeper.chat.flow import run
from bleeper.chat.names import group_key, name_key
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
from bleeper.protocol.wire import format_ms

log = logging.getLogger("bleeper.events")


def say(hub: Core, session: Session, command: Say) -> Pending[object] | None:
    accounts = {key for key, _ in hub.registry.people() if key in hub.accounts}
    accounts.discard(session.account or "")
    return send(hub, session, "*", "*", command.text, everyone(but=session), sorted(accounts), command.client_id)


def tell(hub: Core, session: Session, command: Tell) -> Pending[object] | None:
    target = command.target
    if isinstance(target, GroupTarget):
        key = group_key(target.name)
        found = hub.groups.get(key)
        if found is None:
            hub.reply(session, codes.NOT_FOUND, f"no such group: {target.name}; GROUPS lists them")
            return None
        accounts = sorted(found.accounts - {session.account} if session.account else found.accounts)
        waiting = None
        if command.urgent:
            waiting = sorted((found.accounts | hub.registry.member_keys(key)) - {session.key})
        to = group(key, but=session)
        return send(hub, session, found.name, key, command.text, to, accounts, command.client_id, waiting)
    if isinstance(target, RoleTarget):
        return tell_role(hub, session, command, target)
    if len(target.names) == 1:  # the common case: one person
        key = name_key(target.names[0])
        shown = hub.registry.shown(key) or hub.accounts.get(key)
        if shown is not None:
            accounts = [key] if key in hub.accounts and key != session.account else []
            me = session.key or ""
            conversation = f"@{key},{me}" if key < me else f"@{me},{key}"
            if key == me:
                conversation = f"@{key}"
            if hub.registry.status(key) is not None:
                tell_not_disturbed(hub, session, key, shown)
            to = people((key,), but=session)
            waiting = [key] if command.urgent else None
            return send(hub, session, f"@{shown}", conversation, command.text, to, accounts, command.client_id, waiting)
    names: dict[str, str] = {}  # key -> display name
    missing: list[str] = []
    for name in target.names:
        key = name_key(name)
        shown = hub.registry.shown(key) or hub.accounts.get(key)
        if shown is not None:
            names.setdefault(key, shown)
        else:
            missing.append(name)
    if missing:
        listed = ", ".join(missing[:10])
        hub.reply(session, codes.NOT_FOUND, f"no such user: {listed}; nothing was sent (WHO lists people)")
        return None
    for key, shown in names.items():
        tell_not_disturbed(hub, session, key, shown)
    accounts = [key for key in names if key in hub.accounts and key != session.account]
    conversation = "@" + ",".join(sorted({*names, session.key or ""}))
    to_names = "@" + ",".join(names.values())
    waiting = [key for key in names if key != session.key] if command.urgent else None
    to = people(names, but=session)
    return send(hub, session, to_names, conversation, command.text, to, accounts, command.client_id, waiting)


def tell_role(hub: Core, session: Session, command: Tell, target: RoleTarget) -> Pending[object] | None:
    key = name_key(target.name[1:])
    role = hub.roles.get(key)
    if role is None:
        hub.reply(session, codes.NOT_FOUND, f"nobody holds {target.name}; ONCALL lists the roles")
        return None
    holders = role.holders
    accounts = [holder for holder in holders if holder in hub.accounts and holder != session.account]
    waiting = [holder for holder in holders if holder != session.key] if command.urgent else None
    to = people(holders, but=session)
    return send(hub, session, role.name, f"role:{key}", command.text, to, accounts, command.client_id, waiting)


def send(
    hub: Core,
    session: Session,
    to: str,
    conversation: str,
    text: str,
    audience: Audience,
    accounts: list[str],
    client_id: str | None,
    waiting: list[str] | None = None,
) -> Pending[object] | None:
    """Store, then deliver to *audience* and acknowledge: nobody sees a message that could still be lost.

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
    audience = hub.delivery.route(audience)  # who is here now; delivered to them once stored
    pending = hub.backend.store(new)
    answer = Reply(hub, session)
    if not pending.done():  # its reply keeps its place while later lines are read and answered
        answer.reserve()
    failed = lambda exc: answer(codes.SERVER_ERROR, "internal error: the message may or may not be sent")  # noqa: E731
    stored = run(deliver_stored(hub, session, pending, answer, audience, accounts, waiting), failed)
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

    def __call__(self, code: int, text: str) -> None:
        if self.said:
            return
        self.said = True
        data = self.session.codec.reply(code, text)
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
    audience: Audience,
    accounts: list[str],
    waiting: list[str] | None,
) -> None:
    """The second half of :func:`send`: once the message is stored, deliver it, then say 250 (in the
    command's own slot, so replies keep the order of the lines)."""
    try:
        message = await pending
    except StorageFull:
        answer(codes.STORAGE_FULL, "storage full: the message was NOT sent; try again later")
        return
    except StorageUnsure as exc:
        log.error("storing a message from %s was interrupted: %s", session.label, exc)
        answer(
            codes.STORAGE_ERROR,
            "storage interrupted: the message may or may not be stored; send it again with the same ID to be sure",
        )
        return
    except Exception as exc:
        log.error("storing a message from %s failed: %s", session.label, exc)
        answer(codes.STORAGE_ERROR, "storage error: the message was NOT sent; try again")
        return
    stamp = format_ms(message.created_ms)
    if message.duplicate:
        answer(codes.MESSAGE_ACCEPTED, f"{message.id} {stamp} reached 0; already sent (same ID), not sent again")
        return
    reached, targets = hub.deliver(message, stamp, audience)
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
    accepted = f"{message.id} {stamp} reached {reached}{note}"
    if kept is None or kept.done():
        answer(codes.MESSAGE_ACCEPTED, accepted)
    else:  # the 250 waits for the alert state: it keeps its place ahead of what follows
        answer.reserve()
    if message.to != "*" and (message.seqs or message.urgent or message.to[0] == "@"):
        note_delivered(hub, message, targets, session.key or "", session)  # after the 250 that gives the id
    if hub.notifier.enabled:  # checked here too: this runs for every message, push or not
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
            answer(codes.MESSAGE_ACCEPTED, accepted)


VERBS = (
    Verb("SAY", Say, say, "send to everyone online"),
    Verb("TELL", Tell, tell, "send to a person, several (alice,bob) or a #group"),
    Verb("URGENT", Tell, tell, "send a message that alerts until someone acknowledges it (ACK), then escalates"),
)
