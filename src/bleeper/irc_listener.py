"""The IRC listener's part of the server: IRC connections into the same hub as everyone else.

The framework opens the port (``Server.add_listener(kind="irc")``) and frames lines as for any connection;
each connection gets its own :class:`~bleeper.protocol.irc.codec.IrcCodec`. A line is read by the codec,
which answers what is IRC's alone and turns the rest into Bleeper commands; they are handed to the hub one
at a time, and while one's reply waits for storage, the rest of the line's commands and the connection's next
lines wait behind it. (The line protocol pipelines messages, its replies kept in order in the session's
slots; IRC does not: the codec renders each reply as the answer to the command at the head of its queue,
which holds only if replies are rendered in command order.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from bleeper.chat import Hub, Session
from bleeper.chat.backend import Pending
from bleeper.chat.names import MAX_NAME, name_key
from bleeper.framework import Connection
from bleeper.protocol.framing import FramingError, LineTooLong
from bleeper.protocol.irc.codec import IrcCodec, Output
from bleeper.protocol.irc.message import MAX_BODY, MAX_TAGS
from bleeper.protocol.text import clean_text

log = logging.getLogger("bleeper.irc")

MAX_LINE = MAX_TAGS + MAX_BODY  # the framer's limit; the codec checks the parts' limits


class IrcListener:
    def __init__(self, hub: Hub, server_name: str, motd: Sequence[str] = ()) -> None:
        self.hub = hub
        self.server_name = server_name
        self.motd = [clean_text(line)[:400] for line in motd]  # (a line of the file per 372; kept short)

    def connect(self, conn: Connection) -> Session | None:
        codec = IrcCodec(self.server_name, motd=self.motd, fold=name_key, nicklen=MAX_NAME)
        codec.counts = lambda: (self.hub.registry.count(), len(self.hub.sessions))
        codec.is_account = lambda name: name_key(name) in self.hub.accounts  # (a guest cannot go by one)
        codec.people = lambda: [name for _, name in self.hub.registry.people()]
        session = self.hub.connect(conn, conn.address, conn.host, codec)
        if session is not None:
            codec.joined = lambda: self._groups(session)
        return session

    def _groups(self, session: Session) -> list[tuple[str, list[str]]]:
        """The connection's groups by their names, each with its members' names."""
        hub = self.hub
        found = []
        for key in sorted(session.groups or ()):
            group = hub.groups.get(key)
            if group is not None:
                members = sorted(hub.registry.shown(member) or member for member in hub.registry.member_keys(key))
                found.append((group.name, members))
        return found

    def line(self, session: Session, line: str) -> Awaitable[None] | None:
        codec = session.codec
        assert isinstance(codec, IrcCodec)
        try:
            outputs = codec.receive(line)
        except Exception:  # a defect, not the client's fault: said so, and the connection goes on
            log.exception("an IRC line could not be read: %r", line[:100])
            self.hub.answer(session, codec.notice("That line could not be handled (a server error, logged)"))
            return None
        if all(isinstance(out, bytes) for out in outputs) and not self.hub.count_line(session):
            return None  # answered by the codec alone (CAP, MODE...), and one line too many: cut as a flood
        return self._run(session, outputs, 0)

    def invalid(self, session: Session, error: FramingError) -> None:
        codec = session.codec
        assert isinstance(codec, IrcCodec)
        if not self.hub.count_line(session, "flood: too many bad lines"):
            return
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
            if pending is not None or session.slots:  # (a message's reply waits in a slot while it is stored)
                return self._after(pending, session, outputs, index + 1)
        return None

    async def _after(self, pending: Pending[object] | None, session: Session, outputs: list[Output],
                     start: int) -> None:  # fmt: skip
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release(_: object = None) -> None:
            if not done.done():
                done.set_result(None)

        if pending is not None:
            pending.add_done_callback(release)
            await done
        if session.slots and not session.closing:
            done = asyncio.get_running_loop().create_future()
            session.when_drained = release
            await done
        more = self._run(session, outputs, start)
        if more is not None:
            await more
