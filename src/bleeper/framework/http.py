"""An ASGI application served by uvicorn on the server's own event loop.

The web client must share the chat server's hub, so HTTP cannot run as a separate process: uvicorn's
``Server`` is started piecewise (its ``serve`` would take over the process's signals, which belong to the
chat server) and stopped with the chat server.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import uvicorn

log = logging.getLogger("bleeper.framework")

MAX_FRAME = 64 * 1024  # bytes: over the line limit, so a long line gets the protocol's 413, not a cut socket


class HttpListener:
    def __init__(self, app: Any, host: str, port: int, *, ssl_certfile: str = "", ssl_keyfile: str = "") -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            ws="websockets-sansio",
            ws_max_size=MAX_FRAME,
            ws_ping_interval=30.0,
            ws_ping_timeout=30.0,
            timeout_graceful_shutdown=2,
            ssl_certfile=ssl_certfile or None,
            ssl_keyfile=ssl_keyfile or None,
        )
        self._server: uvicorn.Server | None = None
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # our console reports start and stop itself
        self._sockets: list[socket.socket] = []

    async def start(self) -> list[tuple[str, int]]:
        """Listen; returns where (port 0 picks a free one). Raises OSError when the address cannot be used."""
        config = self.config
        if not config.loaded:
            config.load()
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.create_server((config.host, config.port), family=family, backlog=config.backlog)
        sock.setblocking(False)
        server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._server, self._sockets = server, [sock]
        name = sock.getsockname()
        return [(str(name[0]), int(name[1]))]

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.should_exit = True
            await server.shutdown(sockets=self._sockets)
