"""The client's half of the protocol: parsing what the server sends, and formatting commands to send.

A server line is either a reply line (three digits, then ``-`` for "more follows" or a space for "last") or
an event (a word). :class:`ReplyAssembler` collects multi-line replies so a client sees whole replies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bleeper.protocol.commands import (
    Command,
    Groups,
    Help,
    History,
    Join,
    Leave,
    Login,
    Name,
    Ping,
    Pong,
    Push,
    Quit,
    Say,
    Sync,
    Tell,
    Who,
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A whole reply: its code, the text of its last line, and the items of ``NNN-`` lines before it."""

    code: int
    text: str
    items: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def fields(self) -> list[str]:
        return self.text.split(" ")


@dataclass(frozen=True, slots=True)
class Event:
    """An unsolicited line: ``kind`` is its first word, ``args`` the rest split on spaces (``text`` joined)."""

    kind: str
    args: tuple[str, ...] = field(default=())

    def rest(self, start: int) -> str:
        return " ".join(self.args[start:])


@dataclass(frozen=True, slots=True)
class Message:
    """``MSG <seq> <id> <utc-time> <from> <to> <text>``. ``seq`` counts this recipient's messages without gaps
    (per account when logged in, per connection otherwise); ``id`` names the message everywhere."""

    seq: int
    id: int
    time: str
    sender: str
    to: str
    text: str
    urgent: bool = False  # an URGENT line: ACK <id> stops its alerts

    @property
    def is_broadcast(self) -> bool:
        return self.to == "*"

    @property
    def group(self) -> str | None:
        return self.to if self.to.startswith("#") else None

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(self.to[1:].split(",")) if self.to.startswith("@") else ()


class ProtocolViolation(ValueError):
    """The server sent something that is neither a reply nor an event."""


def parse_message(line: str) -> Message:
    parts = line.split(" ", 6)
    if len(parts) < 6 or parts[0] not in ("MSG", "URGENT") or not parts[1].isdigit() or not parts[2].isdigit():
        raise ProtocolViolation(f"not a MSG event: {line[:80]!r}")
    return Message(int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5], parts[6] if len(parts) > 6 else "",
                   parts[0] == "URGENT")  # fmt: skip


class ReplyAssembler:
    """Feed server lines one at a time; get back a :class:`Reply` when one is complete, an :class:`Event` or
    :class:`Message` at once, or None while a multi-line reply is still arriving."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[str] = []

    def feed(self, line: str) -> Reply | Event | Message | None:
        head = line[:3]
        if len(line) >= 4 and head.isdigit() and line[3] in " -":
            if line[3] == "-":
                self._items.append(line[4:])
                return None
            items = tuple(self._items)
            self._items.clear()
            return Reply(int(head), line[4:], items)
        if len(line) == 3 and head.isdigit():
            items = tuple(self._items)
            self._items.clear()
            return Reply(int(head), "", items)
        if not line or line[0].isdigit():
            raise ProtocolViolation(f"malformed server line: {line[:80]!r}")
        if line.startswith(("MSG ", "URGENT ")):
            return parse_message(line)
        kind, *args = line.split(" ")
        return Event(kind, tuple(args))


def format_command(command: Command) -> str:
    """The line that sends *command* (without the line ending)."""
    match command:
        case Help(topic):
            return f"HELP {topic}" if topic else "HELP"
        case Name(name):
            return f"NAME {name}"
        case Say(text, client_id):
            return f"ID {client_id} SAY {text}" if client_id else f"SAY {text}"
        case Tell(target, text, client_id, urgent):
            word = "URGENT" if urgent else "TELL"
            line = f"{word} {target.text()} {text}"
            return f"ID {client_id} {line}" if client_id else line
        case Join(group):
            return f"JOIN {group}"
        case Leave(group):
            return f"LEAVE {group}"
        case Who(group):
            return f"WHO {group}" if group else "WHO"
        case Groups():
            return "GROUPS"
        case Ping(token):
            return f"PING {token}".rstrip()
        case Pong(token):
            return f"PONG {token}".rstrip()
        case Quit(reason):
            return f"QUIT {reason}".rstrip()
        case Login(name, password):
            return f"LOGIN {name} {password}"
        case Sync(since):
            return f"SYNC {since}"
        case History(target, count):
            return f"HISTORY {target.text()} {count}"
        case Push(action, endpoint, p256dh, auth):
            return f"PUSH ADD {endpoint} {p256dh} {auth}" if action == "add" else f"PUSH REMOVE {endpoint}"
    raise TypeError(f"not a command: {command!r}")
