"""IRC as a codec of the chat domain: one :class:`IrcCodec` per IRC connection. Pure: lines in, bytes out.

The chat domain (``chat/``) knows nothing of IRC. It gets typed Bleeper commands and answers through the
session's codec (protocol/codec.py) with reply codes, events and messages. This module stands between:

- :meth:`IrcCodec.receive` takes one IRC line and returns what it means: Bleeper commands for the hub (a
  ``PRIVMSG #icu :hi`` is ``TELL #icu hi``), and lines to send back at once for what is IRC's alone
  (registration, ``CAP``, ``MODE`` queries). The transport hands the commands to the hub one at a time.
- The hub's answers come back through :meth:`reply`, :meth:`listing`, :meth:`event` and the message parts.
  Each command the hub was given has exactly one reply, in order, so the codec keeps a queue of what it asked
  for (:class:`Asked`) and renders each reply as that IRC command's answer: a 404 to a ``PRIVMSG`` is 401
  ERR_NOSUCHNICK, a 203 to a ``JOIN`` is the JOIN echo.

Unlike the line protocol's codec this one has state (the nick, the capabilities agreed, the queue), so each
connection has its own. The fan-out loop renders a message once per codec, so for IRC once per recipient,
which IRC needs anyway: a private message names its recipient.

Mapping (docs/protocol.md, "IRC"): ``#name`` is the Bleeper group ``#name``; ``#everyone`` is SAY to
everyone (every IRC client is in it); a nick is a screen name; ``@role`` is an on-call role. Bleeper commands
with no IRC equivalent (ACK, READ, TRACE, ONCALL, BACKUP, STATUS, HISTORY, ...) are taken as they are
(``/quote ACK 42``) and answered with NOTICEs.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from bleeper.protocol import codes
from bleeper.protocol.commands import Command, Login, ParseError, parse_command
from bleeper.protocol.irc import numerics as n
from bleeper.protocol.irc.message import IrcMessage, IrcParseError, body_room, encode, escape_tag, parse

EVERYONE = "#everyone"  # the channel of SAY: every IRC client is in it
# Only what is implemented fully: a client takes an advertised capability at its word.
CAPABILITIES = ("account-tag", "away-notify", "batch", "cap-notify", "echo-message", "labeled-response",
                "message-tags", "sasl", "server-time")  # fmt: skip
CAP_VALUES = {"sasl": "PLAIN"}  # shown to clients that asked with CAP LS 302
Output = Command | bytes  # a command for the hub, or bytes to send as they are

# Bleeper commands an IRC client may send as they are (/quote ACK 42): IRC has no words for them.
RAW_COMMANDS = frozenset({"ACK", "READ", "TRACE", "ONCALL", "BACKUP", "STATUS", "HISTORY", "RECALL", "SYNC", "HELP",
                          "HEALTH", "URGENT", "KICK", "ANNOUNCE", "GROUPS", "PUSH"})  # fmt: skip
ALLOWED_BEFORE_REGISTRATION = frozenset({"CAP", "NICK", "USER", "PASS", "PING", "PONG", "QUIT", "AUTHENTICATE"})
SASL_CHUNK = 400  # base64 bytes per AUTHENTICATE line; a full one means more follows
SASL_MAX = 2048  # base64 bytes of one PLAIN exchange at most (an account name, a password and two NULs)


@dataclass(frozen=True, slots=True)
class Asked:
    """What an IRC command asked the hub, to render the hub's one reply to it as IRC expects."""

    verb: str  # the IRC command: "PRIVMSG", "JOIN", "REGISTER", "RAW", ...
    target: str = ""
    text: str = ""
    quiet: bool = False  # a NOTICE: IRC never answers one with an error
    label: str | None = None  # the client's label for the line this came from (labeled-response)
    last: bool = True  # the last command of that line: its reply completes the labelled response


class IrcCodec:
    name = "irc"

    def __init__(self, server: str, *, network: str = "Bleeper", motd: Iterable[str] = (),
                 fold: Callable[[str], str] = str.casefold, nicklen: int = 32) -> None:  # fmt: skip
        """*fold*: when two names are the same (the chat's rule, chat/names.py, passed in by the transport so
        that protocol/ does not depend on chat/); *nicklen*: the longest name it allows."""
        self.server = server
        self.network = network
        self.motd = list(motd)
        self.fold = fold
        self.nicklen = nicklen
        self.nick = "*"  # as numerics name the client: "*" until registered
        self.wanted = ""  # the nick asked for, until registration gives it
        self.user: str | None = None
        self.password: str | None = None
        self.caps: set[str] = set()
        self.negotiating = False  # between CAP LS/REQ and CAP END: registration waits
        self.registered = False
        self.account = False
        self.counts: Callable[[], tuple[int, int]] = lambda: (0, 0)  # (people online, connections here)
        self.is_account: Callable[[str], bool] = lambda name: False  # whether a name is an account's
        self.people: Callable[[], list[str]] = list  # who is online: #everyone's members
        self.joined: Callable[[], list[tuple[str, list[str]]]] = list  # this connection's groups, with members
        self.cap_version = 0  # 302 when the client asked CAP LS 302 (it then gets capability values)
        self.sasl: str | None = None  # the mechanism under way (AUTHENTICATE PLAIN), and what came of it
        self.sasl_data = ""
        self.signed_in: str | None = None  # the account SASL signed in, before registration ends
        self.asked: deque[Asked] = deque()
        self._gathered = b""  # a labelled line's response so far
        self._batches = 0
        self._message: tuple[int, str, str, str, str] = (0, "", "", "", "")  # the one being delivered
        # Messages sent before the welcome (an account's inbox, replayed before LOGIN's reply): held, and sent
        # after it, since clients take nothing before 001.
        # by id: a live message that came during the inbox's replay is rendered before it, and may be in it
        self._held: dict[int, tuple[tuple[int, str, str, str, str], bool]] | None = {}

    # the hub's Codec protocol: what comes in ------------------------------------------------------------------

    def decode(self, line: str) -> Command | ParseError:
        """Not used: an IRC line may mean several commands or none (see :meth:`receive`)."""
        return ParseError(codes.BAD_SYNTAX, "IRC lines are read by IrcCodec.receive")

    def receive(self, line: str) -> list[Output]:
        """One IRC line (framed, without CRLF): commands for the hub and lines to send now, in order."""
        try:
            message = parse(line)
        except IrcParseError as exc:
            if exc.reason == "malformed":
                return [self._numeric(n.ERR_UNKNOWNCOMMAND, "*", f"Unreadable line: {exc}")]
            return [self._numeric(n.ERR_INPUTTOOLONG, f"Input line was too long ({exc})")]
        label = message.tags.get("label") if "labeled-response" in self.caps else None
        if not label:
            return self._receive(message)
        asked_before = len(self.asked)
        outputs = self._receive(message)
        direct = b"".join(out for out in outputs if isinstance(out, bytes))
        commands: list[Output] = [out for out in outputs if not isinstance(out, bytes)]
        if len(self.asked) == asked_before:  # answered here, or by nothing (PONG): labelled at once
            return [*commands, self._labelled(label, direct)]
        # Answered by the hub: its replies are gathered, with these lines first, and sent as one response
        # when the last of this line's commands has its reply.
        for index in range(asked_before, len(self.asked)):
            self.asked[index] = replace(self.asked[index], label=label, last=index == len(self.asked) - 1)
        self._gathered = direct
        return commands

    def _receive(self, message: IrcMessage) -> list[Output]:
        verb = message.command
        if not self.registered and verb not in ALLOWED_BEFORE_REGISTRATION:
            return [self._numeric(n.ERR_NOTREGISTERED, "You have not registered")]
        handler = getattr(self, f"_irc_{verb.lower()}", None)
        if handler is not None:
            result: list[Output] = handler(message)
            return result
        if verb in RAW_COMMANDS:
            return self._ask(Asked("RAW", verb), parse_command(" ".join((verb, *message.params))))
        return [self._numeric(n.ERR_UNKNOWNCOMMAND, verb, "Unknown command")]

    def _answered(self, asked: Asked | None, data: bytes) -> bytes:
        """The hub's reply to *asked*, rendered: sent now, or gathered into its line's labelled response."""
        if asked is None or asked.label is None:
            return data
        self._gathered += data
        if not asked.last:
            return b""
        gathered, self._gathered = self._gathered, b""
        return self._labelled(asked.label, gathered)

    def _labelled(self, label: str, data: bytes) -> bytes:
        """A labelled command's response (IRCv3 labeled-response): nothing is an ACK, one line carries the
        label, several come in a batch that carries it."""
        lines = data.split(b"\r\n")[:-1]
        if not lines:
            return encode(IrcMessage("ACK", (), self.server, {"label": label}))
        if len(lines) == 1:
            return _tag(lines[0], "label", label) + b"\r\n"
        self._batches += 1
        ref = f"L{self._batches}"
        return b"".join([encode(IrcMessage("BATCH", (f"+{ref}", "labeled-response"), self.server, {"label": label})),
                         *(_tag(line, "batch", ref) + b"\r\n" for line in lines),
                         encode(IrcMessage("BATCH", (f"-{ref}",), self.server))])  # fmt: skip

    def _ask(self, asked: Asked, command: Command | ParseError) -> list[Output]:
        if isinstance(command, ParseError):
            return [] if asked.quiet else [self._server_notice(f"{command.code} {command.message}")]
        self.asked.append(asked)
        return [command]

    def _bleeper(self, asked: Asked, line: str) -> list[Output]:
        return self._ask(asked, parse_command(line))

    # registration ---------------------------------------------------------------------------------------------

    def _irc_cap(self, message: IrcMessage) -> list[Output]:
        sub = message.param(0).upper()
        if sub == "LS":
            self.negotiating = not self.registered
            version = message.param(1)
            self.cap_version = max(self.cap_version, int(version) if version.isascii() and version.isdigit() else 0)
            shown = [f"{cap}={CAP_VALUES[cap]}" if self.cap_version >= 302 and cap in CAP_VALUES else cap
                     for cap in CAPABILITIES]  # fmt: skip
            return [self._line("CAP", self.nick, "LS", " ".join(shown))]
        if sub == "LIST":
            return [self._line("CAP", self.nick, "LIST", " ".join(sorted(self.caps)))]
        if sub == "REQ":
            self.negotiating = not self.registered
            wanted = message.param(1).split()
            if all(cap.lstrip("-") in CAPABILITIES for cap in wanted):
                for cap in wanted:
                    if cap.startswith("-"):
                        self.caps.discard(cap[1:])
                    else:
                        self.caps.add(cap)
                return [self._line("CAP", self.nick, "ACK", message.param(1))]
            return [self._line("CAP", self.nick, "NAK", message.param(1))]
        if sub == "END":
            self.negotiating = False
            return self._register()
        return [self._numeric("410", sub or "*", "Invalid CAP command")]

    def _irc_pass(self, message: IrcMessage) -> list[Output]:
        if self.registered:
            return [self._numeric(n.ERR_ALREADYREGISTERED, "You may not reregister")]
        if not message.params:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")]
        self.password = message.params[-1]
        return []

    def _irc_nick(self, message: IrcMessage) -> list[Output]:
        wanted = message.param(0)
        if not wanted:
            return [self._numeric(n.ERR_NONICKNAMEGIVEN, "No nickname given")]
        if self.registered:
            if wanted == self.nick:
                return []
            if self.account:
                return [self._numeric("447", f"Cannot change nickname: an account's nick is its account name "
                                             f"({self.nick})")]  # fmt: skip
            return self._bleeper(Asked("NICK", wanted), f"NAME {wanted}")
        self.wanted = wanted
        return self._register()

    def _irc_user(self, message: IrcMessage) -> list[Output]:
        if self.registered:
            return [self._numeric(n.ERR_ALREADYREGISTERED, "You may not reregister")]
        if len(message.params) < 4:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")]
        self.user = message.params[0]
        return self._register()

    def _register(self) -> list[Output]:
        """NICK and USER are in and CAP negotiation is over: take the name (LOGIN with PASS, else NAME)."""
        if self.registered or self.negotiating or self.user is None or not self.wanted:
            return []
        if any(asked.verb in ("REGISTER", "SASL") for asked in self.asked):
            return []
        if self.signed_in is not None:  # SASL has logged the account in: its name is the nick
            return [self._welcome(self.signed_in)]
        if self.password is not None:
            return self._ask(Asked("REGISTER", self.wanted), Login(self.wanted, self.password))
        return self._bleeper(Asked("REGISTER", self.wanted), f"NAME {self.wanted}")

    def _irc_authenticate(self, message: IrcMessage) -> list[Output]:
        """SASL PLAIN (IRCv3 SASL 3.1/3.2): the account signs in before registration ends (a LOGIN)."""
        data = message.param(0)
        if "sasl" not in self.caps or self.registered:
            return [self._numeric("904", "SASL authentication failed (CAP REQ :sasl first, before registering)")]
        if self.signed_in is not None:
            return [self._numeric("907", "You have already authenticated using SASL")]
        if data == "*":
            self.sasl, self.sasl_data = None, ""
            return [self._numeric("906", "SASL authentication aborted")]
        if self.sasl is None:
            if data.upper() != "PLAIN":
                return [self._numeric("908", "PLAIN", "are available SASL mechanisms"),
                        self._numeric("904", "SASL authentication failed")]  # fmt: skip
            self.sasl, self.sasl_data = "PLAIN", ""
            return [encode(IrcMessage("AUTHENTICATE", ("+",)))]
        if len(data) > SASL_CHUNK or len(self.sasl_data) + len(data) > SASL_MAX:
            self.sasl, self.sasl_data = None, ""
            return [self._numeric("905", "SASL message too long")]
        if data != "+":
            self.sasl_data += data
        if len(data) == SASL_CHUNK:
            return []  # more follows
        raw, self.sasl, self.sasl_data = self.sasl_data, None, ""
        try:
            _, account, password = base64.b64decode(raw, validate=True).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            return [self._numeric("904", "SASL authentication failed (not base64 of authzid NUL authcid NUL password)")]
        if not account or not password:
            return [self._numeric("904", "SASL authentication failed (an account and a password are needed)")]
        return self._ask(Asked("SASL", account), Login(account, password))

    def _welcome(self, name: str) -> bytes:
        self.registered = True
        self.nick = name
        isupport = [f"NETWORK={self.network}", "CASEMAPPING=rfc8265", "CHANTYPES=#", f"NICKLEN={self.nicklen}",
                    f"CHANNELLEN={self.nicklen + 1}", "PREFIX=", "CHANMODES=,,,", "MODES=0"]  # fmt: skip
        lines = [
            self._numeric(n.RPL_WELCOME, f"Welcome to the {self.network} network, {name}"),
            self._numeric(n.RPL_YOURHOST, f"Your host is {self.server}, running Bleeper"),
            self._numeric(n.RPL_CREATED, "This server speaks IRC for Bleeper"),
            self._numeric(n.RPL_MYINFO, self.server, "bleeper", "o", ""),  # user mode o (OPER); no channel modes
            self._numeric(n.RPL_ISUPPORT, *isupport, "are supported by this server"),
            self._lusers(),
            self._motd(),
            self._from(name, "JOIN", EVERYONE),
            self._names(EVERYONE, self.people()),
        ]
        for group, members in self.joined():  # an account's groups: joined as it signed in
            lines += [self._from(name, "JOIN", group), self._names(group, members)]
        held, self._held = self._held or {}, None
        return b"".join(lines + [self._render(*held[msg_id]) for msg_id in sorted(held)])

    def _lusers(self) -> bytes:
        people, here = self.counts()
        return (self._numeric(n.RPL_LUSERCLIENT, f"There are {people} users and 0 invisible on 1 servers")
                + self._numeric(n.RPL_LUSERME, f"I have {here} clients and 0 servers"))  # fmt: skip

    def _motd(self) -> bytes:
        if not self.motd:
            return self._numeric(n.ERR_NOMOTD, "MOTD File is missing")
        return b"".join([self._numeric(n.RPL_MOTDSTART, f"- {self.server} Message of the day -"),
                         *(self._numeric(n.RPL_MOTD, f"- {text}") for text in self.motd),
                         self._numeric(n.RPL_ENDOFMOTD, "End of /MOTD command")])  # fmt: skip

    # after registration ---------------------------------------------------------------------------------------

    def _irc_lusers(self, message: IrcMessage) -> list[Output]:
        return [self._lusers()]

    def _irc_motd(self, message: IrcMessage) -> list[Output]:
        return [self._motd()]

    def _irc_topic(self, message: IrcMessage) -> list[Output]:
        channel = message.param(0)
        if not channel:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "TOPIC", "Not enough parameters")]
        if len(message.params) > 1:
            return [self._numeric("482", channel, "Bleeper groups have no topic to set")]
        return [self._numeric(n.RPL_NOTOPIC, channel, "No topic is set")]

    def _irc_list(self, message: IrcMessage) -> list[Output]:
        return self._bleeper(Asked("LIST"), "GROUPS")

    def _irc_whois(self, message: IrcMessage) -> list[Output]:
        nick = message.params[-1] if message.params else ""
        if not nick:
            return [self._numeric(n.ERR_NONICKNAMEGIVEN, "No nickname given")]
        return self._bleeper(Asked("WHOIS", nick), "WHO")

    def _irc_ping(self, message: IrcMessage) -> list[Output]:
        return self._bleeper(Asked("PING", text=message.param(0)), f"PING {message.param(0)}".rstrip())

    def _irc_pong(self, message: IrcMessage) -> list[Output]:
        command = parse_command(f"PONG {message.params[-1] if message.params else ''}".rstrip())
        return [] if isinstance(command, ParseError) else [command]  # answered by nothing, as IRC expects

    def _irc_quit(self, message: IrcMessage) -> list[Output]:
        return self._bleeper(Asked("QUIT"), f"QUIT {message.param(0)}".rstrip())

    def _irc_privmsg(self, message: IrcMessage, quiet: bool = False) -> list[Output]:
        verb = message.command
        if not message.params:
            return [] if quiet else [self._numeric(n.ERR_NORECIPIENT, f"No recipient given ({verb})")]
        if len(message.params) < 2 or not message.params[1]:
            return [] if quiet else [self._numeric(n.ERR_NOTEXTTOSEND, "No text to send")]
        text = message.params[1]
        out: list[Output] = []
        people = []
        for target in message.params[0].split(","):
            if self.fold(target) == EVERYONE:
                out += self._bleeper(Asked(verb, target, text, quiet), f"SAY {text}")
            elif target.startswith(("#", "@")):
                out += self._bleeper(Asked(verb, target, text, quiet), f"TELL {target} {text}")
            elif target:
                people.append(target)
        people = list({self.fold(person): person for person in people}.values())  # each once, as TELL does
        if people:
            out += self._bleeper(Asked(verb, ",".join(people), text, quiet), f"TELL {','.join(people)} {text}")
        return out

    def _irc_notice(self, message: IrcMessage) -> list[Output]:
        return self._irc_privmsg(message, quiet=True)

    def _irc_tagmsg(self, message: IrcMessage) -> list[Output]:
        """A message of tags only (typing notifications, reactions): its tags are all client-only ones,
        which Bleeper does not relay (message-tags lets a server drop them), so there is nothing to send."""
        return []

    def _irc_join(self, message: IrcMessage) -> list[Output]:
        if not message.params:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")]
        out: list[Output] = []
        for channel in message.params[0].split(","):
            if self.fold(channel) == EVERYONE:
                continue  # joined at registration, and never left
            out += self._bleeper(Asked("JOIN", channel), f"JOIN {channel}")
            out += self._bleeper(Asked("NAMES", channel), f"WHO {channel}")
        return out

    def _irc_part(self, message: IrcMessage) -> list[Output]:
        if not message.params:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")]
        out: list[Output] = []
        for channel in message.params[0].split(","):
            out += self._bleeper(Asked("PART", channel), f"LEAVE {channel}")
        return out

    def _irc_names(self, message: IrcMessage) -> list[Output]:
        channel = message.param(0) or EVERYONE
        return self._bleeper(Asked("NAMES", channel), "WHO" if self.fold(channel) == EVERYONE else f"WHO {channel}")

    def _irc_who(self, message: IrcMessage) -> list[Output]:
        mask = message.param(0)
        if mask.startswith("#") and self.fold(mask) != EVERYONE:
            return self._bleeper(Asked("WHO", mask), f"WHO {mask}")
        return self._bleeper(Asked("WHO", mask or "*"), "WHO")

    def _irc_away(self, message: IrcMessage) -> list[Output]:
        text = message.param(0)
        line = f"STATUS away {text}".rstrip() if text else "STATUS available"
        return self._bleeper(Asked("AWAY", text=text), line)

    def _irc_mode(self, message: IrcMessage) -> list[Output]:
        target = message.param(0)
        if not target:
            return [self._numeric(n.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")]
        changes = message.params[1:]
        if target.startswith("#"):
            if not changes or changes[0] in ("b", "+b"):  # a query, or the ban list clients ask for on JOIN
                if changes:
                    return [self._numeric("368", target, "End of channel ban list")]
                return [self._numeric(n.RPL_CHANNELMODEIS, target, "+")]
            return [self._numeric(n.ERR_UNKNOWNMODE, changes[0].lstrip("+-")[:1] or "*",
                                  "Bleeper groups have no channel modes")]  # fmt: skip
        if self.fold(target) != self.fold(self.nick):
            return [self._numeric("502", "Cannot change mode for other users")]
        if not changes:
            return [self._numeric(n.RPL_UMODEIS, "+")]
        return [self._numeric(n.ERR_UMODEUNKNOWNFLAG, "Bleeper has no user modes (none is needed)")]

    # the hub's Codec protocol: what goes out ---------------------------------------------------------------

    def reply(self, code: int, text: str) -> bytes:
        asked = self.asked[0] if self.asked else None
        return self._answered(asked, self._reply(code, text))

    def listing(self, code: int, items: Iterable[str], summary: str) -> bytes:
        asked = self.asked[0] if self.asked else None
        return self._answered(asked, self._listing(code, items, summary))

    def _reply(self, code: int, text: str) -> bytes:
        asked = self.asked.popleft() if self.asked else None
        if asked is None:
            if code == codes.GREETING:  # (its words are for the line protocol: NAME is IRC's NICK and USER)
                return self._server_notice(f"*** Connected to {self.server} (Bleeper); registering")
            return self._server_notice(f"{code} {text}")
        ok = 200 <= code < 300
        verb = asked.verb
        if verb == "REGISTER":
            return self._registered(asked.target, code, text)
        if verb == "SASL":
            if code == codes.LOGGED_IN:
                self.signed_in = text.split(" ", 1)[0]
                self.account = True
                mask = f"{self.signed_in}!{self.user or self.signed_in}@{self.server}"
                return (self._numeric("900", mask, self.signed_in, f"You are now logged in as {self.signed_in}")
                        + self._numeric("903", "SASL authentication successful"))  # fmt: skip
            return self._numeric("904", f"SASL authentication failed ({text})")
        if verb in ("PRIVMSG", "NOTICE"):
            return self._sent(asked, code, text)
        if verb == "NICK":
            if code == codes.NAME_ACCEPTED:
                old, self.nick = self.nick, text.split(" ", 1)[0]
                return self._from(old, "NICK", self.nick)
            if code == codes.NAME_TAKEN:
                return self._numeric(n.ERR_NICKNAMEINUSE, asked.target, f"Nickname is already in use ({text})")
            if code == codes.INVALID_NAME:
                return self._numeric(n.ERR_ERRONEUSNICKNAME, asked.target, f"Erroneous nickname ({text})")
            return self._numeric("447", f"Cannot change nickname ({text})")
        if verb == "JOIN":
            if ok:
                return self._from(self.nick, "JOIN", text.split(" ", 1)[0])
            return self._numeric(n.ERR_NOSUCHCHANNEL, asked.target, text)
        if verb == "PART":
            if ok:
                return self._from(self.nick, "PART", text.split(" ", 1)[0])
            return self._numeric(n.ERR_NOTONCHANNEL if code == codes.NOT_FOUND else n.ERR_NOSUCHCHANNEL,
                                 asked.target, text)  # fmt: skip
        if verb == "PING":
            return self._line("PONG", self.server, asked.text or self.server)
        if verb == "AWAY":
            if ok:
                return self._numeric(n.RPL_NOWAWAY if asked.text else n.RPL_UNAWAY,
                                     "You have been marked as being away" if asked.text
                                     else "You are no longer marked as being away")  # fmt: skip
            return self._server_notice(f"{code} {text}")
        if verb == "QUIT":
            return self._line("ERROR", f"Closing link: {self.nick} ({text})")
        if verb in ("NAMES", "WHO"):  # a refusal: no such group
            end = n.RPL_ENDOFNAMES if verb == "NAMES" else n.RPL_ENDOFWHO
            return self._numeric(n.ERR_NOSUCHCHANNEL, asked.target, text) + self._numeric(end, asked.target, "End")
        return self._server_notice(f"{code} {text}")

    def _listing(self, code: int, items: Iterable[str], summary: str) -> bytes:
        asked = self.asked.popleft() if self.asked else None
        items = list(items)
        names = [item.split(" ", 1)[0] for item in items]
        if asked is not None and asked.verb == "LIST":
            return b"".join([self._numeric("321", "Channel", "Users  Name"),
                             self._numeric("322", EVERYONE, str(self.counts()[0]), "Everyone on Bleeper (SAY)"),
                             *(self._numeric("322", name, item.rpartition("members=")[2] or "0", "")
                               for name, item in zip(names, items, strict=True)),
                             self._numeric("323", "End of /LIST")])  # fmt: skip
        if asked is not None and asked.verb == "WHOIS":
            return self._whois(asked.target, names, items)
        if asked is not None and asked.verb == "NAMES":
            return self._names(asked.target, names)
        if asked is not None and asked.verb == "WHO":
            return self._who(asked.target, names, items)
        lines = [self._server_notice(item) for item in items]
        lines.append(self._server_notice(f"{code} {summary}"))
        return b"".join(lines)

    def _who(self, mask: str, names: list[str], items: list[str]) -> bytes:
        """352 for each person of a channel, of everyone (``*``), or the one named; G when away, busy or in
        do-not-disturb, else H."""
        channel = mask if mask.startswith("#") else "*"
        lines = []
        for name, item in zip(names, items, strict=True):
            if channel == "*" and mask != "*" and self.fold(name) != self.fold(mask):
                continue
            away = any(f" status={state}" in item for state in ("away", "busy", "dnd"))
            lines.append(self._numeric(n.RPL_WHOREPLY, channel, name, self.server, self.server, name,
                                       "G" if away else "H", f"0 {name}"))  # fmt: skip
        return b"".join(lines) + self._numeric(n.RPL_ENDOFWHO, mask, "End of WHO list")

    def _whois(self, nick: str, names: list[str], items: list[str]) -> bytes:
        """WHOIS from WHO's list: who they are, their groups, whether away."""
        found = [(name, item) for name, item in zip(names, items, strict=True) if self.fold(name) == self.fold(nick)]
        if not found:
            return self._numeric(n.ERR_NOSUCHNICK, nick, "No such nick") + self._numeric(
                "318", nick, "End of /WHOIS list"
            )
        name, item = found[0]
        fields = dict(part.partition("=")[::2] for part in item.split(" note=")[0].split(" ")[1:])
        note = item.partition(" note=")[2]
        lines = [self._numeric("311", name, name, self.server, "*", name)]
        groups = [EVERYONE, *filter(None, fields.get("groups", "").split(","))]
        lines.append(self._numeric("319", name, " ".join(groups)))
        lines.append(self._numeric("312", name, self.server, "Bleeper"))
        if fields.get("status") in ("away", "busy", "dnd"):
            lines.append(self._numeric(n.RPL_AWAY, name, f"{fields['status']}{': ' + note if note else ''}"))
        lines.append(self._numeric("318", name, "End of /WHOIS list"))
        return b"".join(lines)

    def _names(self, channel: str, names: list[str]) -> bytes:
        lines = []
        room = body_room(self.server, n.RPL_NAMREPLY, self.nick, "=", channel)
        chunk: list[str] = []
        for name in names:
            if chunk and len(" ".join([*chunk, name]).encode()) > room:
                lines.append(self._numeric(n.RPL_NAMREPLY, "=", channel, " ".join(chunk)))
                chunk = []
            chunk.append(name)
        if chunk:
            lines.append(self._numeric(n.RPL_NAMREPLY, "=", channel, " ".join(chunk)))
        lines.append(self._numeric(n.RPL_ENDOFNAMES, channel, "End of /NAMES list"))
        return b"".join(lines)

    def event(self, kind: str, *params: str) -> bytes:
        if kind == "JOIN" and len(params) >= 2:
            return self._from(params[1], "JOIN", params[0])
        if kind == "LEAVE" and len(params) >= 2:
            return self._from(params[1], "PART", params[0])
        if kind == "ONLINE" and params:
            return self._from(params[0], "JOIN", EVERYONE)
        if kind == "RENAMED" and len(params) >= 2:
            return self._from(params[0], "NICK", params[1])
        if kind == "OFFLINE" and params:
            return self._from(params[0], "QUIT", " ".join(params[1:]) or "offline")
        if kind == "PING":
            return self._line("PING", params[0] if params else self.server)
        if kind == "PRESENCE" and len(params) >= 2:  # someone's STATUS (or AWAY) changed
            if "away-notify" not in self.caps:
                return b""
            state, note = params[1], " ".join(params[2:])
            if state == "available":
                return self._from(params[0], "AWAY")
            return self._from(params[0], "AWAY", f"{state}: {note}" if note else state)
        if kind == "DELIVERED":
            return b""  # one per private message would drown an IRC window; TRACE <id> shows them
        if kind == "CLOSING":
            return self._line("ERROR", f"Closing link: {self.nick} ({' '.join(params)})")
        return self._server_notice(" ".join((kind, *params)))

    # A delivered message is rendered whole in its head: the shared tail, made first, only notes what it is.
    # (An IRC line names its recipient and says whether it is urgent, and each IRC connection has a codec of
    # its own, so there is nothing to share.)

    def message_tail(self, msg_id: int, time: str, sender: str, to: str, text: str) -> bytes:
        self._message = (msg_id, time, sender, to, text)
        return b""

    def message_head(self, seq: int) -> bytes:
        return self._render(self._message, urgent=False)

    def urgent_head(self, seq: int) -> bytes:
        return self._render(self._message, urgent=True)

    def _render(self, message: tuple[int, str, str, str, str], urgent: bool) -> bytes:
        """A message as IRC lines; an urgent one is a NOTICE from its sender, marked, saying how to
        acknowledge it. Before registration it waits for the welcome (clients take nothing before 001, and
        the nick it is addressed to is only settled then)."""
        if self._held is not None:
            self._held[message[0]] = (message, urgent)
            return b""
        msg_id, time, sender, to, text = message
        target, text = self._target(to, text)
        if urgent:
            marked = f"[URGENT {msg_id}] {text} (acknowledge: /quote ACK {msg_id})"
            return self._messages("NOTICE", sender, target, marked, msg_id, time)
        return self._messages("PRIVMSG", sender, target, text, msg_id, time)

    def _target(self, to: str, text: str) -> tuple[str, str]:
        """Where a message shows on IRC: its channel, or this connection's nick with the others it was for
        named when there were several, or the on-call role (or the person a page was escalated from)."""
        if to == "*":
            return EVERYONE, text
        if to.startswith("#"):
            return to, text
        me = self.nick if self.registered else self.wanted or self.nick
        if to.startswith("@") and "," in to:
            return me, f"[to {to[1:]}] {text}"
        if to.startswith("@") and self.fold(to[1:]) != self.fold(me):
            return me, f"[{to}] {text}"
        return me, text

    def _messages(self, verb: str, sender: str, target: str, text: str, msg_id: int, time: str) -> bytes:
        """PRIVMSG (or NOTICE) lines, as many as a long text needs (a Bleeper message may be 4 KB; an IRC line
        is 512 bytes)."""
        source = f"{sender}!{sender}@{self.server}"
        tags: dict[str, str] = {}
        if "server-time" in self.caps and time:
            tags["time"] = time
        if "account-tag" in self.caps and self.is_account(sender):
            tags["account"] = sender
        room = body_room(source, verb, target)
        lines = []
        for number, piece in enumerate(_split(text, room), 1):
            if "message-tags" in self.caps and msg_id:  # Bleeper's id; a long text's further lines: <id>.<n>
                tags["msgid"] = str(msg_id) if number == 1 else f"{msg_id}.{number}"
            lines.append(encode(IrcMessage(verb, (target, piece), source, dict(tags))))
        return b"".join(lines)

    # replies to a message, and registration ----------------------------------------------------------------------

    def _sent(self, asked: Asked, code: int, text: str) -> bytes:
        if code == codes.MESSAGE_ACCEPTED:
            if "echo-message" not in self.caps:
                return b""
            msg_id, time = [*text.split(" ", 2), "", ""][:2]
            target = asked.target
            return self._messages(
                asked.verb, self.nick, target, asked.text, int(msg_id) if msg_id.isdigit() else 0, time
            )
        if asked.quiet:
            return b""
        if code == codes.NOT_FOUND:
            if asked.target.startswith("#"):
                return self._numeric(n.ERR_NOSUCHCHANNEL, asked.target, text)
            return self._numeric(n.ERR_NOSUCHNICK, asked.target, text)
        if code == codes.FORBIDDEN:
            return self._numeric(n.ERR_CANNOTSENDTOCHAN, asked.target, text)
        return self._server_notice(f"{code} {text}")

    def _registered(self, wanted: str, code: int, text: str) -> bytes:
        """The answer to the NAME or LOGIN that registration asked for *wanted*: the welcome, or why not (the
        client may then try again: another NICK, or the same one later)."""
        if code in (codes.NAME_ACCEPTED, codes.LOGGED_IN):
            self.account = code == codes.LOGGED_IN
            return self._welcome(text.split(" ", 1)[0])
        if self.wanted == wanted:
            self.wanted = ""
        if code == codes.NAME_TAKEN:
            return self._numeric(n.ERR_NICKNAMEINUSE, wanted, f"Nickname is already in use ({text})")
        if code == codes.INVALID_NAME:
            return self._numeric(n.ERR_ERRONEUSNICKNAME, wanted, f"Erroneous nickname ({text})")
        if code == codes.LOGIN_FAILED:
            return self._numeric(n.ERR_PASSWDMISMATCH, f"Password incorrect ({text})")
        if code == codes.FORBIDDEN:  # --auth required: only accounts may come in
            return self._numeric(n.ERR_PASSWDMISMATCH, f"This server needs an account: sign in with SASL or PASS "
                                                        f"({text})")  # fmt: skip
        self.wanted = wanted  # (slow down, or names cannot be checked just now: the same nick again later)
        return self._server_notice(f"Registration as {wanted} failed for now: {code} {text}; try again shortly")

    # for the transport ---------------------------------------------------------------------------------------

    def too_long(self, detail: str) -> bytes:
        """A line the framer cut short (past every limit): 417, and the connection stays."""
        return self._numeric(n.ERR_INPUTTOOLONG, f"Input line was too long ({detail})")

    def notice(self, text: str) -> bytes:
        return self._server_notice(text)

    # lines ------------------------------------------------------------------------------------------------------

    def _line(self, command: str, *params: str) -> bytes:
        return encode(IrcMessage(command, _safe(params), self.server))

    def _numeric(self, numeric: str, *params: str) -> bytes:
        return encode(IrcMessage(numeric, _safe((self.nick, *params)), self.server))

    def _from(self, who: str, command: str, *params: str) -> bytes:
        return encode(IrcMessage(command, _safe(params), f"{who}!{who}@{self.server}"))

    def _server_notice(self, text: str) -> bytes:
        room = body_room(self.server, "NOTICE", self.nick)
        return b"".join(encode(IrcMessage("NOTICE", (self.nick, piece), self.server)) for piece in _split(text, room))


def _safe(params: tuple[str, ...]) -> tuple[str, ...]:
    """Parameters as a line can carry them, whatever a client sent that is echoed in them (a nick or channel
    given as ``:a b``): a middle one without spaces or a leading ':', never empty; no CR, LF or NUL."""
    if not params:
        return params
    cleaned = [param.replace("\r", "").replace("\n", "").replace("\0", "") for param in params]
    middle = [param.replace(" ", "_").lstrip(":") or "*" for param in cleaned[:-1]]
    return (*middle, cleaned[-1])


def _split(text: str, room: int) -> list[str]:
    """*text* in pieces of at most *room* bytes, at spaces where possible, never inside a character."""
    pieces = []
    room = max(room, 64)  # a line whose prefix leaves less (a client's own long target list) runs over: rare
    while len(text.encode()) > room:
        cut = room
        while cut > 1 and len(text[:cut].encode()) > room:
            cut -= 1
        space = text.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        pieces.append(text[:cut])
        text = text[cut:].lstrip(" ")
    pieces.append(text)
    return pieces


def _tag(line: bytes, key: str, value: str) -> bytes:
    """*line* (encoded, without CRLF) with one more tag."""
    tag = f"{key}={escape_tag(value)}".encode()
    return b"@" + tag + b";" + line[1:] if line.startswith(b"@") else b"@" + tag + b" " + line
