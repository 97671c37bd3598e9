"""HELP, PING, PONG and QUIT: the commands that work before a name is chosen."""

from __future__ import annotations

import logging

from bleeper.chat.backend import Answer, Pending
from bleeper.chat.core import Core, Handler
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import COMMANDS, Help, Ping, Pong, Quit, resolve
from bleeper.protocol.wire import multiline, reply

log = logging.getLogger("bleeper.events")


def help_(hub: Core, session: Session, command: Help) -> None:
    if command.topic is None:
        width = max(len(spec.usage) for spec in COMMANDS.values())
        items = [f"{spec.usage:<{width}}  {spec.summary}" for spec in COMMANDS.values()]
        hub.answer(session, multiline(codes.HELP_TEXT, items, "end of help; HELP <command> tells more"))
        return
    spec = resolve(command.topic)
    if spec is None:
        hub.answer(session, reply(codes.BAD_SYNTAX, f'no command "{command.topic[:20]}"; type HELP for the list'))
        return
    items = [spec.usage, spec.summary]
    if spec.aliases:
        items.append("also: " + ", ".join(spec.aliases))
    if spec.needs_name:
        items.append("needs a name first (NAME <your name>)")
    items.append(f"replies: {spec.replies}")
    hub.answer(session, multiline(codes.HELP_TEXT, items, f"end of help for {spec.name}"))


def ping(hub: Core, session: Session, command: Ping) -> None:
    hub.answer(session, reply(codes.OK, f"PONG {command.token}".rstrip()))


def pong(hub: Core, session: Session, command: Pong) -> None:
    """Any line proves the client is alive (handled in :meth:`handle`); PONG needs no reply."""


def quit_(hub: Core, session: Session, command: Quit) -> Pending[object] | None:
    if session.slots:  # messages still being stored: answer them first, then say goodbye
        flow: Answer[None] = Answer()

        def drained() -> None:
            quit_(hub, session, command)
            flow.resolve()

        session.when_drained = drained
        return flow
    farewell = f"goodbye, {session.name}" if session.name else "goodbye"
    hub.answer(session, reply(codes.GOODBYE, farewell))
    session.closing = True
    reason = f"quit: {command.reason}" if command.reason else "quit"
    session.peer.close(reason)
    hub.disconnect(session, reason)
    return None


HANDLERS: dict[type, Handler] = {
    Help: help_,
    Ping: ping,
    Pong: pong,
    Quit: quit_,
}
