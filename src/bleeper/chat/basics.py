"""HELP, PING, PONG and QUIT: the commands that work before a name is chosen."""

from __future__ import annotations

from bleeper.chat.backend import Answer, Pending
from bleeper.chat.core import Core, Verb
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import COMMANDS, Help, Ping, Pong, Quit, resolve


def help_(hub: Core, session: Session, command: Help) -> None:
    """The line protocol's spelling of each command (protocol/commands.py) beside what the feature that
    handles it says it does."""
    if command.topic is None:
        specs = [spec for spec in COMMANDS.values() if spec.name in hub.verbs]
        width = max(len(spec.usage) for spec in specs)
        items = [f"{spec.usage:<{width}}  {hub.verbs[spec.name].summary}" for spec in specs]
        hub.listing(session, codes.HELP_TEXT, items, "end of help; HELP <command> tells more")
        return
    spec = resolve(command.topic)
    verb = hub.verbs.get(spec.name) if spec is not None else None
    if spec is None or verb is None:
        hub.reply(session, codes.BAD_SYNTAX, f'no command "{command.topic[:20]}"; type HELP for the list')
        return
    items = [spec.usage, verb.summary]
    if spec.aliases:
        items.append("also: " + ", ".join(spec.aliases))
    if verb.needs_name:
        items.append("needs a name first (NAME <your name>)")
    items.append(f"replies: {spec.replies}")
    hub.listing(session, codes.HELP_TEXT, items, f"end of help for {spec.name}")


def ping(hub: Core, session: Session, command: Ping) -> None:
    hub.reply(session, codes.OK, f"PONG {command.token}".rstrip())


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
    hub.reply(session, codes.GOODBYE, farewell)
    session.closing = True
    reason = f"quit: {command.reason}" if command.reason else "quit"
    session.peer.close(reason)
    hub.disconnect(session, reason)
    return None


VERBS = (
    Verb("HELP", Help, help_, "list commands, or explain one", needs_name=False),
    Verb("PING", Ping, ping, "check the server is there", needs_name=False),
    Verb("PONG", Pong, pong, "answer the server's PING (no reply)", needs_name=False),
    Verb("QUIT", Quit, quit_, "leave; the server confirms, then hangs up", needs_name=False),
)
