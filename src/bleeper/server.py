"""The chat server: the framework's TCP transport wired to the chat hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import Awaitable

from bleeper import __version__
from bleeper.chat import Hub, HubLimits, Session
from bleeper.config import ServeConfig
from bleeper.framework import Connection, Server
from bleeper.framework.runner import loop_name
from bleeper.protocol.framing import FramingError

log = logging.getLogger("bleeper.events")


class ChatServer(Server):
    """``bleeper serve``: every hook hands its event to the hub, which holds all the rules."""

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config = config or ServeConfig()
        super().__init__(config.host, config.port, max_line=config.max_line, max_send_buffer=config.send_buffer)
        self.hub = Hub(
            HubLimits(
                rate=config.rate,
                burst=config.burst,
                max_per_address=config.max_per_ip,
                max_clients=config.max_clients,
                ping_interval=config.ping_interval,
                ping_timeout=config.ping_timeout,
                log_messages=config.log_messages,
            ),
            server_name=config.server_name,
        )

    async def on_start(self) -> None:
        _raise_file_limit()
        if self.config.ping_interval:
            self.every(min(1.0, self.config.ping_interval / 4), self.hub.keepalive)
        where = ", ".join(f"{host}:{port}" for host, port in self.addresses)
        loop = asyncio.get_running_loop()
        log.info(
            "start Bleeper %s listening on %s (%s; max line %d bytes; message text %s)",
            __version__,
            where,
            loop_name(loop),
            self.config.max_line,
            "logged" if self.config.log_messages else "not logged",
            extra={"event": "start", "listen": where, "loop": loop_name(loop)},
        )

    def on_connect(self, conn: Connection) -> None:
        conn.state = self.hub.connect(conn, conn.address, conn.host)

    def on_message(self, conn: Connection, line: str) -> Awaitable[None] | None:
        session: Session | None = conn.state
        if session is not None:
            self.hub.handle(session, line)
        return None

    def on_invalid(self, conn: Connection, error: FramingError) -> None:
        session: Session | None = conn.state
        if session is not None:
            self.hub.framing_error(session, error)

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        session: Session | None = conn.state
        if session is not None:
            self.hub.disconnect(session, reason)

    async def on_stop(self) -> None:
        active = len(self.hub.sessions)
        log.info(
            "stop: telling %d client(s) the server is shutting down", active, extra={"event": "stop", "active": active}
        )
        self.hub.shutdown("server shutting down")


def _raise_file_limit() -> None:
    """Each client needs a file descriptor: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
