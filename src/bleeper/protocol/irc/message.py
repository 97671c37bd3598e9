"""One IRC line, as text: tags, source, command and parameters, read and written. Pure functions, no I/O.

The grammar is the one clients use today (modern.ircdocs.horse "Messages", with IRCv3 message-tags)::

    ['@' tags ' '] [':' source ' '] command [' ' param]* [' :' trailing]

Parameters are separated by one or more spaces; the last one may be *trailing* (after `` :``) and hold spaces,
or be empty. Tag values are escaped (``\\:`` for ``;``, ``\\s`` for a space, ``\\\\``, ``\\r``, ``\\n``).

Limits are the protocol's, checked here so every transport has them: the part after the tags is at most 512
bytes with its CRLF (:data:`MAX_BODY`), the tags at most 8191 bytes with their ``@`` and space
(:data:`MAX_TAGS`); of those, what a client may send is 4094 (:data:`MAX_CLIENT_TAGS`). A line that breaks
them, or cannot be read, raises :class:`IrcParseError` saying which, so the server can answer with a numeric
and keep the connection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_BODY = 512  # bytes of source, command and parameters, with the CRLF
MAX_TAGS = 8191  # bytes of tags, with the leading '@' and the space after them
MAX_CLIENT_TAGS = 4094  # of which a client may send (the server adds its own)
MAX_PARAMS = 15

_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")
_TAG_KEY = re.compile(r"\+?(?:[A-Za-z0-9][A-Za-z0-9.-]*/)?[A-Za-z0-9-]+")
_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


class IrcParseError(ValueError):
    """A line that is not an IRC message. *reason* is ``"too-long"`` (answered 417), ``"tags-too-long"``, or
    ``"malformed"``; the message says what was wrong, for the person reading the numeric."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IrcMessage:
    command: str  # upper case: "PRIVMSG", "001"
    params: tuple[str, ...] = ()
    source: str | None = None  # "nick!user@host" or a server name
    tags: Mapping[str, str] = field(default_factory=dict)  # a tag without a value maps to ""

    def param(self, index: int, default: str = "") -> str:
        return self.params[index] if index < len(self.params) else default


def parse(line: str, *, from_client: bool = True) -> IrcMessage:
    """One line without its CRLF. Raises :class:`IrcParseError`."""
    rest = line
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw, _, rest = rest.partition(" ")
        limit = MAX_CLIENT_TAGS if from_client else MAX_TAGS
        if len(raw.encode()) + 1 > limit:
            raise IrcParseError("tags-too-long", f"message tags longer than {limit} bytes")
        tags = _parse_tags(raw[1:])
        rest = rest.lstrip(" ")
    if len(rest.encode()) + 2 > MAX_BODY:
        raise IrcParseError("too-long", f"line longer than {MAX_BODY} bytes")
    source = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
        if not source:
            raise IrcParseError("malformed", "empty source after ':'")
    head, colon, trailing = rest.partition(" :")
    if rest.startswith(":"):  # no command before the trailing parameter
        raise IrcParseError("malformed", "no command")
    words = [word for word in head.split(" ") if word]
    if not words:
        raise IrcParseError("malformed", "no command")
    command, *params = words
    if not _COMMAND.fullmatch(command):
        raise IrcParseError("malformed", f"not a command: {command[:20]!r}")
    if colon:
        params.append(trailing)
    if len(params) > MAX_PARAMS:  # the 15th takes the rest, as the grammar says
        params[MAX_PARAMS - 1 :] = [" ".join(params[MAX_PARAMS - 1 :])]
    return IrcMessage(command.upper(), tuple(params), source, tags)


def _parse_tags(raw: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if not _TAG_KEY.fullmatch(key):
            raise IrcParseError("malformed", f"not a tag name: {key[:40]!r}")
        tags[key] = unescape_tag(value)  # a key given twice: the last one counts
    return tags


def unescape_tag(value: str) -> str:
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")  # a lone backslash at the end is dropped
        out.append(_UNESCAPE.get(following, following))
    return "".join(out)


def escape_tag(value: str) -> str:
    return value.translate(_ESCAPE)


def format_line(message: IrcMessage) -> str:
    """The message as a line, without its CRLF. Raises ValueError for parameters no line can carry (a space
    or a leading ':' anywhere but last, an empty one but last, CR, LF or NUL anywhere)."""
    parts: list[str] = []
    if message.tags:
        parts.append("@" + ";".join(key if value == "" else f"{key}={escape_tag(value)}"
                                     for key, value in message.tags.items()))  # fmt: skip
    if message.source:
        parts.append(":" + message.source)
    parts.append(message.command)
    parts.extend(_params(message.params))
    return " ".join(parts)


def _params(params: Sequence[str]) -> list[str]:
    out = []
    last = len(params) - 1
    for index, param in enumerate(params):
        if "\r" in param or "\n" in param or "\0" in param:
            raise ValueError(f"a parameter cannot hold CR, LF or NUL: {param[:40]!r}")
        if index == last and (not param or " " in param or param.startswith(":")):
            out.append(":" + param)
        elif not param or " " in param or param.startswith(":"):
            raise ValueError(f"only the last parameter may be empty, hold spaces or start with ':': {param[:40]!r}")
        else:
            out.append(param)
    return out


def encode(message: IrcMessage) -> bytes:
    """The message as bytes on the wire, CRLF included."""
    return (format_line(message) + "\r\n").encode()


def body_room(source: str, command: str, *params: str) -> int:
    """Bytes left for a trailing parameter after *params*, within :data:`MAX_BODY`: how much of a long text
    fits in one line (longer texts are split over several)."""
    fixed = len(f":{source} {command} ".encode()) + sum(len(p.encode()) + 1 for p in params) + len(":\r\n")
    return MAX_BODY - fixed
