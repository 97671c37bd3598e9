"""One TCP connection: framing in, coalesced and bounded writes out."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import Any, cast

from bleeper.protocol.framing import DEFAULT_MAX_LINE, FramingError, LineFramer

log = logging.getLogger("bleeper.framework")

DEFAULT_SEND_BUFFER = 512 * 1024
CLOSE_GRACE = 10.0  # seconds a closing connection may take to drain before it is aborted

_running: set[asyncio.Future[None]] = set()  # handler tasks, referenced until done


class Endpoint:
    """What a connection reports to: a server or a client. Holds the per-turn write scheduler.

    Writes made during one event-loop turn are joined and handed to each transport once, at the end of the
    turn, so a burst of messages to one peer costs one system call instead of one per message.
    """

    max_line: int = DEFAULT_MAX_LINE
    max_send_buffer: int = DEFAULT_SEND_BUFFER

    def __init__(self) -> None:
        self.transport_writes = 0  # system-level writes handed to transports: shows the coalescing at work
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # Hooks -------------------------------------------------------------------------------------------

    def on_connect(self, conn: Connection) -> None:
        """A connection is ready; ``conn.send`` works from here on."""

    def on_message(self, conn: Connection, line: str) -> Awaitable[None] | None:
        """A complete line arrived. Return an awaitable to hold back this connection's next lines until
        it finishes (replies stay in order); other connections carry on meanwhile."""
        return None

    def on_invalid(self, conn: Connection, error: FramingError) -> None:
        """A line was too long or not UTF-8; it has been discarded."""
        conn.send(f"error: {type(error).__name__}")

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        """The connection is gone, for whatever reason; it will not send or receive again."""

    # Write scheduling ---------------------------------------------------------------------------------

    def _schedule(self, conn: Connection) -> None:
        self._dirty.append(conn)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = self._loop or asyncio.get_running_loop()
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty = self._dirty
        self._dirty = []
        for conn in dirty:
            conn.flush()


class Connection(asyncio.Protocol):
    """A connection's state and its write path. Application state goes in :attr:`state`."""

    __slots__ = (
        "_close_reason",
        "_closed",
        "_held",
        "_lost",
        "_pending",
        "_queued",
        "address",
        "endpoint",
        "framer",
        "host",
        "kind",
        "state",
        "transport",
    )

    def __init__(self, endpoint: Endpoint, kind: str = "line", max_line: int | None = None) -> None:
        """*kind*: the protocol its listener speaks ("line", "irc"), for the endpoint to choose a codec by;
        *max_line*: that protocol's longest line, if not the endpoint's."""
        self.endpoint = endpoint
        self.kind = kind
        self.framer = LineFramer(max_line or endpoint.max_line)
        self.transport: asyncio.Transport | None = None
        self.address = "?"
        self.host = "?"
        self.state: Any = None
        self._pending: list[bytes] = []
        self._queued = 0  # bytes waiting here plus, as of the last flush, in the transport
        self._closed = False
        self._lost = False
        self._close_reason: str | None = None
        self._held: list[str | FramingError] | None = None  # lines waiting behind an async handler

    # Writing ------------------------------------------------------------------------------------------

    def send(self, line: str) -> None:
        """Queue one line of text (CRLF is added)."""
        self.write((line + "\r\n").encode())

    def write(self, data: bytes) -> None:
        """Queue bytes for the end of this event-loop turn. Never blocks; drops the connection on overflow."""
        if self._closed:
            return
        pending = self._pending
        if not pending:
            self.endpoint._schedule(self)
        pending.append(data)
        self._queued += len(data)
        if self._queued > self.endpoint.max_send_buffer:
            self._check_overflow()

    def flush(self) -> None:
        """Hand queued bytes to the transport now."""
        pending = self._pending
        transport = self.transport
        if not pending or transport is None:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if self._lost:
            return
        transport.write(data)
        self.endpoint.transport_writes += 1
        self._queued = transport.get_write_buffer_size()
        if self._queued > self.endpoint.max_send_buffer:
            self.abort("send buffer full: the client is not reading")

    def _check_overflow(self) -> None:
        transport = self.transport
        in_transport = transport.get_write_buffer_size() if transport is not None else 0
        self._queued = sum(map(len, self._pending)) + in_transport
        if self._queued > self.endpoint.max_send_buffer:
            self.abort("send buffer full: the client is not reading")

    # Closing ------------------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Bytes waiting to be sent (here, and in the transport as of the last flush)."""
        return self._queued

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, reason: str = "closed by server") -> None:
        """Send what is queued, then hang up.

        A lingering close: the write side is shut first (FIN) and input is discarded until the peer hangs up,
        so a peer still sending does not get a reset that would destroy our last lines before it reads
        them. A peer that neither reads nor closes is aborted after a grace period.
        """
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._close_reason = reason
        transport = self.transport
        if transport is None or self._lost:
            return
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except (OSError, RuntimeError):
                transport.close()
        else:
            transport.close()
        loop = self.endpoint._loop or asyncio.get_running_loop()
        loop.call_later(CLOSE_GRACE, self._abort_if_open)

    def abort(self, reason: str) -> None:
        """Hang up at once, discarding anything queued."""
        if self._lost:
            return
        self._pending.clear()
        if self._close_reason is None or not self._closed:
            self._close_reason = reason
        self._closed = True
        if self.transport is not None:
            self.transport.abort()

    def _abort_if_open(self) -> None:
        if not self._lost and self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.host = str(peer[0])
            self.address = f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
        _tune_socket(transport.get_extra_info("socket"))
        self.endpoint.on_connect(self)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        items = self.framer.feed(data)
        if self._held is not None:
            self._held.extend(items)
            return
        self._process(items, 0)

    def _process(self, items: list[str | FramingError], start: int) -> None:
        endpoint = self.endpoint
        for index in range(start, len(items)):
            if self._closed:
                return
            item = items[index]
            if type(item) is str:
                pending = endpoint.on_message(self, item)
                if pending is not None:
                    self._hold(pending, items[index + 1 :])
                    return
            else:
                endpoint.on_invalid(self, item)  # type: ignore[arg-type]

    def _hold(self, pending: Awaitable[None], rest: list[str | FramingError]) -> None:
        """Keep this connection's order while an async handler runs: stop reading, queue the rest."""
        self._held = rest
        if self.transport is not None:
            self.transport.pause_reading()
        future = asyncio.ensure_future(pending)  # a future stays itself; a coroutine becomes a task
        if future is not pending:
            _running.add(future)
            future.add_done_callback(_running.discard)
        if future.done():
            self._resume(future)
        else:
            future.add_done_callback(self._resume)

    def _resume(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("message handler failed for %s", self.address, exc_info=future.exception())
        held = self._held or []
        self._held = None
        if self._lost:
            return
        self._process(held, 0)
        if self._held is None and self.transport is not None and not self._closed:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        self.flush()
        if self._close_reason is None:
            self._close_reason = "client closed the connection"
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closed = True
        self._pending.clear()
        reason = self._close_reason or (f"connection lost: {exc}" if exc else "connection closed by client")
        self.endpoint.on_disconnect(self, reason)

    def __repr__(self) -> str:
        return f"<Connection {self.address}>"


def _tune_socket(sock: socket.socket | None) -> None:
    """Detect dead peers in the kernel too: TCP keepalive, and a cap on unacknowledged data."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 15)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 120_000)
    except OSError:  # not a TCP socket (tests over socketpair, unix sockets)
        pass
