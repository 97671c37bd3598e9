"""Turning a byte stream into lines of text.

The framer is the first line of defence: it bounds memory per connection (a line longer than the limit is
reported at once and the rest of it discarded up to the next newline), removes telnet negotiation so a plain
``telnet`` works, reports invalid UTF-8 instead of guessing, and cleans control characters. It never raises
on input: every byte sequence yields lines and error events.
"""

from __future__ import annotations

from dataclasses import dataclass

from bleeper.protocol.text import clean_text

DEFAULT_MAX_LINE = 4096

_IAC = 255
_SB = 250
_SE = 240
_NEGOTIATE = frozenset({251, 252, 253, 254})  # WILL WONT DO DONT


@dataclass(frozen=True, slots=True)
class LineTooLong:
    """A line passed the length limit; it was discarded up to its newline."""

    limit: int


@dataclass(frozen=True, slots=True)
class InvalidEncoding:
    """A line was not valid UTF-8; it was dropped whole."""

    detail: str


FramingError = LineTooLong | InvalidEncoding


class LineFramer:
    """Incremental splitter: ``feed(bytes)`` returns complete lines (``str``) and :data:`FramingError` events.

    Lines end in LF or CRLF; the terminator is not part of the line. ``max_line`` counts bytes without it.
    """

    __slots__ = ("_buf", "_discarding", "_telnet", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self._buf = b""
        self._discarding = False
        self._telnet = 0  # 0 plain, 1 after IAC, 2 after IAC+verb, 3 inside SB, 4 after IAC inside SB

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the end of a line."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[str | FramingError]:
        if self._telnet or b"\xff" in data:
            data = self._strip_telnet(data)
        out: list[str | FramingError] = []
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return out
            self._discarding = False
            data = data[end + 1 :]
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        rest = lines.pop()
        limit = self.max_line
        for raw in lines:
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            if len(raw) > limit:
                out.append(LineTooLong(limit))
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.append(InvalidEncoding(f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"))
                continue
            out.append(text if text.isprintable() else clean_text(text))
        # A pending CR may still be followed by LF, so allow one byte more before calling it too long.
        if len(rest) > limit + 1 or (len(rest) == limit + 1 and rest[-1:] != b"\r"):
            out.append(LineTooLong(limit))
            rest = b""
            self._discarding = True
        self._buf = rest
        return out

    def _strip_telnet(self, data: bytes) -> bytes:
        """Remove telnet commands (IAC sequences); IAC IAC stands for a literal 0xFF byte.

        Subnegotiation (IAC SB ... IAC SE) ends early at a newline, so a stray IAC SB cannot swallow the
        rest of the stream.
        """
        out = bytearray()
        state = self._telnet
        for byte in data:
            if state == 0:
                if byte == _IAC:
                    state = 1
                else:
                    out.append(byte)
            elif state == 1:
                if byte == _IAC:
                    out.append(_IAC)
                    state = 0
                elif byte in _NEGOTIATE:
                    state = 2
                elif byte == _SB:
                    state = 3
                else:
                    state = 0
            elif state == 2:
                state = 0
            elif state == 3:
                if byte == _IAC:
                    state = 4
                elif byte == 10:  # a newline never belongs to a subnegotiation: stray IAC SB, resync
                    out.append(byte)
                    state = 0
            else:  # state 4: IAC inside subnegotiation
                state = 0 if byte == _SE else 3
        self._telnet = state
        return bytes(out)
