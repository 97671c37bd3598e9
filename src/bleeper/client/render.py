"""Turning events into text for people: the same words in the TUI and the plain line mode.

Everything that came from the wire is cleaned again (``clean_text``) before it is shown: a client must never
let a hostile server or sender put escape sequences on the user's terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bleeper.client.events import ClientEvent, Connected, Disconnected, Event, Message, Sent
from bleeper.protocol.text import clean_text


def local_time(stamp: str) -> str:
    """``2026-11-21T15:12:05.123Z`` -> ``15:12`` in the local time zone (the raw text if unparsable)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return clean_text(stamp)[:5]
    return moment.astimezone().strftime("%H:%M")


@dataclass(frozen=True, slots=True)
class Line:
    """One displayable line: a time, who, where (or None), the text, and how to style it."""

    time: str
    sender: str
    where: str | None
    text: str
    kind: str  # "message", "private", "group", "urgent", "own", "notice", "error"


def message_line(message: Message, me: str | None) -> Line:
    sender = clean_text(message.sender)
    text = clean_text(message.text)
    when = local_time(message.time)
    if message.urgent:
        return Line(when, sender, clean_text(message.to), f"URGENT {message.id}: {text}", "urgent")
    if message.to == "*":
        return Line(when, sender, None, text, "message")
    if message.to.startswith("#"):
        return Line(when, sender, clean_text(message.to), text, "group")
    recipients = [clean_text(name) for name in message.recipients]
    others = [name for name in recipients if me is None or name.lower() != me.lower()]
    where = "private" if not others else "with " + ", ".join(others)
    return Line(when, sender, where, text, "private")


def own_line(sent: Sent, me: str, target: str, text: str) -> Line:
    where = None if target == "*" else clean_text(target)
    return Line(local_time(sent.time), me, where, clean_text(text), "own")


def now() -> str:
    return datetime.now().strftime("%H:%M")


def notice(text: str, kind: str = "notice") -> Line:
    """A line from the client itself (not from another person)."""
    return Line(now(), "", None, clean_text(text), kind)


def event_line(event: ClientEvent, me: str | None) -> Line | None:
    now = datetime.now().strftime("%H:%M")
    if isinstance(event, Message):
        return message_line(event, me)
    if isinstance(event, Connected):
        return Line(now, "", None, *_connected(event))
    if isinstance(event, Disconnected):
        tail = "; reconnecting…" if event.retrying else ""
        return Line(now, "", None, f"connection lost: {clean_text(event.reason)}{tail}", "error")
    if isinstance(event, Event):
        args = [clean_text(arg) for arg in event.args]
        if event.kind == "ONLINE" and args:
            return Line(now, "", None, f"{args[0]} is online", "notice")
        if event.kind == "RENAMED" and len(args) >= 2:
            return Line(now, "", None, f"{args[0]} is now {args[1]}", "notice")
        if event.kind == "OFFLINE" and args:
            reason = " ".join(args[1:])
            return Line(now, "", None, f"{args[0]} went offline ({reason})", "notice")
        if event.kind == "JOIN" and len(args) >= 2:
            return Line(now, "", None, f"{args[1]} joined {args[0]}", "notice")
        if event.kind == "LEAVE" and len(args) >= 2:
            return Line(now, "", None, f"{args[1]} left {args[0]}", "notice")
        if event.kind == "CLOSING":
            return Line(now, "", None, "server: " + " ".join(args), "error")
        if event.kind == "PING":
            return None
        return _clinical_line(event.kind, args, now)
    return None


def _connected(event: Connected) -> tuple[str, str]:
    """What a person must know after a reconnect: whether anything sent meanwhile was missed. "Nothing was
    missed" is said only when the server's SYNC showed it."""
    if not event.again:
        return f"connected to {event.server}", "notice"
    text, kind = f"reconnected to {event.server}", "notice"
    if event.caught_up is None and event.name is not None:
        text += (f" as {event.name}. Messages sent while you were away are not kept for names without an account:"
                 " log in with an account (bleeper chat --login) to receive them")  # fmt: skip
        kind = "error"
    elif event.gone is not None:
        text += f"; some messages sent while you were away are no longer kept ({clean_text(event.gone)})"
        kind = "error"
    elif event.caught_up == 0:
        text += "; nothing was missed"
    elif event.caught_up is not None:
        text += f"; {event.caught_up} message(s) sent while you were away are shown above"
    if event.lost_groups:
        text += f"; could not rejoin {', '.join(event.lost_groups)}: /join to try again"
        kind = "error"
    return text, kind


def _clinical_line(kind: str, args: list[str], now: str) -> Line:
    """Receipts, urgent-message steps, presence and announcements, in words."""
    if kind == "DELIVERED" and len(args) >= 2:
        return Line(now, "", None, f"✓ message {args[0]} delivered to {args[1]}", "notice")
    if kind == "READ" and len(args) >= 2:
        return Line(now, "", None, f"✓✓ message {args[0]} read by {args[1]}", "notice")
    if kind == "ACKED" and len(args) >= 2:
        return Line(now, "", None, f"urgent message {args[0]} acknowledged by {args[1]}", "notice")
    if kind == "ALERT" and len(args) >= 3:
        text = f"urgent message {args[0]} from {args[1]} needs acknowledging ({args[2]} waiting): Ctrl+A"
        return Line(now, "", None, text, "error")
    if kind == "ESCALATION" and len(args) >= 2:
        return Line(now, "", None, f"urgent message {args[0]}: {' '.join(args[1:])}", "notice")
    if kind == "STATUS" and len(args) >= 2:
        note = f": {' '.join(args[2:])}" if len(args) > 2 else ""
        return Line(now, "", None, f"{args[0]} does not want to be disturbed{note} (your message was delivered)",
                    "notice")  # fmt: skip
    if kind == "PRESENCE" and len(args) >= 2:
        note = f" ({' '.join(args[2:])})" if len(args) > 2 else ""
        return Line(now, "", None, f"{args[0]} is {args[1]}{note}", "notice")
    if kind == "ANNOUNCE" and args:
        return Line(now, args[0], "announcement", " ".join(args[1:]), "urgent")
    return Line(now, "", None, " ".join([clean_text(kind), *args]), "notice")


def plain(line: Line) -> str:
    """The line as plain text: ``[15:12] alice → #icu: text``."""
    if line.kind in ("notice", "error"):
        return f"[{line.time}] * {line.text}"
    who = "you" if line.kind == "own" else line.sender
    where = f" → {line.where}" if line.where else ""
    return f"[{line.time}] {who}{where}: {line.text}"
