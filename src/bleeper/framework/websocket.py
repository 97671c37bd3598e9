"""WebSocket connections that behave like TCP ones: the same framing, limits, send buffer and hooks.

A browser cannot open a TCP socket, so the web client speaks the line protocol over a WebSocket, one text
frame per line. Rather than a second code path for every rule, :class:`WebSocketTransport` looks like an
``asyncio.Transport`` to a :class:`~bleeper.framework.connection.Connection`: bytes written become text
frames, text frames read become lines fed to the same framer. A browser that stops reading fills the same
bounded send buffer and is dropped the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from bleeper.framework.server import Server

log = logging.getLogger("bleeper.framework")

NORMAL_CLOSE, POLICY_VIOLATION, SERVICE_RESTART = 1000, 1008, 1012


class WebSocketTransport:
    """The parts of ``asyncio.Transport`` a Connection uses, over one accepted WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        client = websocket.client
        self._peer = (client.host, client.port) if client is not None else None
        self._out: deque[bytes] = deque()
        self._size = 0
        self._wake = asyncio.Event()
        self._readable = asyncio.Event()
        self._readable.set()
        self._closing = False
        self._aborted = False
        self._partial = b""  # a write may end mid-line (it never does today, but a frame must be a line)
        self.writer: asyncio.Task[None] | None = None

    # asyncio.Transport, as far as Connection needs it --------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        self._out.append(data)
        self._size += len(data)
        self._wake.set()

    def get_write_buffer_size(self) -> int:
        return self._size

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def pause_reading(self) -> None:
        self._readable.clear()

    def resume_reading(self) -> None:
        self._readable.set()

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Send what is queued, then a close frame."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._closing = self._aborted = True
        self._out.clear()
        self._size = 0
        self._wake.set()
        self._readable.set()

    # the two loops ----------------------------------------------------------------------------------

    async def send_loop(self) -> None:
        """Lines out, one text frame each, in order; then the close frame once closing."""
        websocket = self.websocket
        try:
            while True:
                while self._out:
                    data = self._out.popleft()
                    lines = (self._partial + data).split(b"\n")
                    self._partial = lines.pop()
                    for line in lines:
                        await websocket.send_text(line.removesuffix(b"\r").decode("utf-8", "replace"))
                    self._size -= len(data)
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
            code = POLICY_VIOLATION if self._aborted else NORMAL_CLOSE
            with contextlib.suppress(Exception):
                await websocket.close(code)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the browser went away; the receive loop reports it

    async def frames(self) -> AsyncIterator[bytes]:
        """Received text frames as bytes (binary frames too: the framer checks their UTF-8)."""
        while not self._aborted:
            await self._readable.wait()
            if self._aborted:
                return
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text, data = message.get("text"), message.get("bytes")
            yield text.encode() if text is not None else (data or b"")


async def serve_websocket(server: Server, websocket: WebSocket) -> None:
    """Run one accepted WebSocket as a connection of *server* until either side closes it."""
    transport = WebSocketTransport(websocket)
    conn = server._protocol()
    conn.connection_made(transport)  # type: ignore[arg-type]
    transport.writer = asyncio.ensure_future(transport.send_loop())
    reason: Exception | None = None
    try:
        async for frame in transport.frames():
            conn.data_received(frame + b"\r\n")  # one frame is one line: the framer applies the limits
    except WebSocketDisconnect:
        pass
    except Exception as exc:  # a broken socket must not take the server down
        reason = exc
    finally:
        if not conn.closed:
            transport.close()
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(transport.writer, 2.0)
        transport.writer.cancel()
        conn.connection_lost(reason)
