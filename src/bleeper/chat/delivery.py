"""The delivery seam: the domain says *who* something is for; a :class:`Delivery` finds their connections.

Features describe an :class:`Audience` in their own terms (everyone online, people by name key, a group's
members) and hand it, with a stored message or an event, to ``hub.delivery``. :class:`LocalDelivery` writes
to the connections on this server, found through the registry (chat/registry.py). Cluster mode adds a
delivery that also tells the other servers, which each hand it to their own connections the same way; the
features do not change.

Each connection carries its protocol's codec (protocol/codec.py): a message or event is rendered once per
codec in use, not once per recipient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from bleeper.chat.records import StoredMessage
from bleeper.chat.registry import Registry
from bleeper.chat.session import Session
from bleeper.protocol.codec import Codec


@dataclass(slots=True)  # not frozen: one is made per message, and a frozen dataclass is slow to make
class Audience:
    """Who something is for, never which connections: everyone online, people (name keys) or the members of
    a group (``#key``), or several of these. *but* is the one connection that must not get it: the sender's.
    Treat it as a value: made, handed over, read. *here* is filled in by :meth:`Delivery.route`."""

    everyone: bool = False
    people: tuple[str, ...] = ()
    group: str | None = None
    but: Session | None = None
    here: list[Session] | None = None  # this server's connections, as they were when the command arrived


def everyone(but: Session | None = None) -> Audience:
    return Audience(everyone=True, but=but)


def people(keys: Iterable[str], but: Session | None = None) -> Audience:
    return Audience(False, keys if type(keys) is tuple else tuple(keys), None, but)


def group(key: str, but: Session | None = None) -> Audience:
    return Audience(group=key, but=but)


class Delivery(Protocol):
    """Hands messages and events to the connections of an audience. See the module's docstring."""

    def route(self, audience: Audience) -> Audience:
        """Settle which connections here a message is for when its command arrives, not once it is stored:
        its inbox rows (and so its numbers) are decided then too, and a connection that logs in meanwhile
        gets it from its inbox replay instead. Other servers settle theirs when they hear of it."""
        ...

    def message(self, message: StoredMessage, stamp: str, audience: Audience) -> tuple[int, list[Session]]:
        """Deliver a stored message. Returns how many connections on this server it reached and the
        connections it was for (those whose login replay holds it for a moment included), for receipts."""
        ...

    def event(self, audience: Audience, kind: str, *params: str) -> int:
        """Tell an audience something (``ONLINE``, ``JOIN``, ``ALERT``, ...); how many connections here got it."""
        ...

    def disconnect(self, key: str, reason: str) -> int:
        """Close every connection of a person (KICK); how many were closed here."""
        ...


class LocalDelivery:
    """Delivery to the connections on this server.

    *mark_delivered* is told (account, first, last) when a message reaches an account's connection, so the
    next LOGIN starts after it; *drop* says why and hangs up one connection (``Core.drop``).
    """

    def __init__(
        self,
        registry: Registry,
        mark_delivered: Callable[[str, int, int], None],
        drop: Callable[[Session, str], None],
    ) -> None:
        self.registry = registry
        self.mark_delivered = mark_delivered
        self.drop = drop

    def route(self, audience: Audience) -> Audience:
        audience.here = self.connections(audience)
        return audience

    def connections(self, audience: Audience) -> list[Session]:
        """The connections here that an audience stands for, each once, without *but*."""
        registry, but, keys = self.registry, audience.but, audience.people
        if len(keys) == 1 and audience.group is None and not audience.everyone:  # the common case: one person
            devices = registry.here(keys[0])
            if len(devices) == 1:  # one device, often the sender's own (a DELIVERED for its other devices)
                return [] if devices[0] is but else [devices[0]]
            return [other for other in devices if other is not but]
        if audience.everyone:
            return [other for other in registry.sessions() if other is not but]
        found: list[Session] = []
        if audience.group is not None:
            found.extend(other for other in registry.members(audience.group) if other is not but)
        for key in keys:
            found.extend(other for other in registry.here(key) if other is not but)
        if audience.group is not None and audience.people:
            found = list(dict.fromkeys(found))  # someone both named and in the group gets it once
        return found

    def message(self, message: StoredMessage, stamp: str, audience: Audience) -> tuple[int, list[Session]]:
        """The hot loop: one shared tail per codec, a cached per-recipient head, two appends per recipient."""
        targets = audience.here if audience.here is not None else self.connections(audience)
        seqs = dict(message.seqs) if message.seqs else None
        urgent = message.urgent
        codec: Codec | None = None
        tails: dict[int, bytes] = {}  # by codec: rendered once each
        tail = b""
        head: Callable[[int], bytes] = bytes
        reached = 0
        delivered: dict[str, int] = {}
        for other in targets:
            if other.closing:
                continue
            if other.codec is not codec:  # nearly always the same codec as the one before
                codec = other.codec
                tail = tails.get(id(codec), b"")
                if not tail:
                    tail = tails[id(codec)] = codec.message_tail(message.id, stamp, message.sender, message.to,
                                                                 message.text)  # fmt: skip
                head = codec.urgent_head if urgent else codec.message_head
            account = other.account
            if seqs is not None and account is not None and account in seqs:
                seq = seqs[account]
                if other.held is not None:
                    other.held.append((seq, head(seq), tail))
                    continue
                delivered[account] = seq
            else:
                seq = other.seq + 1
                other.seq = seq
            send = other.send
            send(head(seq))
            send(tail)
            reached += 1
        for account, seq in delivered.items():  # only accounts with a connection here: the rest wait for LOGIN
            self.mark_delivered(account, seq, seq)  # coalesced by the backend
        return reached, targets

    def event(self, audience: Audience, kind: str, *params: str) -> int:
        codec: Codec | None = None
        data = b""
        reached = 0
        for other in self.connections(audience):
            if other.codec is not codec:
                codec = other.codec
                data = codec.event(kind, *params)
            other.send(data)
            reached += 1
        return reached

    def disconnect(self, key: str, reason: str) -> int:
        devices = list(self.registry.here(key))
        for other in devices:
            self.drop(other, reason)
        return len(devices)
