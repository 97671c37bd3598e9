"""The hub: who is connected, under which name, in which groups, and where each message goes.

Every method runs to completion without waiting: the hub queues bytes on peers and never blocks, so one
slow recipient cannot hold up a broadcast. A message is formatted once and the same bytes object is queued
for every recipient.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from bleeper import __version__
from bleeper.chat.names import group_problem, name_key, name_problem, suggest
from bleeper.chat.ratelimit import ALLOWED, FLOOD, TokenBucket
from bleeper.chat.session import Peer, Session
from bleeper.protocol import codes
from bleeper.protocol.commands import (
    COMMANDS,
    Command,
    Groups,
    GroupTarget,
    Help,
    Join,
    Leave,
    Name,
    ParseError,
    Ping,
    Pong,
    Quit,
    Say,
    Tell,
    Who,
    parse_command,
    resolve,
)
from bleeper.protocol.framing import FramingError, LineTooLong
from bleeper.protocol.wire import event, format_time, message_event, multiline, reply

log = logging.getLogger("bleeper.events")


@dataclass(frozen=True, slots=True)
class HubLimits:
    """Per-client limits. A value of 0 turns a limit off."""

    rate: float = 20.0  # commands per second, sustained
    burst: int = 60  # commands at once; a client this far in debt is flooding
    max_per_address: int = 100
    max_clients: int = 0
    ping_interval: float = 90.0  # seconds of silence before the server sends PING
    ping_timeout: float = 60.0  # seconds after a PING before a silent client is dropped
    log_messages: bool = False  # message text is patient data: keep it off the console by default


class Group:
    """A named group: its display name as first created, and its members."""

    __slots__ = ("members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: set[Session] = set()


class Hub:
    """All chat rules. Feed it lines with :meth:`handle`; it answers through each session's peer."""

    def __init__(
        self,
        limits: HubLimits | None = None,
        *,
        server_name: str = "bleeper",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits or HubLimits()
        self.server_name = server_name
        self._clock = clock
        self._monotonic = monotonic
        self.sessions: set[Session] = set()
        self.users: dict[str, Session] = {}  # name key -> session
        self.groups: dict[str, Group] = {}  # '#' + name key -> group
        self._per_address: dict[str, int] = {}
        self._next_id = 1
        self._ping_counter = 0
        self._handlers: dict[type, Callable[[Session, object], None]] = {
            Help: self._help,  # type: ignore[dict-item]
            Name: self._name,  # type: ignore[dict-item]
            Say: self._say,  # type: ignore[dict-item]
            Tell: self._tell,  # type: ignore[dict-item]
            Join: self._join,  # type: ignore[dict-item]
            Leave: self._leave,  # type: ignore[dict-item]
            Who: self._who,  # type: ignore[dict-item]
            Groups: self._groups,  # type: ignore[dict-item]
            Ping: self._ping,  # type: ignore[dict-item]
            Pong: self._pong,  # type: ignore[dict-item]
            Quit: self._quit,  # type: ignore[dict-item]
        }

    # -- connection lifecycle ---------------------------------------------------------------------------

    def connect(self, peer: Peer, address: str, host: str | None = None) -> Session | None:
        """Greet a new connection, or refuse it (and hang up) when a limit is reached."""
        limits = self.limits
        host = host if host is not None else address
        count = self._per_address.get(host, 0)
        if limits.max_clients and len(self.sessions) >= limits.max_clients:
            peer.write(reply(codes.UNAVAILABLE, "server full; try again later"))
            peer.close("refused: server full")
            log.warning(
                "refused %s: server full (%d active)",
                address,
                len(self.sessions),
                extra={"event": "refused", "peer": address, "active": len(self.sessions)},
            )
            return None
        if limits.max_per_address and count >= limits.max_per_address:
            peer.write(reply(codes.UNAVAILABLE, "too many connections from your address; try again later"))
            peer.close("refused: too many connections from one address")
            log.warning(
                "refused %s: %d connections from %s",
                address,
                count,
                host,
                extra={"event": "refused", "peer": address, "active": len(self.sessions)},
            )
            return None
        now = self._monotonic()
        session = Session(peer, address, TokenBucket(limits.rate, limits.burst, now), now)
        session.host = host
        self._per_address[host] = count + 1
        self.sessions.add(session)
        session.send(
            reply(
                codes.GREETING,
                f"{self.server_name} Bleeper {__version__} ready; type HELP, then NAME <your name>",
            )
        )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "connect %s (%d active)",
                address,
                len(self.sessions),
                extra={"event": "connect", "peer": address, "active": len(self.sessions)},
            )
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
            del self.users[session.key]
            for key in session.groups or ():
                group = self.groups[key]
                group.members.discard(session)
                if not group.members:
                    del self.groups[key]
            self._to_everyone(event("OFFLINE", session.name or "", reason), None)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "disconnect %s: %s (%d active)",
                session.label,
                reason,
                len(self.sessions),
                extra={
                    "event": "disconnect",
                    "who": session.label,
                    "peer": session.address,
                    "reason": reason,
                    "active": len(self.sessions),
                },
            )

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

    def handle(self, session: Session, line: str) -> None:
        """One line from a client: every non-blank line gets exactly one reply (PONG excepted)."""
        if session.closing:
            return
        now = self._monotonic()
        session.last_active = now
        session.ping_sent = None
        if not line or line.isspace():
            return
        command = parse_command(line)
        if type(command) is not Quit and type(command) is not Pong:
            verdict = session.bucket.take(now)
            if verdict is not ALLOWED:
                if verdict == FLOOD:
                    self.drop(session, "flood: too many commands; reconnect and slow down")
                else:
                    session.send(reply(codes.SLOW_DOWN, "slow down: too many commands; wait a moment"))
                return
        if isinstance(command, ParseError):
            session.send(reply(command.code, command.message))
            return
        if session.key is None and COMMANDS[_canonical(command)].needs_name:
            session.send(reply(codes.NAME_FIRST, "choose a name first: NAME <your name>"))
            return
        if log.isEnabledFor(logging.INFO):
            self._log_command(session, command)
        self._handlers[type(command)](session, command)

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
            session.send(reply(codes.LINE_TOO_LONG, f"line too long (max {error.limit} bytes); it was discarded"))
        else:
            session.send(reply(codes.BAD_SYNTAX, f"invalid UTF-8 ({error.detail}); the line was discarded"))

    # -- commands ---------------------------------------------------------------------------------------

    def _name(self, session: Session, command: Name) -> None:
        wanted = command.name
        if session.key is not None:
            if name_key(wanted) == session.key:
                session.send(reply(codes.NAME_ACCEPTED, f"{session.name} you are already {session.name}"))
            else:
                session.send(reply(codes.FORBIDDEN, f"you are {session.name}; to change name, QUIT and reconnect"))
            return
        problem = name_problem(wanted)
        if problem:
            session.send(reply(codes.INVALID_NAME, problem))
            return
        key = name_key(wanted)
        if key in self.users:
            free = suggest(wanted, self.users)
            session.send(reply(codes.NAME_TAKEN, f'{free} "{wanted}" is taken; try "{free}"'))
            return
        self._to_everyone(event("ONLINE", wanted), None)
        self.users[key] = session
        session.name = wanted
        session.key = key
        others = len(self.users) - 1
        session.send(reply(codes.NAME_ACCEPTED, f"{wanted} welcome, {wanted}; {others} other(s) online"))

    def _say(self, session: Session, command: Say) -> None:
        msg_id, stamp = self._stamp()
        data = message_event(msg_id, stamp, session.name or "", "*", command.text)
        reached = self._to_everyone(data, session)
        session.send(reply(codes.MESSAGE_ACCEPTED, f"{msg_id} {stamp} reached {reached}"))

    def _tell(self, session: Session, command: Tell) -> None:
        target = command.target
        recipients: list[Session]
        if isinstance(target, GroupTarget):
            group = self.groups.get("#" + name_key(target.name[1:]))
            if group is None:
                session.send(reply(codes.NOT_FOUND, f"no such group: {target.name}; GROUPS lists them"))
                return
            to = group.name
            recipients = list(group.members)
        elif len(target.names) == 1:  # the common case: one person
            other = self.users.get(name_key(target.names[0]))
            if other is None:
                session.send(
                    reply(codes.NOT_FOUND, f"no such user: {target.names[0]}; nothing was sent (WHO lists people)")
                )
                return
            to = "@" + (other.name or "")
            recipients = [other]
        else:
            found: dict[str, Session] = {}
            missing: list[str] = []
            for name in target.names:
                other = self.users.get(name_key(name))
                if other is None:
                    missing.append(name)
                elif other.key is not None:
                    found.setdefault(other.key, other)
            if missing:
                shown = ", ".join(missing[:10])
                session.send(reply(codes.NOT_FOUND, f"no such user: {shown}; nothing was sent (WHO lists people)"))
                return
            recipients = list(found.values())
            to = "@" + ",".join(other.name or "" for other in recipients)
        msg_id, stamp = self._stamp()
        data = message_event(msg_id, stamp, session.name or "", to, command.text)
        reached = 0
        for other in recipients:
            if other is not session:
                other.send(data)
                reached += 1
        session.send(reply(codes.MESSAGE_ACCEPTED, f"{msg_id} {stamp} reached {reached}"))

    def _join(self, session: Session, command: Join) -> None:
        problem = group_problem(command.group)
        if problem:
            session.send(reply(codes.INVALID_NAME, problem))
            return
        key = "#" + name_key(command.group[1:])
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(command.group)
        if session in group.members:
            session.send(reply(codes.JOINED, f"{group.name} already joined; {len(group.members)} member(s)"))
            return
        data = event("JOIN", group.name, session.name or "")
        for member in group.members:
            member.send(data)
        group.members.add(session)
        if session.groups is None:
            session.groups = set()
        session.groups.add(key)
        session.send(reply(codes.JOINED, f"{group.name} joined; {len(group.members)} member(s)"))

    def _leave(self, session: Session, command: Leave) -> None:
        key = "#" + name_key(command.group[1:])
        group = self.groups.get(key)
        if group is None or session not in group.members:
            session.send(reply(codes.NOT_FOUND, f"you are not in {command.group}"))
            return
        group.members.discard(session)
        if session.groups is not None:
            session.groups.discard(key)
        data = event("LEAVE", group.name, session.name or "")
        for member in group.members:
            member.send(data)
        if not group.members:
            del self.groups[key]
        session.send(reply(codes.LEFT, f"{group.name} left"))

    def _who(self, session: Session, command: Who) -> None:
        if command.group is None:
            people = sorted(self.users.values(), key=_by_key)
            items = [self._who_item(other) for other in people]
            noun = "person" if len(items) == 1 else "people"
            session.send(multiline(codes.WHO_LIST, items, f"{len(items)} {noun} online"))
            return
        group = self.groups.get("#" + name_key(command.group[1:]))
        if group is None:
            session.send(reply(codes.NOT_FOUND, f"no such group: {command.group}; GROUPS lists them"))
            return
        members = sorted(group.members, key=_by_key)
        items = [other.name or "" for other in members]
        session.send(multiline(codes.WHO_LIST, items, f"{len(items)} in {group.name}"))

    def _who_item(self, other: Session) -> str:
        if not other.groups:
            return other.name or ""
        names = sorted(self.groups[key].name for key in other.groups)
        return f"{other.name} groups={','.join(names)}"

    def _groups(self, session: Session, command: Groups) -> None:
        groups = sorted(self.groups.items())
        items = [f"{group.name} members={len(group.members)}" for _, group in groups]
        noun = "group" if len(items) == 1 else "groups"
        session.send(multiline(codes.GROUP_LIST, items, f"{len(items)} {noun}"))

    def _help(self, session: Session, command: Help) -> None:
        if command.topic is None:
            width = max(len(spec.usage) for spec in COMMANDS.values())
            items = [f"{spec.usage:<{width}}  {spec.summary}" for spec in COMMANDS.values()]
            session.send(multiline(codes.HELP_TEXT, items, "end of help; HELP <command> tells more"))
            return
        spec = resolve(command.topic)
        if spec is None:
            session.send(reply(codes.BAD_SYNTAX, f'no command "{command.topic[:20]}"; type HELP for the list'))
            return
        items = [spec.usage, spec.summary]
        if spec.aliases:
            items.append("also: " + ", ".join(spec.aliases))
        if spec.needs_name:
            items.append("needs a name first (NAME <your name>)")
        items.append(f"replies: {spec.replies}")
        session.send(multiline(codes.HELP_TEXT, items, f"end of help for {spec.name}"))

    def _ping(self, session: Session, command: Ping) -> None:
        session.send(reply(codes.OK, f"PONG {command.token}".rstrip()))

    def _pong(self, session: Session, command: Pong) -> None:
        """Any line proves the client is alive (handled in :meth:`handle`); PONG needs no reply."""

    def _quit(self, session: Session, command: Quit) -> None:
        farewell = f"goodbye, {session.name}" if session.name else "goodbye"
        session.send(reply(codes.GOODBYE, farewell))
        session.closing = True
        reason = f"quit: {command.reason}" if command.reason else "quit"
        session.peer.close(reason)
        self.disconnect(session, reason)

    # -- helpers ----------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, str]:
        msg_id = self._next_id
        self._next_id = msg_id + 1
        return msg_id, format_time(self._clock())

    def _to_everyone(self, data: bytes, sender: Session | None) -> int:
        reached = 0
        for other in self.users.values():
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
            params = target.name if isinstance(target, GroupTarget) else "@" + ",".join(target.names)
            text = command.text
        elif isinstance(command, Name):
            params = command.name
        elif isinstance(command, Join | Leave):
            params = command.group
        elif isinstance(command, Who):
            params = command.group or ""
        if text is not None:
            shown = text if self.limits.log_messages else f"({len(text)} chars)"
            params = f"{params} {shown}".lstrip()
        log.info(
            "%s %s %s",
            session.label,
            name,
            params,
            extra={"event": "command", "who": session.label, "command": name, "params": params},
        )


def _canonical(command: Command) -> str:
    return type(command).__name__.upper()


def _by_key(session: Session) -> str:
    return session.key or ""
