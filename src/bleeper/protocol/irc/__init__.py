"""IRC as a second wire protocol over the same chat (issue 19), sans-I/O: lines in, lines out.

``message`` reads and writes one IRC line (tags, source, command, parameters) within the protocol's limits.
"""

from bleeper.protocol.irc.message import IrcMessage, IrcParseError, encode, format_line, parse

__all__ = ["IrcMessage", "IrcParseError", "encode", "format_line", "parse"]
