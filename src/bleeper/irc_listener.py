"""The IRC listener's part of the server: IRC connections into the same hub as everyone else.

The framework opens the port (``Server.add_listener(kind="irc")``) and frames lines as for any connection;
each connection gets its own :class:`~bleeper.protocol.irc.codec.IrcCodec`. A line is read by the codec,
which answers what is IRC's alone and turns the rest into Bleeper commands; they are handed to the hub one
at a time, and when one's reply waits for storage the rest of the line's commands (and the connection's
next lines) wait behind it, so replies stay in order, as on the line protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from bleeper.chat import Hub, Session
from bleeper.chat.backend import Pending
from bleeper.chat.names import MAX_NAME, name_key
from bleeper.framework import Connection
from bleeper.protocol.framing import FramingError, LineTooLong
from bleeper.protocol.irc.codec import IrcCodec, Output
from bleeper.protocol.irc.message import MAX_BODY, MAX_TAGS

MAX_LINE = MAX_TAGS + MAX_BODY  # the framer's limit; the codec checks the parts' limits


class IrcListener:
    def __init__(self, hub: Hub, server_name: str, motd: Sequence[str] = ()) -> None:
        self.hub = hub
        self.server_name = server_name
        self.motd = list(motd)

    def connect(self, conn: Connection) -> Session | None:
        codec = IrcCodec(self.server_name, motd=self.motd, fold=name_key, nicklen=MAX_NAME)
        codec.counts = lambda: (self.hub.registry.count(), len(self.hub.sessions))
        codec.is_account = lambda name: name_key(name) in self.hub.accounts  # (a guest cannot go by one)
        return self.hub.connect(conn, conn.address, conn.host, codec)

    def line(self, session: Session, line: str) -> Awaitable[None] | None:
        codec = session.codec
        assert isinstance(codec, IrcCodec)
        return self._run(session, codec.receive(line), 0)

    def invalid(self, session: Session, error: FramingError) -> None:
        codec = session.codec
        assert isinstance(codec, IrcCodec)
        if isinstance(error, LineTooLong):
            self.hub.answer(session, codec.too_long(f"longer than {error.limit} bytes"))
        else:
            self.hub.answer(session, codec.notice("That line was not UTF-8 and was dropped; send UTF-8 text"))

    def _run(self, session: Session, outputs: list[Output], start: int) -> Awaitable[None] | None:
        for index in range(start, len(outputs)):
            out = outputs[index]
            if isinstance(out, bytes):
                self.hub.answer(session, out)  # in order behind any reply still waiting
                continue
            pending = self.hub.handle_command(session, out)
            if pending is not None:
                return self._after(pending, session, outputs, index + 1)
        return None

    async def _after(self, pending: Pending[object], session: Session, outputs: list[Output], start: int) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release(_: object) -> None:
            if not done.done():
                done.set_result(None)

        pending.add_done_callback(release)
        await done
        more = self._run(session, outputs, start)
        if more is not None:
            await more
