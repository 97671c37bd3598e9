"""What every chat feature shares: the people, groups and roles, storage, and how replies and events leave.

:class:`Core` holds the state (connections, groups, accounts, on-call roles, urgent messages waiting), the
two seams (the :class:`~bleeper.chat.registry.Registry` of names, group members and presence, and the
:class:`~bleeper.chat.delivery.Delivery` that takes messages and events to an audience's connections), and
the few operations every feature module needs: answer a command in order, deliver a stored message, audit.
Replies and events are rendered by each session's codec (protocol/codec.py), never here. The feature
modules (``chat/identity.py``,
``chat/messaging.py``, ...) are functions of a :class:`Core`; :class:`~bleeper.chat.hub.Hub` is the
:class:`Core` that assembles them into the dispatch table. Nothing here waits: storage is asked of the
:class:`~bleeper.chat.backend.Backend`, and a handler that needs its answer is an ``async def`` driven by
:func:`~bleeper.chat.flow.run`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from bleeper import __version__
from bleeper.chat.backend import Backend, Pending
from bleeper.chat.delivery import Audience, Delivery, LocalDelivery, everyone
from bleeper.chat.flow import run
from bleeper.chat.memory import MemoryBackend
from bleeper.chat.notify import Kind, NoNotifier, Notifier
from bleeper.chat.ratelimit import TokenBucket
from bleeper.chat.records import AuditEvent, StoredMessage
from bleeper.chat.registry import LocalRegistry, Registry
from bleeper.chat.roles import Roles
from bleeper.chat.session import Peer, Session
from bleeper.chat.urgent import UrgentDesk
from bleeper.protocol import codes
from bleeper.protocol.codec import LINE, Codec
from bleeper.protocol.wire import format_time

log = logging.getLogger("bleeper.events")
T = TypeVar("T")

MAX_IN_FLIGHT = 64  # messages a connection may have waiting for storage before its reading pauses


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-client limits and policies. A limit of 0 turns it off."""

    rate: float = 20.0  # commands per second, sustained
    burst: int = 60  # commands at once; a client this far in debt is flooding
    max_per_address: int = 100
    max_clients: int = 0
    ping_interval: float = 90.0  # seconds of silence before the server sends PING
    ping_timeout: float = 60.0  # seconds after a PING before a silent client is dropped
    log_messages: bool = False  # message text is patient data: keep it off the console by default
    auth: str = "open"  # "open": anyone may take a free name; "required": LOGIN first
    login_failures: int = 5  # failed logins before an account or address must wait
    login_lockout: float = 60.0  # seconds to wait after too many failures
    urgent_interval: float = 120.0  # seconds between alerts for an unacknowledged urgent message
    urgent_attempts: int = 3  # alerts (the delivery included) before it escalates


class Group:
    """A named group: its display name and the accounts that belong to it (stored, so they survive restarts).
    Who is in it now is the registry's (``registry.members``)."""

    __slots__ = ("accounts", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.accounts: set[str] = set()


class Core:
    """The chat state and the operations the features share. See the module's docstring."""

    def __init__(
        self,
        limits: HubLimits | None = None,
        *,
        backend: Backend | None = None,
        server_name: str = "bleeper",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        notifier: Notifier | None = None,
        registry: Registry | None = None,
        delivery: Callable[[Core], Delivery] | None = None,
    ) -> None:
        self.limits = limits or HubLimits()
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self.notifier: Notifier = notifier if notifier is not None else NoNotifier()  # push to offline accounts
        self.server_name = server_name
        self.clock = clock
        self.monotonic = monotonic
        self.sessions: set[Session] = set()  # every connection here, named or not
        self.registry: Registry = registry if registry is not None else LocalRegistry()
        # Told of each change to state every server must share (a standing row, a group membership): a
        # cluster's node passes it on to the others (cluster/node.py); one server has nobody to tell.
        self.shared: Callable[[str, tuple[str | None, ...]], None] = _nobody
        self.delivery: Delivery = delivery(self) if delivery is not None else self.local_delivery()
        self.groups: dict[str, Group] = {}  # '#' + name key -> group
        self.accounts: dict[str, str] = {}  # account key -> display name, for names that need LOGIN
        self.per_address: dict[str, int] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # account key or address -> (failures, last)
        self.ping_counter = 0
        self.urgent = UrgentDesk(self.limits.urgent_interval, self.limits.urgent_attempts)
        self.backups: dict[str, str] = {}  # person's name key -> their backup's, for escalation
        self.roles = Roles()
        self.delivered_marks: dict[str, int] = {}  # account key -> up to where its messages reached a connection
        self.started = monotonic()
        self.deliveries = 0  # messages handed to connections, for /metrics
        self.vital_signs: Callable[[], list[str]] = list  # the server adds its own lines to HEALTH
        self.verbs: dict[str, Verb] = {}  # command name -> what offers it (the hub fills this in)

    def local_delivery(self) -> LocalDelivery:
        """Delivery to this server's connections (what a cluster's delivery uses for its own part too)."""
        return LocalDelivery(self.registry, self.mark_delivered, self.drop)

    def keep(self, row: tuple[str, str, str | None]) -> Pending[None]:
        """Store a row of standing state (chat/standing.py) and share it."""
        self.shared("keep", row)
        return self.backend.keep(*row)

    def connect(self, peer: Peer, address: str, host: str | None = None, codec: Codec = LINE) -> Session | None:
        """Greet a new connection, speaking *codec*, or refuse it (and hang up) when a limit is reached."""
        limits = self.limits
        host = host if host is not None else address
        count = self.per_address.get(host, 0)
        if limits.max_clients and len(self.sessions) >= limits.max_clients:
            self._refuse(peer, codec, address, "server full", f"server full ({len(self.sessions)} active)")
            return None
        if limits.max_per_address and count >= limits.max_per_address:
            why = "too many connections from your address"
            self._refuse(peer, codec, address, why, f"{count} connections from {host}")
            return None
        now = self.monotonic()
        session = Session(peer, address, TokenBucket(limits.rate, limits.burst, now), now, codec)
        session.host = host
        self.per_address[host] = count + 1
        self.sessions.add(session)
        first = "LOGIN <name> <password>" if limits.auth == "required" else "NAME <your name>"
        self.reply(session, codes.GREETING, f"{self.server_name} Bleeper {__version__} ready; type HELP, then {first}")
        if log.isEnabledFor(logging.INFO):
            log.info(
                "connect %s (%d active)",
                address,
                len(self.sessions),
                extra={"event": "connect", "peer": address, "active": len(self.sessions)},
            )
        return session

    def _refuse(self, peer: Peer, codec: Codec, address: str, why: str, logged: str) -> None:
        """Say why, hang up, and log it: the caller returns no session."""
        peer.write(codec.reply(codes.UNAVAILABLE, f"{why}; try again later"))
        peer.close(f"refused: {why}")
        log.warning("refused %s: %s", address, logged,
                    extra={"event": "refused", "peer": address, "active": len(self.sessions)})  # fmt: skip

    def disconnect(self, session: Session, reason: str) -> None:
        """Forget a session however it ended: free its name, leave its groups, tell everyone.

        Called when the transport reports the loss, and straight away when the hub itself hangs up (QUIT,
        flood, ping timeout) so the name is free at once; the second call is a no-op.
        """
        if session not in self.sessions:
            return
        session.closing = True
        self.sessions.discard(session)
        host = session.host
        remaining = self.per_address.get(host, 1) - 1
        if remaining > 0:
            self.per_address[host] = remaining
        else:
            self.per_address.pop(host, None)
        if session.key is not None:
            last, left = self.registry.depart(session)
            for key in left:
                group = self.groups.get(key)
                if group is not None and not group.accounts and not self.registry.has_members(key):
                    del self.groups[key]
            if last:
                self.delivered_marks.pop(session.key, None)  # the backend keeps it; the next LOGIN reads it back
                if session.account is not None:
                    self.backend.account_gone(session.account)
                self.delivery.event(everyone(), "OFFLINE", session.name or "", reason)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "disconnect %s: %s (%d active)",
                session.label,
                reason,
                len(self.sessions),
                extra={
                    "event": "disconnect",
                    "who": session.label,
                    "peer": session.address,
                    "reason": reason,
                    "active": len(self.sessions),
                },
            )

    def drop(self, session: Session, reason: str) -> None:
        """Tell a client why, hang up, and forget it. Never called while iterating users or groups."""
        if session.closing:
            return
        session.closing = True
        session.send(session.codec.event("CLOSING", reason))
        session.peer.close(reason)
        self.disconnect(session, reason)

    def shutdown(self, reason: str = "server shutting down") -> None:
        for session in list(self.sessions):
            self.drop(session, reason)

    def keepalive(self) -> None:
        """PING clients that have been silent; drop those that stayed silent after a PING."""
        limits = self.limits
        if not limits.ping_interval:
            return
        now = self.monotonic()
        for session in list(self.sessions):
            if session.ping_sent is not None:
                if now - session.ping_sent >= limits.ping_timeout:
                    self.drop(session, "ping timeout: no answer from the client")
            elif now - session.last_active >= limits.ping_interval:
                self.ping_counter += 1
                session.ping_sent = now
                session.send(session.codec.event("PING", str(self.ping_counter)))

    def register(self, session: Session, name: str, key: str) -> None:
        """The connection goes by *name* from now on; everyone else hears of a person who came online."""
        session.name = name
        session.key = key
        if self.registry.arrive(session):
            self.delivery.event(everyone(but=session), "ONLINE", name)

    def mark_delivered(self, account: str, first: int, last: int) -> None:
        """Messages *first* to *last* reached one of the account's connections. The mark (where the next LOGIN
        starts) moves only over a run that begins at it: a live message that overtakes a backlog not yet
        replayed must not mark the backlog delivered. A message left below the mark is only sent again."""
        mark = self.delivered_marks.get(account, 0)
        if first <= mark + 1 <= last:
            self.delivered_marks[account] = last
            self.backend.mark_delivered(account, last)

    def reply(self, session: Session, code: int, text: str) -> None:
        """Answer the session's command with a code and words, in command order."""
        self.answer(session, session.codec.reply(code, text))

    def listing(self, session: Session, code: int, items: list[str], summary: str) -> None:
        """Answer with several items and a last line (WHO, HISTORY, ...), in command order."""
        self.answer(session, session.codec.listing(code, items, summary))

    def notice(self, session: Session, kind: str, *params: str) -> None:
        """An event tied to the session's command (DELIVERED after its 250), so in command order too."""
        self.answer(session, session.codec.event(kind, *params))

    def answer(self, session: Session, data: bytes) -> None:
        """Rendered bytes for this session's command: straight out, or after the replies still waiting for
        storage."""
        slots = session.slots
        if not slots:
            session.send(data)
        elif slots[-1][0]:
            slots[-1][1].append(data)
        else:
            slots.append([True, [data]])

    def release(self, session: Session) -> None:
        slots = session.slots
        while slots and slots[0][0]:
            for data in slots.pop(0)[1]:
                session.send(data)
        if not slots and session.when_drained is not None:
            drained, session.when_drained = session.when_drained, None
            drained()

    def deliver(self, message: StoredMessage, stamp: str, audience: Audience) -> tuple[int, list[Session]]:
        """Hand a stored message to its audience (see :meth:`Delivery.message`), counted for /metrics."""
        reached, targets = self.delivery.message(message, stamp, audience)
        self.deliveries += reached
        return reached, targets

    def exists(self, key: str) -> bool:
        """Whether a name stands for somebody: a person online, or an account."""
        return self.registry.online(key) or key in self.accounts

    def shown(self, key: str) -> str:
        """A person's name as written: by the person online, else by their account, else the key."""
        return self.registry.shown(key) or self.accounts.get(key, key)

    def notify_offline(self, keys: Iterable[str], kind: Kind, message_id: int, sender: str) -> None:
        """Push to the accounts among *keys* with no connection (here or, in a cluster, anywhere): those
        connected have the message (or the ALERT) on screen already; people without an account cannot subscribe."""
        if not self.notifier.enabled:
            return
        for key in keys:
            if key in self.accounts and not self.registry.online(key):
                self.notifier.offline(key, kind, message_id, sender)

    def audit(self, kind: str, actor: str, subject: str, **detail: str | int) -> None:
        """Record in the audit log (through the backend, in order with the messages)."""
        event = AuditEvent(int(self.clock() * 1000), kind, actor, subject, tuple(sorted(detail.items())))
        self.backend.audit(event)

    def now(self) -> str:
        return format_time(self.clock())


def _nobody(kind: str, values: tuple[str | None, ...]) -> None:
    """Shared state on one server: nobody else to tell."""


Handler = Callable[[Core, Session, Any], "Pending[object] | None"]


@dataclass(frozen=True, slots=True)
class Verb:
    """A command as the feature that owns it offers it: which parsed command (protocol/commands.py) its
    handler takes, HELP's one line on what it does, and whether a name must be chosen first. Each feature
    module lists its ``VERBS``; the hub's dispatch table and HELP are assembled from them."""

    name: str  # as the grammar names it: SAY, TELL, URGENT (a TELL that must be acknowledged), ...
    kind: type
    handler: Handler
    summary: str
    needs_name: bool = True


def flowing(handler: Callable[[Core, Session, Any], Coroutine[Any, Any, None]]) -> Handler:
    """An ``async def`` handler as the dispatch table wants it: run until it waits for storage (see
    chat/flow.py), answered ``500`` should it fail, so the command still gets its one reply."""

    def start(hub: Core, session: Session, command: Any) -> Pending[object] | None:
        def failed(exc: BaseException) -> None:
            hub.reply(session, codes.SERVER_ERROR, "internal error; the command was not carried out")

        return run(handler(hub, session, command), failed)

    return start


async def known(pending: Pending[T]) -> T | None:
    """The answer, or None after logging why storage could not give it (the caller answers the client)."""
    try:
        return await pending
    except Exception as exc:
        log.error("storage request failed: %s", exc)
        return None
