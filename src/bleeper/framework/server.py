"""The server base: listen, track connections, call hooks, stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl as ssl_module
from collections.abc import Callable

from bleeper.framework.connection import CLOSE_GRACE, DEFAULT_SEND_BUFFER, Connection, Endpoint
from bleeper.framework.runner import run as run_loop
from bleeper.protocol.framing import DEFAULT_MAX_LINE

log = logging.getLogger("bleeper.framework")


class Server(Endpoint):
    """Subclass and override ``on_start``, ``on_connect``, ``on_message``, ``on_invalid``, ``on_disconnect``,
    ``on_stop``. Call :meth:`run` from a script, or ``await start()`` / ``await stop()`` from async code."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8090,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_send_buffer: int = DEFAULT_SEND_BUFFER,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.max_line = max_line
        self.max_send_buffer = max_send_buffer
        self.ssl = ssl
        self.backlog = backlog
        self.connections: set[Connection] = set()
        self._servers: list[asyncio.Server] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._stopped = asyncio.Event()
        self._stopping = False
        self._drained: asyncio.Event | None = None

    # Hooks -------------------------------------------------------------------------------------------

    async def on_start(self) -> None:
        """The listener is open (``self.addresses`` says where); set up what the server needs."""

    async def on_stop(self) -> None:
        """The server is stopping: tell clients, save state. Connections still open are closed afterwards."""

    # Lifecycle ---------------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Stopping has begun: listeners on other transports (the WebSocket) refuse newcomers too."""
        return self._stopping

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Where the server listens (useful with port 0)."""
        found = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                found.append((str(name[0]), int(name[1])))
        return found

    def _connection_made(self, conn: Connection) -> None:
        self.connections.add(conn)

    def _connection_gone(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if not self.connections and self._drained is not None:
            self._drained.set()

    def _protocol(self) -> Connection:
        return _ServerConnection(self)

    async def start(self) -> None:
        """Open the listener and run ``on_start``."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await self._loop.create_server(
            self._protocol, self.host, self.port, ssl=self.ssl, backlog=self.backlog, reuse_address=True
        )
        self._servers.append(server)
        try:
            await self.on_start()
        except BaseException:
            for opened in self._servers:  # a half-started server must not keep listening
                opened.close()
            self._servers.clear()
            raise

    async def add_listener(
        self,
        host: str,
        port: int,
        ssl: ssl_module.SSLContext | None = None,
        *,
        kind: str = "line",
        max_line: int | None = None,
    ) -> list[tuple[str, int]]:
        """Listen on another address too (a TLS port beside the plain one, an IRC port); returns where. Its
        connections carry *kind* (``conn.kind``) and frame lines of up to *max_line* bytes."""
        loop = self._loop or asyncio.get_running_loop()
        server = await loop.create_server(lambda: _ServerConnection(self, kind, max_line), host, port, ssl=ssl,
                                          backlog=self.backlog, reuse_address=True)  # fmt: skip
        self._servers.append(server)
        return [(str(sock.getsockname()[0]), int(sock.getsockname()[1])) for sock in server.sockets]

    def every(self, seconds: float, callback: Callable[[], None]) -> None:
        """Call *callback* every *seconds* until the server stops (one timer, not one per connection)."""
        loop = self._loop or asyncio.get_running_loop()

        def tick() -> None:
            if self._stopping:
                return
            try:
                callback()
            except Exception:
                log.exception("periodic task %r failed", callback)
            self._timers.append(loop.call_later(seconds, tick))

        self._timers.append(loop.call_later(seconds, tick))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, run ``on_stop``, let connections drain for up to *grace* seconds, then cut them."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        for timer in self._timers:
            timer.cancel()
        for server in self._servers:
            server.close()
        try:
            await self.on_stop()
        finally:
            for conn in list(self.connections):
                conn.close("server shutting down")
            if self.connections:
                self._drained = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), min(grace, CLOSE_GRACE))
            for conn in list(self.connections):
                conn.abort("server shutting down")
            await asyncio.sleep(0)
            for server in self._servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 1.0)
            self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Start, run until SIGINT/SIGTERM (or :meth:`stop`), then stop cleanly."""
        await self.start()
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, wake.set)
        waiter = asyncio.ensure_future(self._stopped.wait())
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({waiter, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            waker.cancel()
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        await self.stop()

    def run(self, *, use_uvloop: bool = True) -> None:
        """Serve until interrupted; the blocking entry point for scripts."""
        run_loop(self.serve(), use_uvloop=use_uvloop)


class _ServerConnection(Connection):
    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self.endpoint
        assert isinstance(server, Server)
        server._connection_made(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost:
            server = self.endpoint
            assert isinstance(server, Server)
            server._connection_gone(self)
        super().connection_lost(exc)
