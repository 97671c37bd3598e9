"""``ChatClient``: an asyncio client for the Bleeper protocol.

Replies are matched to the commands that caused them by order (the server answers every command exactly once,
in order), so many tasks may issue commands at the same time. Events arrive through :meth:`ChatClient.events`.
After a lost connection the client reconnects with exponential backoff (jittered, so a thousand clients of a
server that died do not come back at once), to the next of its *servers* first (a cluster's other nodes),
takes its name again (or logs in and catches up with SYNC) and rejoins its groups, reporting each step as a :class:`Disconnected` /
:class:`Connected` event. Groups joined through :meth:`join` or a raw ``JOIN`` command are both remembered.

An account's messages carry sequence numbers, and the client hands each number on once: the server may send
a message again after a crash (its "delivered" mark is written about once a second), and a SYNC may overlap
what already arrived; such repeats are dropped and counted in :attr:`ChatClient.repeats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl as ssl_module
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from bleeper.client.errors import (
    BleeperError,
    CommandError,
    ConnectionClosed,
    InvalidName,
    LoginFailed,
    NameTaken,
    NotConnected,
    RateLimited,
)
from bleeper.client.events import ClientEvent, Connected, Disconnected, GroupInfo, Person, Sent
from bleeper.framework.connection import Connection, Endpoint
from bleeper.protocol import codes
from bleeper.protocol.incoming import Event, Message, ProtocolViolation, Reply, ReplyAssembler

log = logging.getLogger("bleeper.client")

State = Literal["new", "connecting", "connected", "reconnecting", "closed"]
_CLOSED = object()
REJOIN_TRIES = 5  # a group refused with "slow down" is tried again after 0.5, 1, 2, 4 s, then given up


class ChatClient(Endpoint):
    """One connection to a Bleeper server. Use ``async with ChatClient(host, port) as client:`` or call
    :meth:`connect` and :meth:`quit` yourself. *servers*, a list of ``(host, port)``, replaces *host* and
    *port*: the nodes of a cluster, tried in turn (see :func:`parse_servers`)."""

    max_line = 65536

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8090,
        *,
        ssl: ssl_module.SSLContext | None = None,
        reconnect: bool = True,
        backoff: tuple[float, float] = (0.25, 30.0),
        timeout: float = 10.0,
        servers: Sequence[tuple[str, int]] = (),
    ) -> None:
        super().__init__()
        self.servers = list(servers) or [(host, port)]
        self._next = 0  # which of the servers to try first
        self.host, self.port = self.servers[0]
        self.ssl = ssl
        self.reconnect = reconnect
        self.backoff = backoff
        self.timeout = timeout
        self.name: str | None = None
        self.logged_in = False
        self.last_seq = 0  # every message up to this number has been seen (accounts: across connections)
        self._ahead: set[int] = set()  # numbers seen beyond a gap, waiting for the gap to fill
        self.repeats = 0  # messages dropped because their number had been seen (replayed after a crash, say)
        self._fresh = 0  # messages handed on so far, to count those that arrive during a reconnect
        self._gap_sync: asyncio.Task[None] | None = None
        self.groups: set[str] = set()
        self._password: str | None = None
        self._back: asyncio.Event = asyncio.Event()
        self.state: State = "new"
        self.greeting: Reply | None = None
        self._conn: Connection | None = None
        self._pending: deque[asyncio.Future[Reply]] = deque()
        self._assembler = ReplyAssembler()
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._closing = False
        self._closed_waiter: asyncio.Future[str] | None = None
        self._reconnector: asyncio.Task[None] | None = None

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    # -- connecting ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> Reply:
        """Open the connection and return the server's greeting (220)."""
        self.state = "connecting"
        greeting = await self._open()
        self.state = "connected"
        self._events.put_nowait(Connected(self.server, None, again=False))
        return greeting

    async def _open(self) -> Reply:
        """Connect to the first of the servers that answers, from the one after the last tried."""
        failures: list[str] = []
        for _ in range(len(self.servers)):
            self.host, self.port = self.servers[self._next]
            self._next = (self._next + 1) % len(self.servers)  # after a loss, the next one is tried first
            try:
                greeting = await self._open_one()
            except (ConnectionClosed, CommandError, TimeoutError) as exc:
                self._pending.clear()  # a greeting that never came must not take the next server's
                if self._conn is not None and not self._conn.closed:
                    self._conn.close("no greeting")
                if len(self.servers) == 1:
                    raise
                failures.append(str(exc) or f"no answer from {self.server}")
                continue
            self._next = (self._next - 1) % len(self.servers)  # stay with this one while it answers
            return greeting
        raise ConnectionClosed("no server could be reached: " + "; ".join(failures))

    async def _open_one(self) -> Reply:
        self._loop = loop = asyncio.get_running_loop()
        self._assembler = ReplyAssembler()
        waiter: asyncio.Future[Reply] = loop.create_future()
        self._pending.append(waiter)
        self._closed_waiter = loop.create_future()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(self), self.host, self.port, ssl=self.ssl),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._pending.clear()
            raise ConnectionClosed(f"cannot reach {self.server}: {_describe(exc)}") from exc
        self._conn = conn
        greeting = await asyncio.wait_for(waiter, self.timeout)
        if greeting.code != codes.GREETING:
            conn.close("refused")
            raise CommandError(greeting)
        self.greeting = greeting
        return greeting

    # -- commands -----------------------------------------------------------------------------------------

    async def command(self, line: str) -> Reply:
        """Send one protocol line and return its reply, whatever the code. While the library reconnects, only
        its own commands (LOGIN or NAME, SYNC, JOIN) go out: anything else would reach the new connection
        before it knows who this is, so it raises :class:`NotConnected` (messages wait and are sent after)."""
        conn = self._conn
        restoring = self.state == "reconnecting" and asyncio.current_task() is self._reconnector
        if conn is None or conn.closed or not (self.state == "connected" or restoring):
            raise NotConnected(f"not connected to {self.server} (state: {self.state})")
        if "\n" in line or "\r" in line:
            raise ValueError("a command is one line: it cannot contain CR or LF")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending.append(future)
        conn.send(line)
        reply = await future
        self._note_membership(reply)
        return reply

    def _note_membership(self, reply: Reply) -> None:
        """Remember groups joined or left by any command (JOIN or LEAVE under any alias: only they answer 203
        and 204), so a reconnect rejoins what the user sees."""
        if reply.code == codes.JOINED:
            self.groups.add(reply.fields[0])
        elif reply.code == codes.LEFT:
            self.groups = {g for g in self.groups if g.lower() != reply.fields[0].lower()}

    async def _checked(self, line: str) -> Reply:
        reply = await self.command(line)
        if reply.ok:
            return reply
        if reply.code == codes.NAME_TAKEN:
            raise NameTaken(reply)
        if reply.code == codes.INVALID_NAME:
            raise InvalidName(reply)
        if reply.code == codes.SLOW_DOWN:
            raise RateLimited(reply)
        raise CommandError(reply)

    async def register(self, name: str) -> Reply:
        """Take a screen name. Raises :class:`NameTaken` (with ``suggestion``) or :class:`InvalidName`."""
        reply = await self._checked(f"NAME {name}")
        self.name = reply.fields[0]
        return reply

    async def login(self, name: str, password: str) -> Reply:
        """Sign in to an account; messages that waited for you follow as events. Raises :class:`LoginFailed`."""
        reply = await self.command(f"LOGIN {name} {password}")
        if reply.code == codes.LOGIN_FAILED:
            raise LoginFailed(reply)
        if not reply.ok:
            raise RateLimited(reply) if reply.code == codes.SLOW_DOWN else CommandError(reply)
        self.name = reply.fields[0]
        self.logged_in = True
        self._password = password
        at = _LOGGED_IN_AT.search(reply.text)
        if at is not None:  # where the account's numbers stand: a reconnect SYNCs from here, not from 0
            self._skip_to(int(at[1]))
        if " 0 more" not in reply.text:  # a long backlog: fetch the rest
            await self.sync()
        return reply

    async def sync(self, since: int | None = None) -> Reply:
        """Ask again for every message after number *since* (default: the last one seen)."""
        reply = await self._checked(f"SYNC {self.last_seq if since is None else since}")
        while reply.ok and not reply.text.endswith("; 0 more"):
            reply = await self._checked(f"SYNC {reply.fields[0]}")
        return reply

    async def history(self, conversation: str, count: int = 20) -> list[str]:
        """Recent messages of a ``#group`` or with a person: ``<id> <time> <from> <to> <text>`` lines."""
        return list((await self._checked(f"HISTORY {conversation} {count}")).items)

    async def say(self, text: str) -> Sent:
        return await self._send_message("SAY", text)

    async def tell(self, to: str | list[str] | tuple[str, ...], text: str) -> Sent:
        """Send to a person, several people (a list) or a ``#group``."""
        target = to if isinstance(to, str) else ",".join(to)
        return await self._send_message(f"TELL {target}", text)

    async def _send_message(self, command: str, text: str) -> Sent:
        """Logged in, a message carries a client id: if the connection drops before the server confirms, it is
        sent again after the reconnect and the server stores it once."""
        if not self.logged_in:
            return _sent(await self._checked(f"{command} {text}"))
        line = f"ID {uuid.uuid4().hex} {command} {text}"
        deadline = asyncio.get_running_loop().time() + self.backoff[1] * 4
        while True:
            try:
                return _sent(await self._checked(line))
            except (ConnectionClosed, NotConnected):
                if not self.reconnect or asyncio.get_running_loop().time() > deadline:
                    raise
                self._back.clear()
                await asyncio.wait_for(self._back.wait(), max(0.1, deadline - asyncio.get_running_loop().time()))

    async def join(self, group: str) -> Reply:
        return await self._checked(f"JOIN {group}")

    async def leave(self, group: str) -> Reply:
        return await self._checked(f"LEAVE {group}")

    async def who(self, group: str | None = None) -> list[Person]:
        reply = await self._checked(f"WHO {group}" if group else "WHO")
        return [_person(item) for item in reply.items]

    async def list_groups(self) -> list[GroupInfo]:
        reply = await self._checked("GROUPS")
        found = []
        for item in reply.items:
            name, _, members = item.partition(" members=")
            found.append(GroupInfo(name, int(members or 0)))
        return found

    async def help(self, topic: str | None = None) -> list[str]:
        reply = await self._checked(f"HELP {topic}" if topic else "HELP")
        return list(reply.items)

    async def ping(self, token: str = "") -> Reply:
        return await self._checked(f"PING {token}".rstrip())

    async def quit(self, reason: str = "", timeout: float = 5.0) -> Reply:
        """Say goodbye: returns the server's 221 once the server has closed the connection."""
        self._closing = True
        self.reconnect = False
        try:
            reply = await asyncio.wait_for(self._checked(f"QUIT {reason}".rstrip()), timeout)
            if self._closed_waiter is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._closed_waiter), timeout)
            return reply
        finally:
            self._shutdown("quit")

    async def close(self) -> None:
        """Quit politely if still connected, else just stop."""
        if self.state == "connected" and self._conn is not None and not self._conn.closed:
            with contextlib.suppress(CommandError, ConnectionClosed, NotConnected, TimeoutError):
                await self.quit()
        self._shutdown("closed by the client")

    def _shutdown(self, reason: str) -> None:
        self._closing = True
        self.reconnect = False
        if self._reconnector is not None:
            self._reconnector.cancel()
        if self._conn is not None and not self._conn.closed:
            self._conn.close(reason)
        if self.state != "closed":
            self.state = "closed"
            self._events.put_nowait(_CLOSED)

    # -- events -------------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event, in order, until the client is closed."""
        while True:
            item = await self._events.get()
            if item is _CLOSED:
                self._events.put_nowait(_CLOSED)  # let other readers stop too
                return
            yield item  # type: ignore[misc]

    async def next_event(self, timeout: float | None = None) -> ClientEvent:
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is _CLOSED:
            self._events.put_nowait(_CLOSED)
            raise ConnectionClosed("the client is closed")
        return item  # type: ignore[return-value]

    # -- framework hooks ----------------------------------------------------------------------------------

    def on_message(self, conn: Connection, line: str) -> None:
        try:
            item = self._assembler.feed(line)
        except ProtocolViolation as exc:
            log.warning("ignoring a malformed line from %s: %s", self.server, exc)
            return
        if item is None:
            return
        if isinstance(item, Reply):
            while self._pending:
                future = self._pending.popleft()
                if not future.done():
                    future.set_result(item)
                    return
            log.warning("reply with no command waiting for it: %s %s", item.code, item.text)
            return
        if isinstance(item, Event) and item.kind == "PING":
            conn.send(f"PONG {item.rest(0)}".rstrip())
        if isinstance(item, Message):
            if not self._accept(item.seq):
                self.repeats += 1  # already seen (replayed by LOGIN or SYNC after a reconnect or a crash)
                return
            self._fresh += 1
        self._events.put_nowait(item)

    def _accept(self, seq: int) -> bool:
        """Track which message numbers were seen; ask for a gap to be filled when one appears."""
        if not self.logged_in:
            self.last_seq = max(self.last_seq, seq)
            return True
        if seq <= self.last_seq or seq in self._ahead:
            return False
        if seq == self.last_seq + 1:
            self._skip_to(seq)
        else:
            self._ahead.add(seq)
            if self._gap_sync is None or self._gap_sync.done():
                self._gap_sync = asyncio.ensure_future(self._fill_gap())
        return True

    def _skip_to(self, seq: int) -> None:
        """Everything up to *seq* has been seen, or is gone for good."""
        self.last_seq = max(self.last_seq, seq)
        if self._ahead:
            self._ahead = {ahead for ahead in self._ahead if ahead > self.last_seq}
        while self.last_seq + 1 in self._ahead:
            self._ahead.discard(self.last_seq + 1)
            self.last_seq += 1

    async def _fill_gap(self) -> None:
        await asyncio.sleep(0.2)  # a replay in progress usually fills it by itself
        if self._ahead and self.state == "connected":
            with contextlib.suppress(BleeperError):
                await self._catch_up()

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        if conn is not self._conn:
            return
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(reason)
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(ConnectionClosed(reason))
        if self._closing:
            self._shutdown(reason)
            return
        if self.state == "connecting" or (self._reconnector is not None and not self._reconnector.done()):
            return  # an attempt to connect failed: whoever made it tries the next server, or says so
        retrying = self.reconnect
        self._events.put_nowait(Disconnected(reason, retrying))
        if retrying:
            self.state = "reconnecting"
            self._reconnector = asyncio.ensure_future(self._reconnect_loop())
        else:
            self._shutdown(reason)

    async def _reconnect_loop(self) -> None:
        low, high = self.backoff
        delay = low
        self._next = (self._next + 1) % len(self.servers)  # the server just lost is tried last
        while self.reconnect:
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(high, delay * 2)
            fresh_before = self._fresh
            caught_up: int | None = None
            gone: str | None = None
            lost: list[str] = []
            try:
                await self._open()
                if self.logged_in and self.name is not None and self._password is not None:
                    reply = await self.command(f"LOGIN {self.name} {self._password}")
                    if not reply.ok:
                        raise CommandError(reply)
                    gone = await self._catch_up()
                    caught_up = self._fresh - fresh_before
                elif self.name is not None:
                    await self._reclaim_name(self.name)
                for group in sorted(self.groups):
                    if not await self._rejoin(group):
                        lost.append(group)
            except (BleeperError, TimeoutError, OSError) as exc:  # NotConnected too: the node died mid-way
                log.info("reconnect to %s failed: %s", self.server, exc)
                if self._conn is not None and not self._conn.closed:
                    self._conn.close("reconnect failed")
                continue
            self.groups -= set(lost)
            self.state = "connected"
            self._back.set()
            self._events.put_nowait(Connected(self.server, self.name, True, caught_up, gone, tuple(lost)))
            return

    async def _rejoin(self, group: str) -> bool:
        """JOIN a group again after a reconnect. "Slow down" (many groups at once against the server's rate
        limit) is waited out, with longer pauses each time, since the bucket refills with time; any other
        refusal means the group is lost."""
        pause = 0.5
        for attempt in range(REJOIN_TRIES):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
            reply = await self.command(f"JOIN {group}")
            if reply.code != codes.SLOW_DOWN:
                return reply.code == codes.JOINED
        return False

    async def _catch_up(self) -> str | None:
        """SYNC whatever arrived while we were away, each message once (repeats are dropped). Returns the
        server's words if some were removed before they could be delivered (410), else None."""
        try:
            await self.sync()
        except CommandError as exc:
            if exc.reply.code != codes.GONE:
                raise
            self._skip_to(int(exc.reply.fields[0]) - 1)  # those are gone for good: wait for them no longer
            await self.sync()
            return exc.reply.text
        return None

    async def _reclaim_name(self, name: str) -> None:
        reply = await self.command(f"NAME {name}")
        if reply.code == codes.NAME_TAKEN:
            raise NameTaken(reply)  # the server may not yet have noticed our old connection: retry later
        if not reply.ok:
            raise CommandError(reply)


_LOGGED_IN_AT = re.compile(r" logged in at (\d+);")


def _sent(reply: Reply) -> Sent:
    """``<id> <time> reached <n>`` and maybe more after a ``;`` (urgent, or "already sent" for a message
    resent with its ID)."""
    msg_id, stamp, _, reached = reply.fields[:4]
    return Sent(int(msg_id), stamp, int(reached.rstrip(";")))


def _person(item: str) -> Person:
    item, _, note = item.partition(" note=")  # the note is last and may hold spaces
    name, *pairs = item.split(" ")
    groups: tuple[str, ...] = ()
    extra = [("note", note)] if note else []
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key == "groups":
            groups = tuple(value.split(","))
        else:
            extra.append((key, value))
    return Person(name, groups, tuple(sorted(extra)))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, and on this port?)"
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return f"its certificate is not trusted ({exc.verify_message}); pass --ca with the CA that signed it"
    if isinstance(exc, ssl_module.SSLError):
        return f"TLS failed ({exc.reason or exc}); is this the server's TLS port?"
    return str(exc) or type(exc).__name__


__all__ = ["ChatClient", "Message"]


def parse_servers(text: str, default_port: int = 8090) -> list[tuple[str, int]]:
    """``host:port,host2:port,[::1]:port`` (a port may be left out) as ``(host, port)`` pairs; ValueError
    with the reason when one is not an address."""
    servers: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        found = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s\[\]]+)(?::(\d+))?", item)
        if found is None:
            raise ValueError(f"{item!r} is not host:port (write [::1]:8090 for an IPv6 address)")
        host = found.group(1) or found.group(3)
        port = int(found.group(2) or found.group(4) or default_port)
        if not 0 < port < 65536:
            raise ValueError(f"{item!r}: port {port} is out of range")
        servers.append((host, port))
    if not servers:
        raise ValueError("no server given: write host:port[,host:port]")
    return servers
