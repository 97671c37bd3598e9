"""The client base: one connection to a line-based server, with the same hooks as the server."""

from __future__ import annotations

import asyncio
import ssl as ssl_module

from bleeper.framework.connection import Connection, Endpoint
from bleeper.protocol.framing import DEFAULT_MAX_LINE


class Client(Endpoint):
    """Subclass and override ``on_connect``, ``on_message``, ``on_disconnect``; then ``await connect()``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl_module.SSLContext | None = None,
        max_line: int = DEFAULT_MAX_LINE,
    ) -> None:
        super().__init__()
        self.host = host
        self.port = port
        self.ssl = ssl
        self.max_line = max_line
        self.connection: Connection | None = None
        self._gone: asyncio.Future[str] | None = None

    async def connect(self) -> Connection:
        self._loop = asyncio.get_running_loop()
        self._gone = self._loop.create_future()
        _, conn = await self._loop.create_connection(
            lambda: _ClientConnection(self), self.host, self.port, ssl=self.ssl
        )
        self.connection = conn
        return conn

    def send(self, line: str) -> None:
        if self.connection is None:
            raise RuntimeError("not connected: call connect() first")
        self.connection.send(line)

    def close(self, reason: str = "closed by client") -> None:
        if self.connection is not None:
            self.connection.close(reason)

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; returns the reason."""
        if self._gone is None:
            raise RuntimeError("not connected")
        return await self._gone

    def _disconnected(self, reason: str) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(reason)


class _ClientConnection(Connection):
    __slots__ = ()

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self._lost
        super().connection_lost(exc)
        if first:
            client = self.endpoint
            assert isinstance(client, Client)
            client._disconnected(self._close_reason or "connection closed by server")
