"""The hub: who is connected, under which name, in which groups, and where each message goes.

Every method runs to completion without waiting. Work that needs storage (saving a message before it is
acknowledged, checking a password, reading an inbox) is asked of the :class:`~bleeper.chat.backend.Backend`,
whose answer arrives later through a callback; :meth:`Hub.handle` then returns the pending answer so the
transport holds that connection's next lines until it completes. A message is formatted once and the same
bytes are queued for every recipient, after a per-recipient sequence number.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bleeper import __version__
from bleeper.chat.backend import Answer, Backend, Pending
from bleeper.chat.flow import run
from bleeper.chat.memory import MemoryBackend
from bleeper.chat.names import group_problem, name_key, name_problem, suggest
from bleeper.chat.notify import Kind, NoNotifier, Notifier
from bleeper.chat.presence import Presence
from bleeper.chat.ratelimit import ALLOWED, FLOOD, TokenBucket
from bleeper.chat.records import (
    Account,
    AuditEvent,
    InboxEntry,
    Ledger,
    NewMessage,
    StorageFull,
    StorageUnsure,
    StoredMessage,
    content_hash,
)
from bleeper.chat.roles import Roles
from bleeper.chat.session import Peer, Session
from bleeper.chat.standing import BACKUP, URGENT, Standing, role_row, urgent_row
from bleeper.chat.urgent import NotWaiting, Urgent, UrgentDesk
from bleeper.protocol import codes
from bleeper.protocol.commands import (
    COMMANDS,
    Ack,
    Announce,
    Backup,
    Command,
    Groups,
    GroupTarget,
    Health,
    Help,
    History,
    Join,
    Kick,
    Leave,
    Login,
    Name,
    Oncall,
    ParseError,
    Ping,
    Pong,
    Push,
    Quit,
    Read,
    Recall,
    RoleTarget,
    Say,
    Status,
    Sync,
    Tell,
    Trace,
    UserTarget,
    Who,
    parse_command,
    push_service,
    resolve,
)
from bleeper.protocol.framing import FramingError, LineTooLong
from bleeper.protocol.wire import (
    event,
    format_ms,
    format_time,
    message_head,
    message_tail,
    multiline,
    reply,
    urgent_head,
)

log = logging.getLogger("bleeper.events")
T = TypeVar("T")

SYNC_BATCH = 1000
MAX_IN_FLIGHT = 64  # messages a connection may have waiting for storage before its reading pauses
REPLAY_BYTES = 256 * 1024  # replay at most this much at once: well inside a client's send buffer
OPEN_COMMANDS = frozenset({"HELP", "LOGIN", "NAME", "PING", "PONG", "QUIT"})  # NAME answers why it cannot


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-client limits and policies. A limit of 0 turns it off."""

    rate: float = 20.0  # commands per second, sustained
    burst: int = 60  # commands at once; a client this far in debt is flooding
    max_per_address: int = 100
    max_clients: int = 0
    ping_interval: float = 90.0  # seconds of silence before the server sends PING
    ping_timeout: float = 60.0  # seconds after a PING before a silent client is dropped
    log_messages: bool = False  # message text is patient data: keep it off the console by default
    auth: str = "open"  # "open": anyone may take a free name; "required": LOGIN first
    login_failures: int = 5  # failed logins before an account or address must wait
    login_lockout: float = 60.0  # seconds to wait after too many failures
    urgent_interval: float = 120.0  # seconds between alerts for an unacknowledged urgent message
    urgent_attempts: int = 3  # alerts (the delivery included) before it escalates


class Group:
    """A named group: its display name, the connections in it now, and the accounts that belong to it."""

    __slots__ = ("accounts", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: set[Session] = set()
        self.accounts: set[str] = set()


class Hub:
    """All chat rules. Feed it lines with :meth:`handle`; it answers through each session's peer."""

    def __init__(
        self,
        limits: HubLimits | None = None,
        *,
        backend: Backend | None = None,
        server_name: str = "bleeper",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        notifier: Notifier | None = None,
    ) -> None:
        self.limits = limits or HubLimits()
        self.backend: Backend = backend if backend is not None else MemoryBackend()
        self.notifier: Notifier = notifier if notifier is not None else NoNotifier()  # push to offline accounts
        self.server_name = server_name
        self._clock = clock
        self._monotonic = monotonic
        self.sessions: set[Session] = set()
        self.users: dict[str, list[Session]] = {}  # name key -> its connections (several for an account)
        self.groups: dict[str, Group] = {}  # '#' + name key -> group
        self.accounts: dict[str, str] = {}  # account key -> display name, for names that need LOGIN
        self._per_address: dict[str, int] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # account key or address -> (failures, last)
        self._ping_counter = 0
        self.presence = Presence()
        self.urgent = UrgentDesk(self.limits.urgent_interval, self.limits.urgent_attempts)
        self.backups: dict[str, str] = {}  # person's name key -> their backup's, for escalation
        self.roles = Roles()
        self._delivered: dict[str, int] = {}  # account key -> highest number that reached one of its connections
        self.started = monotonic()
        self.deliveries = 0  # messages handed to connections, for /metrics
        self.vital_signs: Callable[[], list[str]] = list  # the server adds its own lines to HEALTH
        self._handlers: dict[type, Callable[[Session, object], Pending[object] | None]] = {
            Help: self._help,  # type: ignore[dict-item]
            Name: self._name,  # type: ignore[dict-item]
            Login: self._flow(self._login),
            Say: self._say,  # type: ignore[dict-item]
            Tell: self._tell,  # type: ignore[dict-item]
            Join: self._join,  # type: ignore[dict-item]
            Leave: self._leave,  # type: ignore[dict-item]
            Who: self._who,  # type: ignore[dict-item]
            Groups: self._groups,  # type: ignore[dict-item]
            Status: self._status,  # type: ignore[dict-item]
            Kick: self._kick,  # type: ignore[dict-item]
            Announce: self._announce,  # type: ignore[dict-item]
            Ack: self._ack,  # type: ignore[dict-item]
            Backup: self._backup,  # type: ignore[dict-item]
            Read: self._flow(self._read),
            Trace: self._flow(self._trace),
            Oncall: self._oncall,  # type: ignore[dict-item]
            Recall: self._flow(self._recall),
            Health: self._health,  # type: ignore[dict-item]
            Push: self._flow(self._push),
            Sync: self._flow(self._sync),
            History: self._flow(self._history),
            Ping: self._ping,  # type: ignore[dict-item]
            Pong: self._pong,  # type: ignore[dict-item]
            Quit: self._quit,  # type: ignore[dict-item]
        }

    def _flow(
        self, handler: Callable[[Session, Any], Coroutine[Any, Any, None]]
    ) -> Callable[[Session, Any], Pending[object] | None]:
        """An ``async def`` handler as the dispatch table wants it: run until it waits for storage (see
        chat/flow.py), and answered ``500`` should it fail, so the command still gets its one reply."""

        def start(session: Session, command: Any) -> Pending[object] | None:
            def failed(exc: BaseException) -> None:
                self._answer(session, reply(codes.SERVER_ERROR, "internal error; the command was not carried out"))

            return run(handler(session, command), failed)

        return start

    # -- state from storage -----------------------------------------------------------------------------

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
        self.backups.update(standing.backups)
        now, now_ms = self._monotonic(), int(self._clock() * 1000)
        for urgent in standing.urgent:
            urgent.text = texts.get(urgent.id, "")
            self.urgent.resume(urgent, now, max(0, now_ms - urgent.sent_ms) / 1000)

    def _keep(self, row: tuple[str, str, str | None]) -> Pending[None]:
        return self.backend.keep(*row)

    # -- connection lifecycle ---------------------------------------------------------------------------

    def connect(self, peer: Peer, address: str, host: str | None = None) -> Session | None:
        """Greet a new connection, or refuse it (and hang up) when a limit is reached."""
        limits = self.limits
        host = host if host is not None else address
        count = self._per_address.get(host, 0)
        if limits.max_clients and len(self.sessions) >= limits.max_clients:
            peer.write(reply(codes.UNAVAILABLE, "server full; try again later"))
            peer.close("refused: server full")
            log.warning("refused %s: server full (%d active)", address, len(self.sessions),
                        extra={"event": "refused", "peer": address, "active": len(self.sessions)})  # fmt: skip
            return None
        if limits.max_per_address and count >= limits.max_per_address:
            peer.write(reply(codes.UNAVAILABLE, "too many connections from your address; try again later"))
            peer.close("refused: too many connections from one address")
            log.warning("refused %s: %d connections from %s", address, count, host,
                        extra={"event": "refused", "peer": address, "active": len(self.sessions)})  # fmt: skip
            return None
        now = self._monotonic()
        session = Session(peer, address, TokenBucket(limits.rate, limits.burst, now), now)
        session.host = host
        self._per_address[host] = count + 1
        self.sessions.add(session)
        first = "LOGIN <name> <password>" if limits.auth == "required" else "NAME <your name>"
        session.send(reply(codes.GREETING, f"{self.server_name} Bleeper {__version__} ready; type HELP, then {first}"))
        if log.isEnabledFor(logging.INFO):
            log.info("connect %s (%d active)", address, len(self.sessions),
                     extra={"event": "connect", "peer": address, "active": len(self.sessions)})  # fmt: skip
        return session

    def disconnect(self, session: Session, reason: str) -> None:
        """Forget a session however it ended: free its name, leave its groups, tell everyone.

        Called when the transport reports the loss, and straight away when the hub itself hangs up (QUIT,
        flood, ping timeout) so the name is free at once; the second call is a no-op.
        """
        if session not in self.sessions:
            return
        session.closing = True
        self.sessions.discard(session)
        host = session.host
        left = self._per_address.get(host, 1) - 1
        if left > 0:
            self._per_address[host] = left
        else:
            self._per_address.pop(host, None)
        if session.key is not None:
            devices = self.users.get(session.key, [])
            if session in devices:
                devices.remove(session)
            for key in session.groups or ():
                group = self.groups.get(key)
                if group is not None:
                    group.members.discard(session)
                    if not group.members and not group.accounts:
                        del self.groups[key]
            if not devices:
                self.users.pop(session.key, None)
                self.presence.forget(session.key)
                self._delivered.pop(session.key, None)  # the backend keeps it; the next LOGIN reads it back
                self._to_everyone(event("OFFLINE", session.name or "", reason), None)
        if log.isEnabledFor(logging.INFO):
            log.info("disconnect %s: %s (%d active)", session.label, reason, len(self.sessions),
                     extra={"event": "disconnect", "who": session.label, "peer": session.address,
                            "reason": reason, "active": len(self.sessions)})  # fmt: skip

    def drop(self, session: Session, reason: str) -> None:
        """Tell a client why, hang up, and forget it. Never called while iterating users or groups."""
        if session.closing:
            return
        session.closing = True
        session.send(event("CLOSING", reason))
        session.peer.close(reason)
        self.disconnect(session, reason)

    def shutdown(self, reason: str = "server shutting down") -> None:
        for session in list(self.sessions):
            self.drop(session, reason)

    def keepalive(self) -> None:
        """PING clients that have been silent; drop those that stayed silent after a PING."""
        limits = self.limits
        if not limits.ping_interval:
            return
        now = self._monotonic()
        for session in list(self.sessions):
            if session.ping_sent is not None:
                if now - session.ping_sent >= limits.ping_timeout:
                    self.drop(session, "ping timeout: no answer from the client")
            elif now - session.last_active >= limits.ping_interval:
                self._ping_counter += 1
                session.ping_sent = now
                session.send(event("PING", str(self._ping_counter)))

    # -- input ------------------------------------------------------------------------------------------

    def handle(self, session: Session, line: str) -> Pending[object] | None:
        """One line from a client: every non-blank line gets exactly one reply (PONG excepted).

        Returns a pending answer when the reply waits for storage; the caller must not feed this session's
        next line until it is done.
        """
        if session.closing:
            return None
        now = self._monotonic()
        session.last_active = now
        session.ping_sent = None
        if not line or line.isspace():
            return None
        command = parse_command(line)
        if type(command) is not Quit and type(command) is not Pong:
            verdict = session.bucket.take(now)
            if verdict is not ALLOWED:
                if verdict == FLOOD:
                    self.drop(session, "flood: too many commands; reconnect and slow down")
                else:
                    self._answer(session, reply(codes.SLOW_DOWN, "slow down: too many commands; wait a moment"))
                return None
        if isinstance(command, ParseError):
            self._answer(session, reply(command.code, command.message))
            return None
        canonical = _canonical(command)
        if session.key is None:
            if self.limits.auth == "required" and canonical not in OPEN_COMMANDS:
                self._answer(session, reply(codes.NAME_FIRST, "log in first: LOGIN <name> <password>"))
                return None
            if COMMANDS[canonical].needs_name:
                self._answer(session, reply(codes.NAME_FIRST, "choose a name first: NAME <your name>"))
                return None
        if log.isEnabledFor(logging.INFO):
            self._log_command(session, command)
        return self._handlers[type(command)](session, command)

    def framing_error(self, session: Session, error: FramingError) -> None:
        """A line the framer could not deliver still gets its one reply."""
        if session.closing:
            return
        now = self._monotonic()
        session.last_active = now
        session.ping_sent = None
        if session.bucket.take(now) == FLOOD:
            self.drop(session, "flood: too many bad lines")
            return
        if isinstance(error, LineTooLong):
            self._answer(
                session, reply(codes.LINE_TOO_LONG, f"line too long (max {error.limit} bytes); it was discarded")
            )
        else:
            self._answer(session, reply(codes.BAD_SYNTAX, f"invalid UTF-8 ({error.detail}); the line was discarded"))

    # -- names and accounts -----------------------------------------------------------------------------

    def _name(self, session: Session, command: Name) -> None:
        wanted = command.name
        if session.key is not None:
            if name_key(wanted) == session.key:
                self._answer(session, reply(codes.NAME_ACCEPTED, f"{session.name} you are already {session.name}"))
            else:
                self._answer(
                    session, reply(codes.FORBIDDEN, f"you are {session.name}; to change name, QUIT and reconnect")
                )
            return
        if self.limits.auth == "required":
            self._answer(session, reply(codes.FORBIDDEN, "this server needs an account: LOGIN <name> <password>"))
            return
        problem = name_problem(wanted)
        if problem:
            self._answer(session, reply(codes.INVALID_NAME, problem))
            return
        key = name_key(wanted)
        if key in self.users or key in self.accounts:
            free = suggest(wanted, _Taken(self.users, self.accounts))
            why = "belongs to an account (LOGIN to use it)" if key in self.accounts else "is taken"
            self._answer(session, reply(codes.NAME_TAKEN, f'{free} "{wanted}" {why}; try "{free}"'))
            return
        self._register(session, wanted, key)
        others = len(self.users) - 1
        self._answer(session, reply(codes.NAME_ACCEPTED, f"{wanted} welcome, {wanted}; {others} other(s) online"))

    def _register(self, session: Session, name: str, key: str) -> None:
        devices = self.users.get(key)
        if not devices:
            self._to_everyone(event("ONLINE", name), None)
            devices = self.users[key] = []
        devices.append(session)
        session.name = name
        session.key = key

    async def _login(self, session: Session, command: Login) -> None:
        if session.key is not None:
            self._answer(
                session, reply(codes.FORBIDDEN, f"you are already {session.name}; QUIT and reconnect to switch")
            )
            return
        key = name_key(command.name)
        now = self._monotonic()
        for subject in (key, "@" + session.host):
            failures, last = self._failures.get(subject, (0, 0.0))
            wait = self.limits.login_lockout - (now - last)
            if failures >= self.limits.login_failures and wait > 0:
                self.audit("login-refused", key, key, address=session.address, reason="too many failures")
                self._answer(
                    session, reply(codes.SLOW_DOWN, f"too many failed logins; wait {int(wait) + 1} s and try again")
                )
                return
        account = await _known(self.backend.account(key))
        if account is None or session.closing:
            self._login_failed(session, command, "no such account" if account is None else "disconnected")
            return
        self.accounts[account.key] = account.name
        if not await _known(self.backend.verify_password(account, command.password)):
            self._login_failed(session, command, "wrong password")
            return
        if session.closing:
            self._login_failed(session, command, "disconnected")
            return
        self._failures.pop(key, None)
        await self._logged_in(session, account)

    def _login_failed(self, session: Session, command: Login, reason: str) -> None:
        key = name_key(command.name)
        self.audit("login-failed", key, key, address=session.address, reason=reason)
        for subject in (key, "@" + session.host):
            failures, _ = self._failures.get(subject, (0, 0.0))
            self._failures[subject] = (failures + 1, self._monotonic())
        log.warning("failed login for %r from %s", command.name[:40], session.address,
                    extra={"event": "login-failed", "peer": session.address})  # fmt: skip
        self._answer(session, reply(codes.LOGIN_FAILED, "login failed: unknown account or wrong password"))

    async def _logged_in(self, session: Session, account: Account) -> None:
        for other in list(self.users.get(account.key, [])):
            if other.account is None:  # someone took the account's name without logging in
                self.drop(other, f"the name {account.name} belongs to an account that has logged in")
        session.account = account.key
        session.admin = account.admin
        session.held = []  # live messages wait until the inbox replay is out, so numbers arrive in order
        self._register(session, account.name, account.key)
        for group_key, group in self.groups.items():
            if account.key in group.accounts:
                group.members.add(session)
                if session.groups is None:
                    session.groups = set()
                session.groups.add(group_key)
        self.audit("login", account.key, account.key, address=session.address)
        log.info("login %s from %s", account.name, session.address,
                 extra={"event": "login", "who": account.name, "peer": session.address})  # fmt: skip
        self._delivered[account.key] = max(self._delivered.get(account.key, 0), account.delivered_seq)

        waiting = await _known(self.backend.inbox(account.key, account.delivered_seq, SYNC_BATCH)) or []
        upto, sent = self._replay(session, waiting, account.delivered_seq)
        last = await _known(self.backend.last_seq(account.key)) or 0  # after the inbox: it counts all it holds
        self._release_held(session, upto)
        more = max(0, last - upto)
        hint = f" (SYNC {upto} for the rest)" if more else ""
        self._answer(
            session,
            reply(codes.LOGGED_IN, f"{account.name} logged in at {upto}; {sent} waiting sent, {more} more{hint}"),
        )

    def _replay(self, session: Session, entries: list[InboxEntry], since: int) -> tuple[int, int]:
        """Send stored messages as MSG events with their original time and sequence number, up to about
        :data:`REPLAY_BYTES`. Returns the last sequence number sent (*since* when none) and how many were sent.

        A message that reaches the account for the first time is recorded as delivered (and its sender told);
        one sent again because a client asked (SYNC) is not: ``DELIVERED`` comes once per person."""
        upto, count, size = since, 0, 0
        account = session.account
        first_time = self._delivered.get(account, 0) if account is not None else 0
        for entry in entries:
            message = entry.message
            tail = message_tail(message.id, format_ms(message.created_ms), message.sender, message.to, message.text)
            self._answer(session, urgent_head(entry.seq) if message.urgent else message_head(entry.seq))
            if message.to != "*" and entry.seq > first_time:
                self._note_delivered(message, (session,), name_key(message.sender))
            self._answer(session, tail)
            upto, count = entry.seq, count + 1
            size += len(tail)
            if size >= REPLAY_BYTES:
                break
        if account is not None and count:
            self._mark_delivered(account, since + 1, upto)
        return upto, count

    def _release_held(self, session: Session, upto: int) -> None:
        """After a replay: send the live messages that arrived meanwhile and were not part of it, in order."""
        held, session.held = session.held or [], None
        for seq, head, tail in held:
            if seq > upto:
                self._answer(session, head)
                self._answer(session, tail)
                if session.account is not None:
                    self._mark_delivered(session.account, seq, seq)

    def _mark_delivered(self, account: str, first: int, last: int) -> None:
        """Messages *first* to *last* reached one of the account's connections. The mark (where the next LOGIN
        starts) moves only over a run that begins at it: a live message that overtakes a backlog not yet
        replayed must not mark the backlog delivered. A message left below the mark is only sent again."""
        mark = self._delivered.get(account, 0)
        if first <= mark + 1 <= last:
            self._delivered[account] = last
            self.backend.mark_delivered(account, last)

    # -- messages ---------------------------------------------------------------------------------------

    def _say(self, session: Session, command: Say) -> Pending[object] | None:
        targets = [other for devices in self.users.values() for other in devices if other is not session]
        accounts = {other.account for other in targets if other.account and other.account != session.account}
        return self._send(session, "*", "*", command.text, targets, sorted(accounts), command.client_id)

    def _tell(self, session: Session, command: Tell) -> Pending[object] | None:
        target = command.target
        if isinstance(target, GroupTarget):
            group = self.groups.get("#" + name_key(target.name[1:]))
            if group is None:
                self._answer(session, reply(codes.NOT_FOUND, f"no such group: {target.name}; GROUPS lists them"))
                return None
            targets = [other for other in group.members if other is not session]
            accounts = sorted(group.accounts - {session.account} if session.account else group.accounts)
            conversation = "#" + name_key(group.name[1:])
            waiting = None
            if command.urgent:
                waiting = sorted((group.accounts | {m.key for m in group.members if m.key}) - {session.key})
            return self._send(session, group.name, conversation, command.text, targets, accounts, command.client_id,
                              waiting)  # fmt: skip
        if isinstance(target, RoleTarget):
            return self._tell_role(session, command, target)
        if len(target.names) == 1:  # the common case: one person
            key = name_key(target.names[0])
            devices = self.users.get(key)
            if devices or key in self.accounts:
                shown = devices[0].name if devices else self.accounts[key]
                targets = [other for other in devices or () if other is not session]
                accounts = [key] if key in self.accounts and key != session.account else []
                me = session.key or ""
                conversation = f"@{key},{me}" if key < me else f"@{me},{key}"
                if key == me:
                    conversation = f"@{key}"
                if self.presence.get(key) is not None:
                    self._tell_not_disturbed(session, key, shown or key)
                return self._send(session, f"@{shown}", conversation, command.text, targets, accounts,
                                  command.client_id, [key] if command.urgent else None)  # fmt: skip
        names: dict[str, str] = {}  # key -> display name
        missing: list[str] = []
        for name in target.names:
            key = name_key(name)
            if key in self.users:
                names.setdefault(key, self.users[key][0].name or name)
            elif key in self.accounts:
                names.setdefault(key, self.accounts[key])
            else:
                missing.append(name)
        if missing:
            shown = ", ".join(missing[:10])
            self._answer(session, reply(codes.NOT_FOUND, f"no such user: {shown}; nothing was sent (WHO lists people)"))
            return None
        for key, shown in names.items():
            self._tell_not_disturbed(session, key, shown)
        targets = [other for key in names for other in self.users.get(key, ()) if other is not session]
        accounts = [key for key in names if key in self.accounts and key != session.account]
        conversation = "@" + ",".join(sorted({*names, session.key or ""}))
        to = "@" + ",".join(names.values())
        waiting = [key for key in names if key != session.key] if command.urgent else None
        return self._send(session, to, conversation, command.text, targets, accounts, command.client_id, waiting)

    def _send(
        self,
        session: Session,
        to: str,
        conversation: str,
        text: str,
        targets: list[Session],
        accounts: list[str],
        client_id: str | None,
        waiting: list[str] | None = None,
    ) -> Pending[object] | None:
        """Store, then deliver and acknowledge: nobody sees a message that could still be lost.

        A client id counts only for accounts: an anonymous name is not the same sender after a reconnect.
        *waiting* (name keys) makes the message urgent: any one of them must acknowledge it.
        """
        created_ms = int(self._clock() * 1000)
        client_id = client_id if session.account is not None else None
        new = NewMessage(session.name or "", session.account, to, conversation, text, created_ms, tuple(accounts),
                         client_id, waiting is not None)  # fmt: skip
        pending = self.backend.store(new)
        slot: list[Any] | None = None
        if not pending.done():  # its reply keeps its place while later lines are read and answered
            slot = [False, []]
            session.slots.append(slot)
        stored = run(self._deliver_stored(session, pending, slot, targets, accounts, waiting))
        # Pipelining: the next lines are read at once, unless too many messages already wait for storage.
        return stored if len(session.slots) > MAX_IN_FLIGHT else None

    async def _deliver_stored(
        self,
        session: Session,
        pending: Pending[StoredMessage],
        slot: list[Any] | None,
        targets: list[Session],
        accounts: list[str],
        waiting: list[str] | None,
    ) -> None:
        """The second half of :meth:`_send`: once the message is stored, deliver it, then say 250 (in the
        command's own slot, so replies keep the order of the lines)."""

        def answer(data: bytes) -> None:
            if slot is None:
                self._answer(session, data)
            else:
                slot[1].append(data)
                slot[0] = True
                self._release(session)

        try:
            message = await pending
        except StorageFull:
            answer(reply(codes.STORAGE_FULL, "storage full: the message was NOT sent; try again later"))
            return
        except StorageUnsure as exc:
            log.error("storing a message from %s was interrupted: %s", session.label, exc)
            answer(reply(codes.STORAGE_ERROR, "storage interrupted: the message may or may not be stored; "
                         "send it again with the same ID to be sure"))  # fmt: skip
            return
        except Exception as exc:
            log.error("storing a message from %s failed: %s", session.label, exc)
            answer(reply(codes.STORAGE_ERROR, "storage error: the message was NOT sent; try again"))
            return
        stamp = format_ms(message.created_ms)
        if message.duplicate:
            answer(
                reply(codes.MESSAGE_ACCEPTED, f"{message.id} {stamp} reached 0; already sent (same ID), not sent again")
            )
            return
        reached = self._deliver(message, stamp, targets)
        note, kept = "", None
        if waiting is not None:
            urgent = self.urgent.add(message.id, session.key or "", session.name or "", message.to, message.text,
                                     waiting, self._monotonic(), message.created_ms)  # fmt: skip
            kept = self._keep(urgent_row(urgent))
            note = f"; urgent: alerts every {self.limits.urgent_interval:g} s until acknowledged, then escalates"
        accepted = reply(codes.MESSAGE_ACCEPTED, f"{message.id} {stamp} reached {reached}{note}")
        if kept is None or kept.done():
            answer(accepted)
        elif slot is None:  # the 250 waits for the alert state: it keeps its place ahead of what follows
            slot = [False, []]
            session.slots.append(slot)
        if message.to != "*" and (message.seqs or message.urgent or message.to[0] == "@"):
            self._note_delivered(message, targets, session.key or "", session)  # after the 250 that gives the id
        if self.notifier.enabled:
            kind: Kind | None = "urgent" if waiting is not None else None
            if kind is None and message.conversation.startswith(("@", "role:")):
                kind = "message"  # addressed to people, as a page is; not SAY, nor a group's chatter
            if kind is not None:
                self._notify_offline(accounts, kind, message.id, message.sender)
        if kept is not None and not kept.done():
            await kept  # accepted once its alerts would survive a restart too
            answer(accepted)

    def _answer(self, session: Session, data: bytes) -> None:
        """A reply to this session's command: straight out, or after the replies still waiting for storage."""
        slots = session.slots
        if not slots:
            session.send(data)
        elif slots[-1][0]:
            slots[-1][1].append(data)
        else:
            slots.append([True, [data]])

    def _release(self, session: Session) -> None:
        slots = session.slots
        while slots and slots[0][0]:
            for data in slots.pop(0)[1]:
                session.send(data)
        if not slots and session.when_drained is not None:
            drained, session.when_drained = session.when_drained, None
            drained()

    def _deliver(self, message: StoredMessage, stamp: str, targets: list[Session]) -> int:
        """The hot loop: one shared tail, a cached per-recipient head, two appends per recipient."""
        tail = message_tail(message.id, stamp, message.sender, message.to, message.text)
        seqs = dict(message.seqs) if message.seqs else None
        head = urgent_head if message.urgent else message_head
        reached = 0
        delivered: dict[str, int] = {}
        for other in targets:
            if other.closing:
                continue
            account = other.account
            if seqs is not None and account is not None and account in seqs:
                seq = seqs[account]
                if other.held is not None:
                    other.held.append((seq, head(seq), tail))
                    continue
                delivered[account] = seq
            else:
                seq = other.seq + 1
                other.seq = seq
            send = other.send
            send(head(seq))
            send(tail)
            reached += 1
        for account, seq in delivered.items():  # only accounts with a connection here: the rest wait for LOGIN
            self._mark_delivered(account, seq, seq)  # coalesced by the backend
        self.deliveries += reached
        return reached

    async def _sync(self, session: Session, command: Sync) -> None:
        account = session.account
        if account is None:
            self._answer(session, reply(codes.FORBIDDEN, "SYNC needs an account: LOGIN <name> <password>"))
            return
        session.held = []  # as at LOGIN: live messages wait for the replay, so each number arrives once, in order
        entries = await _known(self.backend.inbox(account, command.since, SYNC_BATCH)) or []
        # Read after the inbox, so it counts every message the replay could hold: <m> is never negative.
        last = max(await _known(self.backend.last_seq(account)) or 0, entries[-1].seq if entries else 0)
        if command.since > last:
            self._release_held(session, command.since)
            self._answer(session, reply(codes.BAD_SYNTAX, f"your last message is number {last}; SYNC {last} or lower"))
        elif command.since < last and (not entries or entries[0].seq != command.since + 1):
            self._release_held(session, command.since)
            first = entries[0].seq if entries else last + 1
            self._answer(
                session, reply(codes.GONE, f"{first} gap: messages {command.since + 1} to {first - 1} are gone")
            )
        else:
            upto, sent = self._replay(session, entries, command.since)
            self._release_held(session, upto)
            self._answer(session, reply(codes.SYNCED, f"{upto} sent {sent}; {max(0, last - upto)} more"))

    async def _history(self, session: Session, command: History) -> None:
        target = command.target
        if isinstance(target, GroupTarget):
            key = "#" + name_key(target.name[1:])
            group = self.groups.get(key)
            if group is None:
                self._answer(session, reply(codes.NOT_FOUND, f"no such group: {target.name}"))
                return
            if session not in group.members and (session.account is None or session.account not in group.accounts):
                self._answer(session, reply(codes.FORBIDDEN, f"join {group.name} to read its history"))
                return
            conversation, label = key, group.name
        elif isinstance(target, RoleTarget):
            role = self.roles.get(name_key(target.name[1:]))
            if role is None or (session.key or "") not in role.holders:
                self._answer(session, reply(codes.FORBIDDEN, f"take {target.name} (ONCALL TAKE) to read its history"))
                return
            conversation, label = f"role:{name_key(target.name[1:])}", role.name
        else:
            keys = {name_key(name) for name in target.names} | {session.key or ""}
            conversation, label = "@" + ",".join(sorted(keys)), ",".join(target.names)
        messages = await _known(self.backend.history(conversation, command.count)) or []
        items = [f"{m.id} {format_ms(m.created_ms)} {m.sender} {m.to} {m.text}" for m in messages]
        self._answer(session, multiline(codes.HISTORY_LIST, items, f"{len(items)} message(s) with {label}"))

    # -- groups -----------------------------------------------------------------------------------------

    def _join(self, session: Session, command: Join) -> None:
        problem = group_problem(command.group)
        if problem:
            self._answer(session, reply(codes.INVALID_NAME, problem))
            return
        key = "#" + name_key(command.group[1:])
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(command.group)
        if session in group.members:
            self._answer(session, reply(codes.JOINED, f"{group.name} already joined; {len(group.members)} member(s)"))
            return
        data = event("JOIN", group.name, session.name or "")
        for member in group.members:
            member.send(data)
        joining = self.users.get(session.key or "", [session]) if session.account else [session]
        for device in joining:
            group.members.add(device)
            if device.groups is None:
                device.groups = set()
            device.groups.add(key)
        if session.account is not None:
            group.accounts.add(session.account)
            self.backend.add_member(key, group.name, session.account)
        self._answer(session, reply(codes.JOINED, f"{group.name} joined; {len(group.members)} member(s)"))

    def _leave(self, session: Session, command: Leave) -> None:
        key = "#" + name_key(command.group[1:])
        group = self.groups.get(key)
        if group is None or session not in group.members:
            self._answer(session, reply(codes.NOT_FOUND, f"you are not in {command.group}"))
            return
        leaving = self.users.get(session.key or "", [session]) if session.account else [session]
        for device in leaving:
            group.members.discard(device)
            if device.groups is not None:
                device.groups.discard(key)
        if session.account is not None:
            group.accounts.discard(session.account)
            self.backend.remove_member(key, session.account)
        data = event("LEAVE", group.name, session.name or "")
        for member in group.members:
            member.send(data)
        if not group.members and not group.accounts:
            del self.groups[key]
        self._answer(session, reply(codes.LEFT, f"{group.name} left"))

    def _who(self, session: Session, command: Who) -> None:
        if command.group is None:
            people = sorted((devices[0] for devices in self.users.values() if devices), key=_by_key)
            items = [self._who_item(other) for other in people]
            noun = "person" if len(items) == 1 else "people"
            self._answer(session, multiline(codes.WHO_LIST, items, f"{len(items)} {noun} online"))
            return
        group = self.groups.get("#" + name_key(command.group[1:]))
        if group is None:
            self._answer(session, reply(codes.NOT_FOUND, f"no such group: {command.group}; GROUPS lists them"))
            return
        names = sorted({other.name or "" for other in group.members}, key=name_key)
        self._answer(session, multiline(codes.WHO_LIST, names, f"{len(names)} in {group.name}"))

    def _who_item(self, other: Session) -> str:
        item = other.name or ""
        if other.groups:
            names = sorted(self.groups[key].name for key in other.groups if key in self.groups)
            item += f" groups={','.join(names)}"
        status = self.presence.get(other.key or "")
        if status is not None:
            item += f" status={status.state}" + (f" note={status.note}" if status.note else "")
        return item

    def _groups(self, session: Session, command: Groups) -> None:
        groups = sorted(self.groups.items())
        items = [f"{group.name} members={len({m.key for m in group.members})}" for _, group in groups]
        noun = "group" if len(items) == 1 else "groups"
        self._answer(session, multiline(codes.GROUP_LIST, items, f"{len(items)} {noun}"))

    # -- receipts ---------------------------------------------------------------------------------------

    def _note_delivered(
        self, message: StoredMessage, reached: Iterable[Session], sender_key: str, sender: Session | None = None
    ) -> None:
        """Receipts: an audit entry per account device reached, and for private, sub-group and urgent
        messages a ``DELIVERED`` event to the sender, once per person. (Not for SAY, nor group messages'
        live events: a sender to a hundred people would get a hundred events per message.)"""
        live = message.urgent or message.to[0] == "@"
        told: set[str] = set()
        for other in reached:
            key = other.key
            if other.closing or key is None or key == sender_key:
                continue
            if other.account is not None:
                self.audit("delivered", other.account, str(message.id), device=other.address)
            elif message.urgent:  # a page's ledger names everyone it reached, as its ACK does
                self.audit("delivered", f"guest:{other.name}", str(message.id), device=other.address)
            if live and key not in told:
                told.add(key)
                receipt = event("DELIVERED", str(message.id), other.name or key)
                self._to_person(sender_key, receipt, but=sender)
                if sender is not None:
                    self._answer(sender, receipt)  # after the 250 that gives the id, even when pipelining

    def _received(self, session: Session, ledger: Ledger) -> bool:
        """Whether the message was sent to this person (READ is only for recipients): its conversation's
        people, and those an urgent message was escalated or handed over to."""
        conversation = ledger.message.conversation
        if ledger.message.urgent:
            urgent = self.urgent.find(ledger.message.id)
            me = session.account or f"guest:{session.name}"
            if (urgent is not None and (session.key or "") in urgent.waiting) or any(
                entry.kind == "delivered" and entry.actor == me for entry in ledger.entries
            ):
                return True
        if conversation == "*":
            return True
        if conversation.startswith("#"):
            group = self.groups.get(conversation)
            return group is not None and (session.account in group.accounts or session in group.members)
        if conversation.startswith("role:"):
            role = self.roles.get(conversation[5:])
            return role is not None and (session.key or "") in role.holders
        return (session.key or "") in conversation[1:].split(",") and ledger.sender_key != session.key

    async def _read(self, session: Session, command: Read) -> None:
        ledger = await _known(self.backend.ledger(command.message_id))
        if ledger is None or not self._received(session, ledger):
            self._answer(session, reply(codes.NOT_FOUND, f"no message {command.message_id} was sent to you"))
            return
        message = ledger.message
        self.audit("read", session.account or f"guest:{session.name}", str(message.id), device=session.address)
        if message.urgent or message.to[0] == "@":
            sender = ledger.sender_key or name_key(message.sender)
            self._to_person(sender, event("READ", str(message.id), session.name or ""))
        self._answer(session, reply(codes.READ_NOTED, f"{message.id} marked read; {message.sender} is told"))

    async def _trace(self, session: Session, command: Trace) -> None:
        ledger = await _known(self.backend.ledger(command.message_id))
        if ledger is None:
            self._answer(session, reply(codes.NOT_FOUND, f"no message {command.message_id}"))
        elif not session.admin and (ledger.sender_key or name_key(ledger.message.sender)) != session.key:
            self._answer(session, reply(codes.FORBIDDEN, "TRACE is for the message's sender and administrators"))
        else:
            items = _ledger_lines(ledger)
            self._answer(session, multiline(codes.TRACE_LIST, items,
                                            f"{len(items)} entries for message {ledger.message.id}"))  # fmt: skip

    def _audience(self, ledger: Ledger) -> list[Session]:
        """The connections that may have a message now: its conversation's people, online, and those an
        urgent message went on to."""
        conversation = ledger.message.conversation
        if conversation == "*":
            return list(self.sessions)
        members: set[Session] = set()
        keys: list[str] = []
        if conversation.startswith("#"):
            group = self.groups.get(conversation)
            members = set(group.members) if group is not None else set()
        elif conversation.startswith("role:"):
            role = self.roles.get(conversation[5:])
            keys = list(role.holders) if role is not None else []
        else:
            keys = conversation[1:].split(",")
        urgent = self.urgent.find(ledger.message.id) if ledger.message.urgent else None
        if urgent is not None:
            keys += urgent.waiting
        members.update(other for key in keys for other in self.users.get(key, ()))
        return list(members)

    async def _recall(self, session: Session, command: Recall) -> None:
        ledger = await _known(self.backend.ledger(command.message_id))
        if ledger is None:
            self._answer(session, reply(codes.NOT_FOUND, f"no message {command.message_id}"))
            return
        message = ledger.message
        if (ledger.sender_key or name_key(message.sender)) != session.key:
            self._answer(session, reply(codes.FORBIDDEN, "only its sender can recall a message"))
            return
        if message.text.startswith("[recalled by "):
            self._answer(session, reply(codes.RECALLED, f"{message.id} was already recalled"))
            return
        digest = content_hash(message.text)
        tombstone = f"[recalled by {session.name} at {self.now()}; sha256 {digest[:16]}]"
        if not await _known(self.backend.recall(message.id, tombstone)):
            self._answer(session, reply(codes.STORAGE_ERROR, "the recall was NOT stored; try again"))
            return
        if self.urgent.open.pop(message.id, None) is not None:  # a recalled page stops alerting
            self._keep((URGENT, str(message.id), None))
        notice = event("RECALLED", str(message.id), session.name or "")
        for other in self._audience(ledger):
            if other is not session:
                other.send(notice)
        self.audit("recall", session.account or f"guest:{session.name}", str(message.id), sha256=digest)
        self._answer(session, reply(codes.RECALLED, f"{message.id} recalled: its text is gone from history and "
                                    "inboxes; a tombstone remains"))  # fmt: skip

    def _health(self, session: Session, command: Health) -> None:
        if not session.admin:
            self._answer(session, reply(codes.FORBIDDEN, "HEALTH is for administrators (accounts added with --admin)"))
            return
        now = self._monotonic()
        oldest = min(self.urgent.open.values(), key=lambda u: u.since, default=None)
        lines = [
            f"uptime {int(now - self.started)} s",
            f"connections {len(self.sessions)}, people {len(self.users)}, groups {len(self.groups)}",
            f"urgent waiting {len(self.urgent.open)}",
        ]
        if oldest is not None:
            lines.append(f"oldest urgent {oldest.id} from {oldest.sender}, {int(now - oldest.since)} s unacknowledged")
        lines += self.vital_signs()
        self._answer(session, multiline(codes.HEALTH_REPORT, lines, "end of health"))

    # -- urgent messages --------------------------------------------------------------------------------

    def _shown(self, key: str) -> str:
        devices = self.users.get(key)
        return (devices[0].name if devices else None) or self.accounts.get(key, key)

    def _to_person(self, key: str, data: bytes, but: Session | None = None) -> None:
        for other in self.users.get(key, ()):
            if other is not but:
                other.send(data)

    def _ack(self, session: Session, command: Ack) -> None:
        key = session.key or ""
        now = self._monotonic()
        try:
            urgent = self.urgent.ack(command.message_id, key, now)
        except KeyError:
            self._answer(session, reply(codes.NOT_FOUND, f"no urgent message {command.message_id} is waiting; "
                                        "ACK takes the <id> of URGENT <seq> <id> ..."))  # fmt: skip
            return
        except NotWaiting:
            self._answer(session, reply(codes.FORBIDDEN, f"urgent message {command.message_id} was not sent to you"))
            return
        by = self._shown(urgent.acked_by or key)
        if urgent.acked_by != key or urgent.acked_at != now:
            self._answer(session, reply(codes.ACKNOWLEDGED, f"{urgent.id} already acknowledged by {by}"))
            return
        self._keep(urgent_row(urgent))
        done = event("ACKED", str(urgent.id), by)
        for other in {urgent.sender_key, *urgent.waiting}:
            self._to_person(other, done, but=session)
        self.audit("ack", session.account or f"guest:{session.name}", str(urgent.id), alerts=urgent.alerts,
                   escalated=",".join(urgent.escalated))  # fmt: skip
        self._answer(session, reply(codes.ACKNOWLEDGED, f"{urgent.id} acknowledged; {urgent.sender} is told"))

    def _notify_offline(self, keys: Iterable[str], kind: Kind, message_id: int, sender: str) -> None:
        """Push to the accounts among *keys* with no connection here: those connected have the message (or
        the ALERT) on screen already, and people without an account cannot subscribe."""
        for key in keys:
            if key in self.accounts and not self.users.get(key):
                self.notifier.offline(key, kind, message_id, sender)

    async def _push(self, session: Session, command: Push) -> None:
        if not self.notifier.enabled:
            self._answer(session, reply(codes.NOT_OFFERED, "Web Push is not set up on this server (its operator "
                                        "sets --push-vapid-key); urgent messages still wait in your inbox"))  # fmt: skip
            return
        account = session.account
        if account is None:
            self._answer(session, reply(codes.FORBIDDEN, "PUSH needs an account, whose messages are kept while you "
                                        "are away: LOGIN <name> <password>"))  # fmt: skip
            return
        service = push_service(command.endpoint)
        tag = content_hash(command.endpoint)[:16]  # add and remove of one device match; the URL stays secret
        if command.action == "add":
            try:
                await self.notifier.subscribe(account, command.endpoint, command.p256dh, command.auth)
            except ValueError as exc:
                self._answer(session, reply(codes.BAD_SYNTAX, f"PUSH: {exc}"))
                return
            except Exception as exc:
                log.error("saving a push subscription for %s failed: %s", session.label, exc)
                self._answer(session, reply(codes.STORAGE_ERROR, "storage error: the subscription was NOT saved; "
                                            "try again"))  # fmt: skip
                return
            self.audit("push", account, account, action="add", service=service, endpoint_sha256=tag)
            self._answer(session, reply(codes.PUSH_SET, f"added: {service} will alert this device when "
                                        f"{session.name} has no connection"))  # fmt: skip
            return
        try:
            found = await self.notifier.unsubscribe(account, command.endpoint)
        except Exception as exc:
            log.error("removing a push subscription for %s failed: %s", session.label, exc)
            self._answer(session, reply(codes.STORAGE_ERROR, "storage error: the subscription was NOT removed; "
                                        "try again"))  # fmt: skip
            return
        if found:
            self.audit("push", account, account, action="remove", service=service, endpoint_sha256=tag)
            self._answer(session, reply(codes.PUSH_SET, "removed: this device gets no more pushes"))
        else:
            self._answer(session, reply(codes.PUSH_SET, "removed: it was not registered for you"))

    def _backup(self, session: Session, command: Backup) -> None:
        key = session.key or ""
        if command.name is None:
            current = self.backups.get(key)
            shown = f"your backup is {self._shown(current)}" if current else "you have no backup: BACKUP <name>"
            self._answer(session, reply(codes.BACKUP_SET, shown))
            return
        if command.name.lower() == "none":
            if self.backups.pop(key, None) is not None:
                self._keep((BACKUP, key, None))
                self.audit("backup", session.account or f"guest:{session.name}", key, backup="")
            self._answer(session, reply(codes.BACKUP_SET, "no backup: urgent messages to you keep alerting you"))
            return
        backup = name_key(command.name)
        if backup not in self.users and backup not in self.accounts:
            self._answer(session, reply(codes.NOT_FOUND, f"no such user: {command.name} (WHO lists people)"))
            return
        self.backups[key] = backup
        self._keep((BACKUP, key, backup))
        self.audit("backup", session.account or f"guest:{session.name}", key, backup=backup)
        self._answer(session, reply(codes.BACKUP_SET, f"your backup is {self._shown(backup)}: they get urgent "
                                    f"messages you have not acknowledged after {self.limits.urgent_attempts} alerts"))  # fmt: skip

    def alert_urgent(self) -> None:
        """Called every second or so: alert again, or escalate, what nobody has acknowledged in time."""
        for urgent, action in self.urgent.due(self._monotonic()):
            self._keep(urgent_row(urgent))  # where its alerts stand, to resume there after a restart
            if action == "alert":
                self.audit("alert", "server", str(urgent.id), to=",".join(urgent.waiting),
                           round=f"{urgent.alerts}/{self.urgent.attempts}")  # fmt: skip
                for key in urgent.waiting:  # lock-screen safe: who and how many, never the text
                    self._to_person(key, event("ALERT", str(urgent.id), urgent.sender,
                                               str(self.urgent.waiting_for(key))))  # fmt: skip
                if self.notifier.enabled:
                    self._notify_offline(urgent.waiting, "alert", urgent.id, urgent.sender)
                names = ",".join(self._shown(key) for key in urgent.waiting)
                self._to_person(urgent.sender_key, event("ESCALATION", str(urgent.id), "alerted",
                                                         f"{urgent.alerts}/{self.urgent.attempts}", names))  # fmt: skip
            else:
                self._escalate(urgent)

    def _escalate(self, urgent: Urgent) -> None:
        """Send the message on to the backups of those who have not answered; with none, keep alerting."""
        targets = {self.backups[key]: key for key in urgent.waiting if key in self.backups}
        targets = {backup: of for backup, of in targets.items() if backup not in urgent.waiting}
        if not targets:
            names = ",".join(self._shown(key) for key in urgent.waiting)
            self._to_person(urgent.sender_key, event("ESCALATION", str(urgent.id), "no-backup", names))
            return
        urgent.alerts = 1  # the delivery to the backups is the first alert of their round, as the first delivery was
        for backup, of in targets.items():
            run(self._pass_on(urgent, backup, "escalated", "backup-of", of))

    async def _pass_on(self, urgent: Urgent, to: str, step: str, relation: str, of: str) -> None:
        """Deliver an urgent message to one more person, *to*, who may then acknowledge it: escalation to a
        backup, or a handover of an on-call role. It is the same message with the same id (stored for *to*'s
        account as a resend: a new inbox entry, no new message), so URGENT, ALERT, ACK, ACKED and TRACE all
        name one page by one id."""
        shown = self._shown(to)
        new = NewMessage(urgent.sender, urgent.sender_key or None, urgent.to, "", urgent.text, urgent.sent_ms,
                         (to,) if to in self.accounts else (), None, True, resend_of=urgent.id)  # fmt: skip

        message = await _known(self.backend.store(new))
        if message is None:
            return  # logged; an escalation is tried again next round
        self.urgent.escalated(urgent, to)
        self._keep(urgent_row(urgent))
        self.audit("escalation", urgent.sender_key, str(urgent.id), to=to, step=step,
                   **{relation.replace("-", "_"): of})  # fmt: skip
        reached = list(self.users.get(to, ()))
        self._deliver(message, format_ms(message.created_ms), reached)
        self._to_person(urgent.sender_key, event("ESCALATION", str(urgent.id), step, shown, relation,
                                                 self._shown(of)))  # fmt: skip
        self._note_delivered(message, reached, urgent.sender_key)
        if self.notifier.enabled:
            self._notify_offline((to,), "urgent", urgent.id, urgent.sender)

    # -- on-call roles ----------------------------------------------------------------------------------

    def _tell_role(self, session: Session, command: Tell, target: RoleTarget) -> Pending[object] | None:
        key = name_key(target.name[1:])
        role = self.roles.get(key)
        if role is None:
            self._answer(session, reply(codes.NOT_FOUND, f"nobody holds {target.name}; ONCALL lists the roles"))
            return None
        holders = role.holders
        targets = [other for holder in holders for other in self.users.get(holder, ()) if other is not session]
        accounts = [holder for holder in holders if holder in self.accounts and holder != session.account]
        waiting = [holder for holder in holders if holder != session.key] if command.urgent else None
        return self._send(session, role.name, f"role:{key}", command.text, targets, accounts, command.client_id,
                          waiting)  # fmt: skip

    def _oncall(self, session: Session, command: Oncall) -> None:
        me = session.key or ""
        actor = session.account or f"guest:{session.name}"
        if command.action == "list":
            items = [
                f"{role.name} holders={','.join(self._shown(h) for h in role.holders)}" for role in self.roles.all()
            ]
            self._answer(session, multiline(codes.ROLES, items, f"{len(items)} role(s) held"))
            return
        problem = name_problem(command.role[1:])
        if problem:
            self._answer(session, reply(codes.INVALID_NAME, problem.replace("name", "role name", 1)))
            return
        key = name_key(command.role[1:])
        role = self.roles.get(key)
        if command.action == "take":
            role = self.roles.take(key, command.role, me)
            self._keep(role_row(key, role))
            self.audit("role", actor, role.name, action="take", holder=me)
            others = [self._shown(h) for h in role.holders if h != me]
            also = f" with {', '.join(others)}" if others else ""
            self._answer(session, reply(codes.ROLES, f"you hold {role.name}{also}"))
            return
        if role is None or me not in role.holders:
            self._answer(session, reply(codes.FORBIDDEN, f"you do not hold {command.role}"))
            return
        pending = [u for u in self.urgent.open.values() if u.to == role.name and me in u.waiting]
        if command.action == "leave":
            if pending:
                self._answer(session, reply(codes.NAME_TAKEN, f"{len(pending)} urgent message(s) to {role.name} wait "
                                            f"for you: ONCALL HANDOVER {role.name} <name> passes them on"))  # fmt: skip
                return
            self.roles.leave(key, me)
            self._keep(role_row(key, self.roles.get(key)))
            self.audit("role", actor, role.name, action="leave", holder=me)
            self._answer(session, reply(codes.ROLES, f"you no longer hold {role.name}"))
            return
        to = name_key(command.to)
        if to not in self.users and to not in self.accounts:
            self._answer(session, reply(codes.NOT_FOUND, f"no such user: {command.to} (WHO lists people)"))
            return
        self.roles.take(key, role.name, to)
        self.roles.leave(key, me)
        self._keep(role_row(key, self.roles.get(key)))
        self.audit("role", actor, role.name, action="handover", holder=to, previous=me, urgent=len(pending))
        self._to_person(to, event("ONCALL", role.name, "from", session.name or me))
        for urgent in pending:
            if to not in urgent.waiting:  # a fellow holder has it already
                run(self._pass_on(urgent, to, "handed-over", "from", me))
        note = f"; {len(pending)} urgent message(s) passed on, to acknowledge" if pending else ""
        self._answer(session, reply(codes.ROLES, f"{role.name} handed over to {self._shown(to)}{note}"))

    # -- presence and administration --------------------------------------------------------------------

    def _status(self, session: Session, command: Status) -> None:
        status = self.presence.set(session.key or "", command.state, command.note)
        note = f" ({status.note})" if status.note else ""
        dnd = "; private messages still arrive, and senders are told once" if status.state == "dnd" else ""
        self._answer(session, reply(codes.STATUS_SET, f"{status.state}{note}{dnd}"))
        shown = event("PRESENCE", session.name or "", status.state, *([status.note] if status.note else []))
        self._to_everyone(shown, session)  # user lists stay live without polling WHO

    def _tell_not_disturbed(self, sender: Session, key: str, shown: str) -> None:
        """Do-not-disturb answers each private sender once with the note; the message is delivered anyway."""
        status = self.presence.do_not_disturb(key, sender.key or "")
        if status is not None:
            self._answer(sender, event("STATUS", shown, status.state, *([status.note] if status.note else [])))

    def _kick(self, session: Session, command: Kick) -> None:
        if not session.admin:
            self._answer(session, reply(codes.FORBIDDEN, "KICK is for administrators (accounts added with --admin)"))
            return
        key = name_key(command.name)
        devices = list(self.users.get(key, ()))
        if not devices:
            self._answer(session, reply(codes.NOT_FOUND, f"{command.name} is not online; WHO lists who is"))
            return
        reason = f"kicked by {session.name}" + (f": {command.reason}" if command.reason else "")
        for other in devices:
            self.drop(other, reason)
        self.audit("admin", session.account or "", key, action="kick", reason=command.reason, connections=len(devices))
        self._answer(session, reply(codes.OK, f"disconnected {command.name} ({len(devices)} connection(s))"))

    def _announce(self, session: Session, command: Announce) -> None:
        if not session.admin:
            self._answer(
                session, reply(codes.FORBIDDEN, "ANNOUNCE is for administrators (accounts added with --admin)")
            )
            return
        reached = self._to_everyone(event("ANNOUNCE", session.name or "", command.text), session)
        self.audit("admin", session.account or "", "*", action="announce", sha256=content_hash(command.text),
                   reached=reached)  # fmt: skip
        self._answer(session, reply(codes.OK, f"announced to {reached} connection(s)"))

    # -- the rest ---------------------------------------------------------------------------------------

    def _help(self, session: Session, command: Help) -> None:
        if command.topic is None:
            width = max(len(spec.usage) for spec in COMMANDS.values())
            items = [f"{spec.usage:<{width}}  {spec.summary}" for spec in COMMANDS.values()]
            self._answer(session, multiline(codes.HELP_TEXT, items, "end of help; HELP <command> tells more"))
            return
        spec = resolve(command.topic)
        if spec is None:
            self._answer(session, reply(codes.BAD_SYNTAX, f'no command "{command.topic[:20]}"; type HELP for the list'))
            return
        items = [spec.usage, spec.summary]
        if spec.aliases:
            items.append("also: " + ", ".join(spec.aliases))
        if spec.needs_name:
            items.append("needs a name first (NAME <your name>)")
        items.append(f"replies: {spec.replies}")
        self._answer(session, multiline(codes.HELP_TEXT, items, f"end of help for {spec.name}"))

    def _ping(self, session: Session, command: Ping) -> None:
        self._answer(session, reply(codes.OK, f"PONG {command.token}".rstrip()))

    def _pong(self, session: Session, command: Pong) -> None:
        """Any line proves the client is alive (handled in :meth:`handle`); PONG needs no reply."""

    def _quit(self, session: Session, command: Quit) -> Pending[object] | None:
        if session.slots:  # messages still being stored: answer them first, then say goodbye
            flow: Answer[None] = Answer()

            def drained() -> None:
                self._quit(session, command)
                flow.resolve()

            session.when_drained = drained
            return flow
        farewell = f"goodbye, {session.name}" if session.name else "goodbye"
        self._answer(session, reply(codes.GOODBYE, farewell))
        session.closing = True
        reason = f"quit: {command.reason}" if command.reason else "quit"
        session.peer.close(reason)
        self.disconnect(session, reason)
        return None

    # -- helpers ----------------------------------------------------------------------------------------

    def audit(self, kind: str, actor: str, subject: str, **detail: str | int) -> None:
        """Record in the audit log (through the backend, in order with the messages)."""
        event = AuditEvent(int(self._clock() * 1000), kind, actor, subject, tuple(sorted(detail.items())))
        self.backend.audit(event)

    def now(self) -> str:
        return format_time(self._clock())

    def _to_everyone(self, data: bytes, sender: Session | None) -> int:
        reached = 0
        for devices in self.users.values():
            for other in devices:
                if other is not sender:
                    other.send(data)
                    reached += 1
        return reached

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
        log.info("%s %s%s", session.label, name, f" {params}" if params else "",
                 extra={"event": "command", "who": session.label, "command": name, "params": params})  # fmt: skip


class _Taken:
    """Names in use, by people online or by accounts, for suggesting a free one."""

    def __init__(self, users: dict[str, list[Session]], accounts: dict[str, str]) -> None:
        self.users = users
        self.accounts = accounts

    def __contains__(self, key: object) -> bool:
        return key in self.users or key in self.accounts


async def _known(pending: Pending[T]) -> T | None:
    """The answer, or None after logging why storage could not give it (the caller answers the client)."""
    try:
        return await pending
    except Exception as exc:
        log.error("storage request failed: %s", exc)
        return None


_NAMES: dict[type, str] = {}


def _ledger_lines(ledger: Ledger) -> list[str]:
    """A message's ledger, one line per step, oldest first."""
    message = ledger.message
    urgent = " (urgent)" if message.urgent else ""
    lines = [f"{format_ms(message.created_ms)} stored: from {message.sender} to {message.to}{urgent}"]
    for entry in ledger.entries:
        detail = dict(entry.detail)
        when = format_ms(entry.at_ms)
        if entry.kind == "message":
            continue
        if entry.kind == "delivered":
            lines.append(f"{when} delivered to {entry.actor} ({detail.get('device', '?')})")
        elif entry.kind == "read":
            lines.append(f"{when} read by {entry.actor}")
        elif entry.kind == "ack":
            lines.append(f"{when} acknowledged by {entry.actor}")
        elif entry.kind == "alert":
            round_ = str(detail.get("round", "?")).replace("/", " of ")
            lines.append(f"{when} alerted {str(detail.get('to', '?')).replace(',', ', ')} (alert {round_})")
        elif entry.kind == "escalation" and "from" in detail:
            lines.append(f"{when} handed over to {detail.get('to')} (on-call role, from {detail.get('from')})")
        elif entry.kind == "escalation":
            lines.append(f"{when} escalated to {detail.get('to')} (backup of {detail.get('backup_of')})")
        else:
            lines.append(f"{when} {entry.kind} by {entry.actor}")
    return lines


def _canonical(command: Command) -> str:
    """SAY, TELL, ...: looked up, not computed, since every line needs it."""
    kind = type(command)
    if kind is Tell and command.urgent:  # type: ignore[union-attr]
        return "URGENT"
    name = _NAMES.get(kind)
    if name is None:
        name = _NAMES[kind] = kind.__name__.upper()
    return name


def _by_key(session: Session) -> str:
    return session.key or ""


__all__ = ["Group", "Hub", "HubLimits"]
