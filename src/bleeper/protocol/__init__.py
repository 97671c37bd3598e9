"""The Bleeper line protocol, sans-I/O: bytes in, typed commands out; replies and events to bytes.

Nothing here touches sockets, asyncio or a database, so every rule can be tested by feeding bytes.
"""

from bleeper.protocol.commands import COMMANDS, Command, CommandSpec, ParseError, parse_command
from bleeper.protocol.framing import DEFAULT_MAX_LINE, FramingError, InvalidEncoding, LineFramer, LineTooLong
from bleeper.protocol.text import clean_text

__all__ = [
    "COMMANDS",
    "DEFAULT_MAX_LINE",
    "Command",
    "CommandSpec",
    "FramingError",
    "InvalidEncoding",
    "LineFramer",
    "LineTooLong",
    "ParseError",
    "clean_text",
    "parse_command",
]
