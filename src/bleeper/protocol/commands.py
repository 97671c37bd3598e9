"""Parsing one line of text into a typed command.

Commands are plain values (the ones on the message path are not frozen, because frozen dataclasses are slow to
build). Commands are ``WORD params``, case-insensitive, with aliases so that people coming from IRC or chat apps guess
right. :data:`COMMANDS` is the line protocol's grammar of each command (name, aliases, usage, reply codes),
read by the parser, HELP and the check that docs/protocol.md covers every command. What a command *does*
(HELP's summary, whether it needs a name first) is said by the chat feature that handles it (``chat/*.py``
``VERBS``), since another protocol would spell the command differently but it would do the same.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bleeper.protocol import codes


@dataclass(slots=True)
class UserTarget:
    """One or more people by screen name: a private message or an ad-hoc sub-group."""

    names: tuple[str, ...]

    def text(self) -> str:
        return ",".join(self.names)


@dataclass(slots=True)
class GroupTarget:
    """A named group, written ``#name``."""

    name: str

    def text(self) -> str:
        return self.name


@dataclass(slots=True)
class RoleTarget:
    """An on-call role, written ``@name``: whoever holds it now."""

    name: str

    def text(self) -> str:
        return self.name


Target = UserTarget | GroupTarget | RoleTarget


@dataclass(frozen=True, slots=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(slots=True)
class Say:
    text: str
    client_id: str | None = None


@dataclass(slots=True)
class Tell:
    target: Target
    text: str
    client_id: str | None = None
    urgent: bool = False  # URGENT: must be acknowledged, alerts again until it is


@dataclass(frozen=True, slots=True)
class Join:
    group: str


@dataclass(frozen=True, slots=True)
class Leave:
    group: str


@dataclass(frozen=True, slots=True)
class Who:
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Groups:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    token: str = ""


@dataclass(frozen=True, slots=True)
class Pong:
    token: str = ""


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Login:
    name: str
    password: str


@dataclass(frozen=True, slots=True)
class Sync:
    since: int


@dataclass(frozen=True, slots=True)
class History:
    target: Target
    count: int = 20


@dataclass(frozen=True, slots=True)
class Status:
    state: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Kick:
    name: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Announce:
    text: str


@dataclass(frozen=True, slots=True)
class Ack:
    message_id: int


@dataclass(frozen=True, slots=True)
class Read:
    message_id: int


@dataclass(frozen=True, slots=True)
class Trace:
    message_id: int


@dataclass(frozen=True, slots=True)
class Recall:
    message_id: int


@dataclass(frozen=True, slots=True)
class Health:
    pass


@dataclass(frozen=True, slots=True)
class Oncall:
    action: str  # "list", "take", "handover" or "leave"
    role: str = ""  # "@name"
    to: str = ""  # the next holder, for handover


@dataclass(frozen=True, slots=True)
class Backup:
    name: str | None = None  # None: show it; "none": clear it


@dataclass(frozen=True, slots=True)
class Push:
    """A browser's Web Push subscription (``PushSubscription.toJSON()``): its endpoint and keys, base64url."""

    action: str  # "add" or "remove"
    endpoint: str
    p256dh: str = ""
    auth: str = ""


Command = (
    Help
    | Name
    | Say
    | Tell
    | Join
    | Leave
    | Who
    | Groups
    | Ping
    | Pong
    | Quit
    | Login
    | Sync
    | History
    | Status
    | Kick
    | Announce
    | Ack
    | Backup
    | Read
    | Trace
    | Oncall
    | Recall
    | Health
    | Push
)

MAX_HISTORY = 500
STATUS_STATES = ("available", "busy", "away", "dnd")


@dataclass(frozen=True, slots=True)
class ParseError:
    """The line could not be understood; ``code`` and ``message`` form the reply."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """How one command is written in the line protocol, and the reply codes it may answer with."""

    name: str
    aliases: tuple[str, ...]
    usage: str
    replies: str


COMMANDS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec("HELP", (), "HELP [command]", "214 400"),
        CommandSpec("NAME", ("REGISTER", "NICK"), "NAME <name>", "201 409 422 403 453"),
        CommandSpec("SAY", ("ALL", "BROADCAST"), "SAY <text>", "250 400"),
        CommandSpec("TELL", ("MSG", "PM"), "TELL <to> <text>", "250 400 404"),
        CommandSpec("JOIN", (), "JOIN #group", "203 422"),
        CommandSpec("LEAVE", ("PART",), "LEAVE #group", "204 404"),
        CommandSpec("WHO", ("USERS", "LIST"), "WHO [#group]", "212 404"),
        CommandSpec("GROUPS", (), "GROUPS", "213"),
        CommandSpec("PING", (), "PING [token]", "200"),
        CommandSpec("PONG", (), "PONG [token]", "none"),
        CommandSpec("QUIT", ("BYE", "EXIT"), "QUIT [reason]", "221"),
        CommandSpec("LOGIN", (), "LOGIN <name> <password>", "202 403 409 429 430 453"),
        CommandSpec("SYNC", (), "SYNC <since>", "215 400 403 410"),
        CommandSpec("HISTORY", (), "HISTORY <#group|name> [count]", "216 403 404"),
        CommandSpec("STATUS", ("AWAY",), "STATUS available|busy|away|dnd [note]", "205 400"),
        CommandSpec("URGENT", ("PAGE", "BLEEP"), "URGENT <to> <text>", "250 400 404"),
        CommandSpec("ACK", ("ACKNOWLEDGE",), "ACK <id>", "206 403 404"),
        CommandSpec("READ", (), "READ <id>", "208 404"),
        CommandSpec("TRACE", (), "TRACE <id>", "217 403 404"),
        CommandSpec(
            "ONCALL", ("ROLE",), "ONCALL [TAKE @role | HANDOVER @role <name> | LEAVE @role]", "209 403 404 409 422"
        ),
        CommandSpec("BACKUP", (), "BACKUP [name|none]", "207 404"),
        CommandSpec("RECALL", ("UNSEND",), "RECALL <id>", "210 403 404"),
        CommandSpec("PUSH", (), "PUSH ADD <endpoint> <p256dh> <auth> | PUSH REMOVE <endpoint>", "211 400 403 451 501"),
        CommandSpec("HEALTH", (), "HEALTH", "218 403"),
        CommandSpec("KICK", (), "KICK <name> [reason]", "200 403 404"),
        CommandSpec("ANNOUNCE", (), "ANNOUNCE <text>", "200 403"),
    )
}

_LOOKUP: dict[str, str] = {}
for _spec in COMMANDS.values():
    _LOOKUP[_spec.name] = _spec.name
    for _alias in _spec.aliases:
        _LOOKUP[_alias] = _spec.name


def resolve(word: str) -> CommandSpec | None:
    """The command a word (any case, alias or not) stands for."""
    canonical = _LOOKUP.get(word.upper())
    return COMMANDS[canonical] if canonical else None


def _usage(spec: CommandSpec) -> ParseError:
    return ParseError(codes.BAD_SYNTAX, f"usage: {spec.usage}")


def parse_target(word: str) -> Target:
    if word.startswith("#"):
        return GroupTarget(word)
    if word.startswith("@") and len(word) > 1:
        return RoleTarget(word)
    names = tuple(n for n in word.split(",") if n)
    return UserTarget(names)


MAX_ENDPOINT = 2048  # push services' endpoints are a few hundred characters
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
LOCAL_HOSTS = ("127.0.0.1", "localhost")  # where a plain http:// endpoint may be: this machine only


def push_problem(endpoint: str, p256dh: str | None = None, auth: str | None = None) -> str | None:
    """What is wrong with a subscription, said so that whoever wrote the client knows what to fix; None when
    it is usable. Only the form is checked here; whether p256dh is a point on the curve is the push code's."""
    if len(endpoint) > MAX_ENDPOINT:
        return f"the endpoint is {len(endpoint)} characters long; at most {MAX_ENDPOINT} are accepted"
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "the endpoint is not a URL: give the subscription's endpoint, https://..."
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        pass  # a stand-in push service on this machine (tests, a local relay): nothing leaves it
    elif parts.scheme != "https" or not host:
        return "the endpoint must be an https:// URL (http:// only on this machine: 127.0.0.1 or localhost)"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "the endpoint must not hold a user name, password or #fragment"
    for label, value, size in (("p256dh", p256dh, 65), ("auth", auth, 16)):
        if value is None:
            continue
        raw = base64url_bytes(value)
        if raw is None or len(raw) != size or (label == "p256dh" and raw[0] != 4):
            what = "an uncompressed P-256 public key" if label == "p256dh" else "the authentication secret"
            return f"{label} must be base64url of {size} bytes, {what} (keys.{label} of the subscription's toJSON())"
    return None


def push_service(endpoint: str) -> str:
    """``scheme://host[:port]`` of an endpoint: the push service, fit for logs and the audit log. The rest of
    the URL names the device and is as good as a key, so it is never shown."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def base64url_bytes(text: str) -> bytes | None:
    """The bytes of base64url text (padded or not), or None when it is not base64url."""
    if not _BASE64URL.fullmatch(text):
        return None
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except ValueError:
        return None


_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ID_USAGE = "usage: ID <client-id> SAY|TELL|URGENT ... (client-id: 1-64 letters, digits, _ . : -)"


def parse_command(line: str) -> Command | ParseError:
    """Parse one cleaned, non-empty line. Never raises.

    ``ID <client-id> SAY ...`` or ``ID <client-id> TELL ...`` tags a message with the client's own id, so a
    retried send is stored once.
    """
    word, _, rest = line.strip().partition(" ")
    if word.upper() == "ID":
        client_id, _, inner = rest.strip().partition(" ")
        if not _CLIENT_ID.fullmatch(client_id) or not inner.strip():
            return ParseError(codes.BAD_SYNTAX, ID_USAGE)
        command = _parse(inner)
        if isinstance(command, Say | Tell):
            return dataclasses.replace(command, client_id=client_id)
        return command if isinstance(command, ParseError) else ParseError(codes.BAD_SYNTAX, ID_USAGE)
    return _parse(line)


def _parse(line: str) -> Command | ParseError:
    word, _, rest = line.strip().partition(" ")
    canonical = _LOOKUP.get(word.upper())
    if canonical is None:
        shown = word if len(word) <= 20 else word[:20] + "..."
        return ParseError(codes.BAD_SYNTAX, f'unknown command "{shown}"; type HELP for the list')
    rest = rest.strip()
    if canonical == "SAY":
        return Say(rest) if rest else _usage(COMMANDS["SAY"])
    if canonical == "TELL" or canonical == "URGENT":
        to, _, text = rest.partition(" ")
        text = text.strip()
        if not to or not text:
            return _usage(COMMANDS[canonical])
        target = parse_target(to)
        if isinstance(target, UserTarget) and not target.names:
            return _usage(COMMANDS[canonical])
        return Tell(target, text, urgent=canonical == "URGENT")
    if canonical in ("ACK", "READ", "TRACE", "RECALL"):
        number = rest.removeprefix("#")
        if not number.isdigit() or len(number) > 18:
            return _usage(COMMANDS[canonical])
        if canonical == "ACK":
            return Ack(int(number))
        if canonical == "RECALL":
            return Recall(int(number))
        return Read(int(number)) if canonical == "READ" else Trace(int(number))
    if canonical == "HEALTH":
        return Health() if not rest else _usage(COMMANDS["HEALTH"])
    args = rest.split()
    if canonical == "NAME":
        return Name(args[0]) if len(args) == 1 else _usage(COMMANDS["NAME"])
    if canonical in ("JOIN", "LEAVE"):
        if len(args) != 1 or not args[0].startswith("#"):
            return _usage(COMMANDS[canonical])
        return Join(args[0]) if canonical == "JOIN" else Leave(args[0])
    if canonical == "WHO":
        if len(args) > 1 or (args and not args[0].startswith("#")):
            return _usage(COMMANDS["WHO"])
        return Who(args[0] if args else None)
    if canonical == "GROUPS":
        return Groups() if not args else _usage(COMMANDS["GROUPS"])
    if canonical == "HELP":
        return Help(args[0] if args else None) if len(args) <= 1 else _usage(COMMANDS["HELP"])
    if canonical == "PING":
        return Ping(rest)
    if canonical == "PONG":
        return Pong(rest)
    if canonical == "LOGIN":
        name, _, password = rest.partition(" ")
        return Login(name, password) if name and password else _usage(COMMANDS["LOGIN"])
    if canonical == "SYNC":
        if len(args) != 1 or not args[0].isdigit() or len(args[0]) > 18:
            return _usage(COMMANDS["SYNC"])
        return Sync(int(args[0]))
    if canonical == "HISTORY":
        if not 1 <= len(args) <= 2 or (len(args) == 2 and (not args[1].isdigit() or len(args[1]) > 6)):
            return _usage(COMMANDS["HISTORY"])
        count = min(MAX_HISTORY, max(1, int(args[1]))) if len(args) == 2 else 20
        target = parse_target(args[0])
        if isinstance(target, UserTarget) and not target.names:
            return _usage(COMMANDS["HISTORY"])
        return History(target, count)
    if canonical == "STATUS":
        state, _, note = rest.partition(" ")
        if state.lower() not in STATUS_STATES:
            return _usage(COMMANDS["STATUS"])
        return Status(state.lower(), note.strip())
    if canonical == "KICK":
        name, _, reason = rest.partition(" ")
        return Kick(name, reason.strip()) if name else _usage(COMMANDS["KICK"])
    if canonical == "ANNOUNCE":
        return Announce(rest) if rest else _usage(COMMANDS["ANNOUNCE"])
    if canonical == "ONCALL":
        if not args:
            return Oncall("list")
        action = args[0].lower()
        if action in ("take", "leave") and len(args) == 2 and args[1].startswith("@") and len(args[1]) > 1:
            return Oncall(action, args[1])
        if action == "handover" and len(args) == 3 and args[1].startswith("@") and len(args[1]) > 1:
            return Oncall(action, args[1], args[2])
        return _usage(COMMANDS["ONCALL"])
    if canonical == "BACKUP":
        if len(args) > 1:
            return _usage(COMMANDS["BACKUP"])
        return Backup(args[0] if args else None)
    if canonical == "PUSH":
        return _parse_push(args)
    return Quit(rest)


def _parse_push(args: list[str]) -> Push | ParseError:
    action = args[0].lower() if args else ""
    if not (action == "add" and len(args) == 4) and not (action == "remove" and len(args) == 2):
        return _usage(COMMANDS["PUSH"])
    problem = push_problem(*args[1:])
    if problem:
        return ParseError(codes.BAD_SYNTAX, f"PUSH: {problem}")
    return Push(action, args[1], *(key.rstrip("=") for key in args[2:]))  # stored without padding, as toJSON()
