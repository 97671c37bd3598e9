"""The registry of a node in a cluster: its own connections, as on one server, plus a copy of everyone else's.

Questions ("is bob online?", "who is in #icu?") are answered at once from memory: this node's connections
(:class:`~bleeper.chat.registry.LocalRegistry`) and a replica of the other nodes' people, kept up to date by
their ``presence`` signals. Each node numbers its signals; a receiver that sees a gap asks that node for its
whole list, and every node sends its whole list after it starts, after a bus reconnect, and every
:data:`SNAPSHOT_EVERY` seconds, so a lost signal heals by itself.

Taking a guest name is the one question that waits: an insert into the ``names`` table in PostgreSQL that
succeeds only when the name is free, tagged with this node's lease (its *incarnation*). Exactly one of two
nodes racing for a name succeeds. A name left by a node whose lease has gone (it died, or was paused past its
lease) is taken over by a conditional update on the claim that held it, so two takers cannot both win. (Not
in NATS's key/value store: on a replicated bucket its compare-and-swap is only checked before the write is
replicated, and two concurrent writers can both succeed, nats-server#4320, which the chaos test saw.) Account
names need no claim: the account list makes them unique, and a guest holding one is asked to give it up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bleeper.chat.backend import Pending
from bleeper.chat.presence import Status
from bleeper.chat.registry import LocalRegistry
from bleeper.chat.session import Session
from bleeper.cluster import signals
from bleeper.cluster.bus import Bus, BusUnavailable
from bleeper.cluster.lease import Lease

log = logging.getLogger("bleeper.cluster")

SNAPSHOT_EVERY = 15.0  # seconds between a node's full lists of its people
VERIFY_AT_ONCE = 8  # guest names checked at once after a lease gap (the store's pool has 10 connections)


class NameClaims(Protocol):
    """The names table (store/postgres.py): who holds each guest name, under which node's incarnation, by
    which claim. PostgreSQL settles races: of two claims for one name, one row wins."""

    async def claim_name(self, key: str, node: str, incarnation: str, claim: str) -> tuple[str, str, str]:
        """Claim a free name; returns its holder (node, incarnation, claim): this claim's when it was free."""
        ...

    async def take_name(self, key: str, node: str, incarnation: str, claim: str, previous: str) -> bool:
        """Take the name from claim *previous*, if it still holds it."""
        ...

    async def release_name(self, key: str, claim: str) -> None:
        """Give the name up, if *claim* still holds it."""
        ...

    async def name_holder(self, key: str) -> tuple[str, str, str] | None: ...


@dataclass(slots=True)
class Remote:
    """A person as another node has them: how they wrote their name, whether an account, their groups there."""

    shown: str
    account: bool
    groups: set[str] = field(default_factory=set)
    status: Status | None = None


class ClusterRegistry(LocalRegistry):
    """See the module's docstring. *on_gone* is told (name, reason) of each person who went offline because
    their node died, so this node can say OFFLINE to its own connections (each node says it to its own)."""

    def __init__(self, bus: Bus, lease: Lease) -> None:
        super().__init__()
        self.bus = bus
        self.lease = lease
        self.node = bus.node
        self.remote: dict[str, dict[str, Remote]] = {}  # name key -> node -> the person there
        self.by_node: dict[str, set[str]] = {}  # node -> its people's keys
        self.remote_groups: dict[str, dict[str, int]] = {}  # group key -> person key -> on how many nodes
        self.last_seq: dict[str, int] = {}  # node -> the last presence signal applied
        self.claims: dict[str, str] = {}  # guest name key -> our claim's token in the names table
        self.names: NameClaims | None = None  # the names table (PostgreSQL), once the store is open
        self.claiming: set[str] = set()  # guest names being claimed by a connection here
        self.unconfirmed: set[str] = set()  # guest names here to claim again after the lease was lost
        self.seq = 0
        self.on_gone: Callable[[str, str], None] = lambda name, reason: None
        self.on_evict: Callable[[str], None] = lambda key: None  # an account logged in elsewhere: guests go
        self.on_group: Callable[[str, str | None], None] = lambda group, name: None  # first here / last gone
        self.heard: dict[str, float] = {}  # node -> when its last presence signal came (monotonic)
        self.group_names: Callable[[str], str | None] = lambda group: None  # a group's display name, for others
        self._tasks: set[asyncio.Task[Any]] = set()
        bus.handle("presence", self.received)

    # questions: this node's answer, then the others' -------------------------------------------------------

    def online(self, key: str) -> bool:
        return key in self.users or key in self.remote

    def shown(self, key: str) -> str | None:
        devices = self.users.get(key)
        if devices:
            return devices[0].name
        elsewhere = self.remote.get(key)
        return next(iter(elsewhere.values())).shown if elsewhere else None

    def people(self) -> list[tuple[str, str]]:
        found = super().people()
        found.extend((key, next(iter(nodes.values())).shown) for key, nodes in self.remote.items()
                     if key not in self.users)  # fmt: skip
        return found

    def count(self) -> int:
        return len(self.users) + sum(1 for key in self.remote if key not in self.users)

    def member_keys(self, group: str) -> set[str]:
        keys = super().member_keys(group)
        keys.update(self.remote_groups.get(group, ()))
        return keys

    def has_members(self, group: str) -> bool:
        return group in self.groups or group in self.remote_groups

    def groups_of(self, key: str) -> list[str]:
        found = set(super().groups_of(key))
        for person in self.remote.get(key, {}).values():
            found |= person.groups
        return sorted(found)

    def status(self, key: str) -> Status | None:
        if key in self.users:
            return self.presence.get(key)
        for person in self.remote.get(key, {}).values():
            if person.status is not None:
                return person.status
        return None

    # changes here: made locally, then told to the others ----------------------------------------------------

    def arrive(self, session: Session) -> bool:
        key = session.key or ""
        elsewhere = key in self.remote
        first = super().arrive(session)
        if first:
            self._tell(["arrive", key, session.name or key, session.account is not None])
        return first and not elsewhere

    def depart(self, session: Session) -> tuple[bool, list[str]]:
        key = session.key or ""
        last, left = super().depart(session)
        if last:
            self._tell(["depart", key])
            self._unclaim(key)
        return last and key not in self.remote, left

    def enter(self, session: Session, group: str) -> None:
        already = session.key in self.users and group in self.groups_here(session.key or "")
        super().enter(session, group)
        if not already:
            self._tell(["enter", session.key or "", group, self.group_names(group) or group])

    def exit(self, session: Session, group: str) -> None:
        super().exit(session, group)
        key = session.key or ""
        if not session.closing and key in self.users and group not in self.groups_here(key):
            self._tell(["exit", key, group])  # (a departure says it for all its groups at once)

    def groups_here(self, key: str) -> set[str]:
        found: set[str] = set()
        for device in self.users.get(key, ()):
            found |= device.groups or set()
        return found

    def set_status(self, key: str, state: str, note: str = "") -> Status:
        status = super().set_status(key, state, note)
        self._tell(["status", key, status.state, status.note])
        return status

    def do_not_disturb(self, recipient: str, sender: str) -> Status | None:
        if recipient in self.users:
            return super().do_not_disturb(recipient, sender)
        status = self.status(recipient)  # someone elsewhere: told once per sender by this node
        if status is None or status.state != "dnd" or sender in status.told:
            return None
        status.told.add(sender)
        return status

    def _tell(self, change: list[Any]) -> None:
        self.seq += 1
        self.bus.publish("presence", signals.dumps({"n": self.node, "o": self.seq, "d": change}))

    def snapshot(self) -> None:
        """Every person here, in one signal: receivers replace what they had of this node."""
        everyone = []
        for key, devices in self.users.items():
            status = self.presence.get(key)
            everyone.append([key, devices[0].name or key, any(d.account is not None for d in devices),
                             sorted(self.groups_here(key)), [status.state, status.note] if status else None])  # fmt: skip
        self.seq += 1
        self.bus.publish("presence", signals.dumps({"n": self.node, "o": self.seq, "all": everyone,
                                                    "names": self._group_names(everyone)}))  # fmt: skip

    def _group_names(self, everyone: list[list[Any]]) -> dict[str, str]:
        groups = {group for person in everyone for group in person[3]}
        return {group: self.group_names(group) or group for group in groups}

    def ask_everyone(self) -> None:
        """Ask every node for its whole list (after this node starts, or the bus comes back)."""
        self.bus.publish("presence", signals.dumps({"n": self.node, "want": "*"}))

    # the others' changes ------------------------------------------------------------------------------------

    def received(self, data: bytes) -> None:
        signal = signals.loads(data)
        node = str(signal["n"])
        if node == self.node:
            return
        self.heard[node] = time.monotonic()
        if "evict" in signal:
            self.on_evict(str(signal["evict"]))
            return
        want = signal.get("want")
        if want is not None:
            if want in ("*", self.node):
                self.snapshot()
            return
        seq = int(signal["o"])
        if "all" in signal:
            self._replace(node, signal["all"], signal.get("names", {}))
            self.last_seq[node] = seq
            return
        last = self.last_seq.get(node)
        if last is not None and seq <= last:
            return  # an old signal overtaken by a list
        if last is None or seq != last + 1:
            self.bus.publish("presence", signals.dumps({"n": self.node, "want": node}))
        self.last_seq[node] = seq
        self._apply(node, signal["d"])

    def _apply(self, node: str, change: list[Any]) -> None:
        op, key = change[0], str(change[1])
        if op == "arrive":
            self._add(node, key, Remote(str(change[2]), bool(change[3])))
        elif op == "depart":
            self._remove(node, key)
        elif op in ("enter", "exit", "status"):
            person = self.remote.get(key, {}).get(node)
            if person is None:
                return
            if op == "enter":
                self._join(key, person, str(change[2]), str(change[3]))
            elif op == "exit":
                self._part(key, person, str(change[2]))
            else:
                person.status = None if change[2] == "available" and not change[3] else Status(str(change[2]),
                                                                                               str(change[3]))  # fmt: skip

    def _replace(self, node: str, everyone: list[list[Any]], names: dict[str, str]) -> None:
        for key in list(self.by_node.get(node, ())):
            self._remove(node, key)
        for key, shown, account, groups, status in everyone:
            person = Remote(str(shown), bool(account))
            if status is not None:
                person.status = Status(str(status[0]), str(status[1]))
            self._add(node, str(key), person)
            for group in groups:
                self._join(str(key), person, str(group), str(names.get(group, group)))

    def _add(self, node: str, key: str, person: Remote) -> None:
        self._remove(node, key)
        self.remote.setdefault(key, {})[node] = person
        self.by_node.setdefault(node, set()).add(key)
        if person.account and any(device.account is None for device in self.users.get(key, ())):
            # An account logged in elsewhere under a guest's name here. Its node asked the guest to go (an
            # "evict" signal), but signals may be lost: its arrival says the same, and this list is re-sent.
            self.on_evict(key)

    def _remove(self, node: str, key: str) -> Remote | None:
        nodes = self.remote.get(key)
        person = nodes.pop(node, None) if nodes is not None else None
        if person is None:
            return None
        if not nodes:
            del self.remote[key]
        self.by_node.get(node, set()).discard(key)
        for group in list(person.groups):
            self._part(key, person, group)
        return person

    def _join(self, key: str, person: Remote, group: str, name: str) -> None:
        if group not in person.groups:
            person.groups.add(group)
            members = self.remote_groups.setdefault(group, {})
            members[key] = members.get(key, 0) + 1
            self.on_group(group, name)

    def _part(self, key: str, person: Remote, group: str) -> None:
        if group in person.groups:
            person.groups.discard(group)
            members = self.remote_groups.get(group, {})
            count = members.get(key, 0) - 1
            if count > 0:
                members[key] = count
            else:
                members.pop(key, None)
                if not members:
                    self.remote_groups.pop(group, None)
                    self.on_group(group, None)

    def forget_node(self, node: str, reason: str) -> list[str]:
        """A node's lease has gone: its people are no longer online through it. Returns the groups they were
        in; each person now offline everywhere is told to :attr:`on_gone`."""
        groups: set[str] = set()
        for key in sorted(self.by_node.pop(node, set())):
            person = self._remove(node, key)
            if person is None:
                continue
            groups |= person.groups
            if not self.online(key):
                self.on_gone(person.shown, reason)
        self.last_seq.pop(node, None)
        self.heard.pop(node, None)
        return sorted(groups)

    def nodes_seen(self) -> set[str]:
        return {node for node, keys in self.by_node.items() if keys} | set(self.last_seq)

    # names: claimed in PostgreSQL ---------------------------------------------------------------------------------

    def claim(self, session: Session, key: str, account: bool) -> Pending[bool]:
        return asyncio.ensure_future(self._claim(key, account))

    async def _claim(self, key: str, account: bool) -> bool:
        names = self.names
        if names is None:
            raise BusUnavailable("this node has not joined its cluster yet")
        if account:  # unique by the account list; a guest elsewhere under the name is asked to go
            try:
                await self._evict_guest(names, key)
            except Exception as exc:
                log.warning("could not ask a guest elsewhere to give up the name %r: %s", key, exc)
            return True
        if not self.bus.connected or not self.lease.valid():
            raise BusUnavailable("the cluster cannot be reached, so names cannot be checked")
        if key in self.claiming or (key in self.claims and key in self.users):
            return False  # held by another connection here, or being taken by one
        self.claiming.add(key)
        try:
            return await self._take(names, key)
        finally:
            self.claiming.discard(key)

    async def _take(self, names: NameClaims, key: str) -> bool:
        mine = uuid.uuid4().hex
        node, incarnation, claim = await names.claim_name(key, self.node, self.lease.incarnation, mine)
        if claim == mine:
            self.claims[key] = mine
            return True
        if node == self.node and incarnation == self.lease.incarnation and key not in self.users:
            # Our own, left by a connection that went: taken under a new claim, so that its release, if still
            # on its way, cannot remove it (a release removes only the claim it was given).
            if await names.take_name(key, self.node, incarnation, mine, claim):
                self.claims[key] = mine
                return True
            return False
        if await self.lease.holds(node, incarnation):
            return False
        if not self.lease.judge():  # its holder's lease may have lapsed with everyone's: not taken yet
            raise BusUnavailable("the name's holder cannot be told from the dead just now")
        if not await names.take_name(key, self.node, self.lease.incarnation, mine, claim):
            return False  # someone else took it first
        self.claims[key] = mine
        log.info("took over the name %r from node %s, whose lease has gone", key, node,
                 extra={"event": "cluster-claim", "node": node})  # fmt: skip
        return True

    async def _evict_guest(self, names: NameClaims, key: str) -> None:
        """An account logs in: a guest elsewhere under its name is asked to go, and the guest claim is cleared."""
        holder = await names.name_holder(key)
        if holder is None:
            return
        node, _, claim = holder
        if node != self.node:
            self.bus.publish("presence", signals.dumps({"n": self.node, "evict": key}))
        await names.release_name(key, claim)

    def release(self, session: Session, key: str) -> None:
        if key not in self.users:
            self._unclaim(key)

    def _unclaim(self, key: str) -> None:
        claim = self.claims.pop(key, None)
        if claim is None or self.names is None:
            return
        task = asyncio.ensure_future(self._release(self.names, key, claim))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _release(names: NameClaims, key: str, claim: str) -> None:
        try:
            await names.release_name(key, claim)
        except Exception as exc:  # the database is away: the claim stays until its node's lease goes
            log.debug("releasing the name %r: %s", key, exc)

    async def verify(self) -> list[str]:
        """After a gap in this node's lease: check that each guest name here is still this node's (taken under
        the current incarnation, or again if its claim went). Returns the names now held elsewhere: their
        connections here must go. A name that cannot be checked is tried again at the next renewal.

        Names are checked :data:`VERIFY_AT_ONCE` at a time (a node may hold thousands, each a round trip or
        two to PostgreSQL), while the node's other chores go on."""
        if not self.unconfirmed:
            self.unconfirmed = {key for key, devices in self.users.items()
                                if devices and all(device.account is None for device in devices)}  # fmt: skip
        keys = sorted(self.unconfirmed)
        lost: list[str] = []
        for first in range(0, len(keys), VERIFY_AT_ONCE):
            batch = keys[first : first + VERIFY_AT_ONCE]
            for key, mine in zip(batch, await asyncio.gather(*map(self._check, batch)), strict=True):
                if mine is False:
                    lost.append(key)
        return lost

    async def _check(self, key: str) -> bool | None:
        """Whether the name is still this node's (None: it could not be checked, or nobody here has it now)."""
        if key not in self.users or self.names is None:
            self.unconfirmed.discard(key)
            return None
        try:
            mine = await self._still_mine(self.names, key)
        except Exception as exc:
            log.info("could not check the name %r yet: %s", key, exc)
            return None
        self.unconfirmed.discard(key)
        if not mine:
            self.claims.pop(key, None)
        return mine

    async def _still_mine(self, names: NameClaims, key: str) -> bool:
        fresh = uuid.uuid4().hex
        holder = await names.name_holder(key)
        if holder is None:
            _, _, claim = await names.claim_name(key, self.node, self.lease.incarnation, fresh)
        else:
            node, _, claim = holder
            if node != self.node:
                return False
            if not await names.take_name(key, self.node, self.lease.incarnation, fresh, claim):
                return False
            claim = fresh
        if claim != fresh:
            return False
        if key not in self.users:  # the guest left while it was being checked: give the name back
            await names.release_name(key, fresh)
            return True
        self.claims[key] = fresh
        return True
