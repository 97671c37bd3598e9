"""Errors raised by the client library; each carries what a program needs to react."""

from __future__ import annotations

from bleeper.protocol.incoming import Reply


class BleeperError(Exception):
    """Base class for every client error."""


class ConnectionClosed(BleeperError):
    """The connection ended before the reply came; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotConnected(BleeperError):
    """A command was given while there is no connection (see ``ChatClient.state``)."""


class CommandError(BleeperError):
    """The server refused a command (4xx or 5xx). ``reply`` is its answer."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} {reply.text}")
        self.reply = reply

    @property
    def code(self) -> int:
        return self.reply.code


class NameTaken(CommandError):
    """Someone already has the name; ``suggestion`` is a free one the server proposes."""

    @property
    def suggestion(self) -> str:
        return self.reply.fields[0]


class InvalidName(CommandError):
    """The name breaks the rules or is reserved; the message says which."""


class RateLimited(CommandError):
    """429: the command was not carried out; wait and retry."""


class LoginFailed(CommandError):
    """430: unknown account or wrong password (the server does not say which)."""
