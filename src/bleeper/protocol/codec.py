"""The protocol seam: what the chat domain needs from a wire protocol, and the line protocol as the first one.

The domain never formats bytes itself. Each session carries a :class:`Codec`; the domain says *what* to tell
a client (reply code and text, an event's kind and parameters, a stored message and its number) and the
session's codec says *how*. A second protocol (IRC) is another codec: it decodes its own lines into the same
typed commands (:mod:`bleeper.protocol.commands`) and renders the same replies and events its own way, and
nothing under ``chat/`` changes. Rendering is shaped for fan-out: a message's shared part is encoded once per
codec, and only a short per-recipient head (the recipient's own number) is made per connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bleeper.protocol import wire
from bleeper.protocol.commands import Command, ParseError, parse_command


class Codec(Protocol):
    """One wire protocol, as the chat domain sees it. Implementations are stateless and shared by sessions."""

    name: str

    def decode(self, line: str) -> Command | ParseError:
        """One line (already framed, decoded and stripped of its line ending) as a typed command."""
        ...

    def reply(self, code: int, text: str) -> bytes:
        """A command's one reply: its code (protocol/codes.py) and the words for the person reading it."""
        ...

    def listing(self, code: int, items: Iterable[str], summary: str) -> bytes:
        """A reply made of several items (WHO, HISTORY, HELP, ...) and a last line that ends it."""
        ...

    def event(self, kind: str, *params: str) -> bytes:
        """Something the client did not ask for: ``JOIN``, ``ONLINE``, ``ALERT``, ``DELIVERED``, ..."""
        ...

    def message_tail(self, msg_id: int, time: str, sender: str, to: str, text: str) -> bytes:
        """The part of a delivered message that is the same for every recipient: made once per message."""
        ...

    def message_head(self, seq: int) -> bytes:
        """The part made for each recipient (its number for this message); sent just before the tail."""
        ...

    def urgent_head(self, seq: int) -> bytes:
        """As :meth:`message_head`, for a message that must be acknowledged."""
        ...


class LineCodec:
    """Bleeper's own line protocol (docs/protocol.md): ``NNN text`` replies, ``WORD params`` events, ``MSG``
    lines. The functions are wire.py's, bound once so the fan-out loop's look-ups stay cheap."""

    name = "line"
    decode = staticmethod(parse_command)
    reply = staticmethod(wire.reply)
    listing = staticmethod(wire.multiline)
    event = staticmethod(wire.event)
    message_tail = staticmethod(wire.message_tail)
    message_head = staticmethod(wire.message_head)
    urgent_head = staticmethod(wire.urgent_head)


LINE: Codec = LineCodec()
