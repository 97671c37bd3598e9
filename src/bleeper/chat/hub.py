"""The hub: the chat domain assembled. It takes lines from connections and hands each command to the feature
that owns it.

Where is a command handled? In the module named in :data:`FEATURES`'s order below: ``chat/identity.py``
(NAME, LOGIN), ``chat/messaging.py`` (SAY, TELL, URGENT), ``chat/groups.py``, ``chat/catchup.py`` (SYNC,
HISTORY), ``chat/receipts.py`` (READ, TRACE, RECALL), ``chat/paging.py`` (ACK, BACKUP, alerts, escalation),
``chat/oncall.py``, ``chat/status.py``, ``chat/admin.py``, ``chat/push.py`` and ``chat/basics.py`` (HELP,
PING, PONG, QUIT). Each lists its commands in ``VERBS`` (handler, HELP's summary, whether a name is needed
first); the state they share and the operations they all use are in ``chat/core.py``. This module keeps what
comes before any feature: the checks every command passes (rate, a name first) and the event console's
command log.

Two entry points: :meth:`Hub.handle` takes a line and decodes it with the session's codec;
:meth:`Hub.handle_command` takes a command already decoded, for a listener whose protocol frames and parses
its own way (see protocol/codec.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from bleeper.chat import admin, basics, catchup, groups, identity, messaging, oncall, paging, push, receipts, status
from bleeper.chat.backend import Pending
from bleeper.chat.core import Core, Group, Handler, HubLimits, Verb
from bleeper.chat.ratelimit import ALLOWED, FLOOD
from bleeper.chat.records import Account
from bleeper.chat.session import Session
from bleeper.chat.standing import ROLE, Standing, holder_row
from bleeper.protocol import codes
from bleeper.protocol.commands import (
    Command,
    History,
    Join,
    Leave,
    Login,
    Name,
    ParseError,
    Pong,
    Push,
    Quit,
    Say,
    Sync,
    Tell,
    UserTarget,
    Who,
    push_service,
)
from bleeper.protocol.framing import FramingError, LineTooLong

log = logging.getLogger("bleeper.events")

FEATURES = (identity, messaging, groups, catchup, receipts, paging, oncall, status, admin, push, basics)


class Hub(Core):
    """All chat rules. Feed it lines with :meth:`handle`; it answers through each session's peer."""

    def __init__(self, limits: HubLimits | None = None, **options: Any) -> None:
        super().__init__(limits, **options)
        self._handlers: dict[type, Handler] = {}
        for feature in FEATURES:
            for verb in feature.VERBS:
                self.add_verb(verb)

    def add_verb(self, verb: Verb) -> None:
        """Offer a command: its handler joins the dispatch table and its summary HELP. Commands that parse
        to one type (TELL and URGENT) share one handler."""
        known = self._handlers.setdefault(verb.kind, verb.handler)
        if known is not verb.handler:
            raise ValueError(f"{verb.name}: {verb.kind.__name__} is handled already by {known!r}")
        if self.verbs.setdefault(verb.name, verb) is not verb:
            raise ValueError(f"{verb.name} is offered twice")

    def alert_urgent(self) -> None:
        """Called every second or so: alert again, or escalate, what nobody has acknowledged in time."""
        paging.alert_urgent(self)

    def know_accounts(self, accounts: Iterable[Account]) -> None:
        """Tell the hub which names belong to accounts (at start, and whenever the list is re-read)."""
        self.accounts = {account.key: account.name for account in accounts}

    def load_groups(self, groups: dict[str, tuple[str, set[str]]]) -> None:
        """Groups and their account members as stored, so memberships survive restarts."""
        for key, (name, accounts) in groups.items():
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(name)
            group.accounts |= accounts

    def restore(self, standing: Standing, texts: Mapping[int, str]) -> None:
        """On-call roles, backups and unacknowledged urgent messages as they stood when the server stopped
        (*texts*: the stored text of each urgent message, by id). Their alerts resume an interval from now."""
        for key, role in standing.roles.items():
            for holder in role.holders:
                self.roles.take(key, role.name, holder)
        now_ms = int(self.clock() * 1000)
        for key in standing.old_roles:  # an older server's one row per role, rewritten a row per holder
            role = standing.roles[key]
            for holder in role.holders:
                self.backend.keep(*holder_row(key, role.name, holder, now_ms))
            self.backend.keep(ROLE, key, None)
        self.backups.update(standing.backups)
        now, now_ms = self.monotonic(), int(self.clock() * 1000)
        for urgent in standing.urgent:
            urgent.text = texts.get(urgent.id, "")
            self.urgent.resume(urgent, now, max(0, now_ms - urgent.sent_ms) / 1000)

    def handle(self, session: Session, line: str) -> Pending[object] | None:
        """One line from a client: every non-blank line gets exactly one reply (PONG excepted).

        Returns a pending answer when the reply waits for storage; the caller must not feed this session's
        next line until it is done.
        """
        if session.closing:
            return None
        if not line or line.isspace():
            session.last_active = self.monotonic()
            session.ping_sent = None
            return None
        return self.handle_command(session, session.codec.decode(line))

    def handle_command(self, session: Session, command: Command | ParseError) -> Pending[object] | None:
        """One decoded command (or the reason a line could not be decoded): as :meth:`handle` after parsing."""
        if session.closing:
            return None
        now = self.monotonic()
        session.last_active = now
        session.ping_sent = None
        if type(command) is not Quit and type(command) is not Pong:
            verdict = session.bucket.take(now)
            if verdict is not ALLOWED:
                if verdict == FLOOD:
                    self.drop(session, "flood: too many commands; reconnect and slow down")
                else:
                    self.reply(session, codes.SLOW_DOWN, "slow down: too many commands; wait a moment")
                return None
        if isinstance(command, ParseError):
            self.reply(session, command.code, command.message)
            return None
        if session.key is None and self.verbs[_canonical(command)].needs_name:  # NAME answers why it cannot
            if self.limits.auth == "required":
                self.reply(session, codes.NAME_FIRST, "log in first: LOGIN <name> <password>")
            else:
                self.reply(session, codes.NAME_FIRST, "choose a name first: NAME <your name>")
            return None
        if log.isEnabledFor(logging.INFO):
            self._log_command(session, command)
        return self._handlers[type(command)](self, session, command)

    def count_line(self, session: Session, flood: str = "flood: too many commands") -> bool:
        """A line answered without a command (a bad line here, or another protocol's own: IRC's CAP or MODE)
        still counts against the session's rate: a flood of them is cut. False when the session was."""
        if session.closing:
            return False
        now = self.monotonic()
        session.last_active = now
        session.ping_sent = None
        if session.bucket.take(now) == FLOOD:
            self.drop(session, f"{flood}; reconnect and slow down")
            return False
        return True

    def framing_error(self, session: Session, error: FramingError) -> None:
        """A line the framer could not deliver still gets its one reply."""
        if not self.count_line(session, "flood: too many bad lines"):
            return
        if isinstance(error, LineTooLong):
            self.reply(session, codes.LINE_TOO_LONG, f"line too long (max {error.limit} bytes); it was discarded")
        else:
            self.reply(session, codes.BAD_SYNTAX, f"invalid UTF-8 ({error.detail}); the line was discarded")

    def _log_command(self, session: Session, command: Command) -> None:
        name = _canonical(command)
        params = ""
        text: str | None = None
        if isinstance(command, Say):
            text = command.text
        elif isinstance(command, Tell):
            target = command.target
            params = "@" + target.text() if isinstance(target, UserTarget) else target.text()
            text = command.text
        elif isinstance(command, Name):
            params = command.name
        elif isinstance(command, Login):
            params = command.name  # never the password
        elif isinstance(command, Join | Leave):
            params = command.group
        elif isinstance(command, Who):
            params = command.group or ""
        elif isinstance(command, Sync):
            params = str(command.since)
        elif isinstance(command, History):
            target = command.target
            params = target.text()
        elif isinstance(command, Push):
            params = f"{command.action} {push_service(command.endpoint)}"  # the rest of the URL is the device's secret
        if text is not None:
            shown = text if self.limits.log_messages else f"({len(text)} chars)"
            params = f"{params} {shown}".lstrip()
        log.info(
            "%s %s%s",
            session.label,
            name,
            f" {params}" if params else "",
            extra={"event": "command", "who": session.label, "command": name, "params": params},
        )


_NAMES: dict[type, str] = {}


def _canonical(command: Command) -> str:
    """SAY, TELL, ...: looked up, not computed, since every line needs it."""
    kind = type(command)
    if kind is Tell and command.urgent:  # type: ignore[union-attr]
        return "URGENT"
    name = _NAMES.get(kind)
    if name is None:
        name = _NAMES[kind] = kind.__name__.upper()
    return name


__all__ = ["Group", "Hub", "HubLimits"]
