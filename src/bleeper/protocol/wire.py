"""Formatting replies and events as bytes on the wire.

Replies answer a command: ``NNN text``; a multi-line reply sends ``NNN-item`` lines and ends with
``NNN summary`` (SMTP style), so a client always knows where a reply ends. Events are unsolicited and start
with a word, never digits, so one look at the first character tells the two apart. Lines end in CRLF so raw
telnet sessions return the carriage.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

EOL = "\r\n"


def reply(code: int, text: str) -> bytes:
    return f"{code} {text}{EOL}".encode()


def multiline(code: int, items: Iterable[str], final: str) -> bytes:
    head = "".join(f"{code}-{item}{EOL}" for item in items)
    return f"{head}{code} {final}{EOL}".encode()


def event(*fields: str) -> bytes:
    return (" ".join(fields) + EOL).encode()


_second_cache: list[object] = [None, ""]  # the last whole second formatted, and its text


def format_time(timestamp: float) -> str:
    """UTC time with milliseconds, ISO 8601: ``2026-11-21T15:12:05.123Z``.

    Every message carries one, so the formatted second is cached: only the milliseconds change.
    """
    second = int(timestamp)
    if _second_cache[0] != second:
        _second_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _second_cache[0] = second
    millis = min(999, max(0, round(timestamp * 1000) - second * 1000))
    return f"{_second_cache[1]}{millis:03d}Z"


def message_tail(msg_id: int, time: str, sender: str, to: str, text: str) -> bytes:
    """The part of ``MSG <seq> <id> <utc-time> <from> <to> <text>`` that is the same for every recipient.

    Each recipient gets :func:`message_head` (its own sequence number) and then these same bytes, so a message
    is formatted once however many receive it. *time* comes from :func:`format_time`.
    """
    return f" {msg_id} {time} {sender} {to} {text}{EOL}".encode()


_HEADS: list[bytes] = []  # b"MSG <n>" for small n, made once: every recipient needs one per message


def message_head(seq: int) -> bytes:
    if seq < len(_HEADS):
        return _HEADS[seq]
    if seq < 1 << 16:
        _HEADS.extend(b"MSG %d" % n for n in range(len(_HEADS), seq + 1024))
        return _HEADS[seq]
    return b"MSG %d" % seq


def urgent_head(seq: int) -> bytes:
    """``URGENT <seq>``: an urgent message has the same fields as ``MSG`` after its first word."""
    return b"URGENT %d" % seq


def message_event(seq: int, msg_id: int, time: str, sender: str, to: str, text: str) -> bytes:
    """A whole ``MSG`` line for one recipient."""
    return message_head(seq) + message_tail(msg_id, time, sender, to, text)


def format_ms(created_ms: int) -> str:
    return format_time(created_ms / 1000)
