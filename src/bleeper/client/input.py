"""What a line typed into a chat client means. Shared by the TUI and the plain line mode.

Lines starting with ``/`` are commands: ``/tell bob hi`` goes to the server as ``TELL bob hi``; a few are the
client's own (``/switch``, ``/quit``, ``/help``). Any other line is a message to the current conversation.
"""

from __future__ import annotations

from dataclasses import dataclass

EVERYONE = "*"

LOCAL_COMMANDS = {
    "switch": "/switch <name|#group|*>  talk to someone else (* is everyone)",
    "quit": "/quit [reason]  leave (the server confirms first)",
    "help": "/help [command]  this list, or the server's help for a command",
}


@dataclass(frozen=True, slots=True)
class SendText:
    """A message for the current conversation."""

    target: str  # EVERYONE, a name, or a #group
    text: str

    @property
    def line(self) -> str:
        return f"SAY {self.text}" if self.target == EVERYONE else f"TELL {self.target} {self.text}"


@dataclass(frozen=True, slots=True)
class ServerCommand:
    line: str


@dataclass(frozen=True, slots=True)
class Switch:
    target: str


@dataclass(frozen=True, slots=True)
class QuitChat:
    reason: str


@dataclass(frozen=True, slots=True)
class ShowHelp:
    topic: str | None


@dataclass(frozen=True, slots=True)
class Nothing:
    problem: str | None = None


Action = SendText | ServerCommand | Switch | QuitChat | ShowHelp | Nothing


def interpret(line: str, current: str) -> Action:
    """Turn a typed line into an action, given the current conversation."""
    text = line.strip()
    if not text:
        return Nothing()
    if not text.startswith("/") or text.startswith("//"):
        return SendText(current, text[1:] if text.startswith("//") else text)
    word, _, rest = text[1:].partition(" ")
    word = word.lower()
    rest = rest.strip()
    if word in ("quit", "bye", "exit"):
        return QuitChat(rest)
    if word in ("switch", "to", "query"):
        if not rest or " " in rest:
            return Nothing("usage: " + LOCAL_COMMANDS["switch"])
        return Switch(EVERYONE if rest.lower() in ("*", "everyone", "all") else rest)
    if word == "help":
        return ShowHelp(rest or None)
    if not word:
        return Nothing("type a command after /, or /help")
    return ServerCommand(f"{word.upper()} {rest}".rstrip())


def conversation_label(target: str) -> str:
    return "everyone" if target == EVERYONE else target


COMMAND_WORDS = ["/help", "/quit", "/switch", "/tell", "/say", "/join", "/leave", "/who", "/groups", "/ping"]


def complete(line: str, names: list[str], groups: list[str]) -> str:
    """Complete the last word of *line* (Tab): commands after a leading /, else names and groups."""
    head, _, word = line.rpartition(" ")
    if not word:
        return line
    if not head and word.startswith("/"):
        pool = COMMAND_WORDS
    elif word.startswith("#"):
        pool = groups
    else:
        pool = names + groups
    matches = sorted({item for item in pool if item.lower().startswith(word.lower())})
    if not matches:
        return line
    if len(matches) == 1:
        completed = matches[0] + " "
    else:  # the longest common prefix
        completed = matches[0]
        for match in matches[1:]:
            while not match.lower().startswith(completed.lower()):
                completed = completed[:-1]
        if len(completed) <= len(word):
            return line
    return f"{head} {completed}" if head else completed
