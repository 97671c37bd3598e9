"""One Bleeper server as a node of a cluster: the bus, the lease, the registry and delivery, and the chores
that keep them true.

:class:`ClusterNode` is made before the hub (the hub is built with its registry and delivery, see
:meth:`ClusterNode.hub_options`) and started after the store is open (:meth:`ClusterNode.start`). Then, until
it closes, it:

- renews the lease every fifth of it, and takes it anew if it was lost (a pause past the lease, a long bus
  outage): guest names held here are claimed again, and a connection whose name went to someone else
  meanwhile is told so and closed;
- every second, lists the live nodes: the people of a node whose lease has gone are offline (each node says
  OFFLINE to its own connections), and its guest names may be taken;
- every second, catches up on messages whose signals it missed (cluster/delivery.py);
- shares on-call roles, backups and group memberships as they change, and applies the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, cast

from bleeper.chat.core import Core, Group
from bleeper.chat.delivery import everyone
from bleeper.chat.names import name_key
from bleeper.chat.receipts import note_delivered
from bleeper.chat.records import StoredMessage
from bleeper.chat.session import Session
from bleeper.chat.standing import BACKUP, HOLDER, URGENT, holder_of, read_rows
from bleeper.cluster import ClusterError, signals
from bleeper.cluster.bus import Bus
from bleeper.cluster.delivery import ClusterDelivery
from bleeper.cluster.lease import Lease, live_nodes
from bleeper.cluster.registry import SNAPSHOT_EVERY, ClusterRegistry, NameClaims

if TYPE_CHECKING:
    from bleeper.store import Store

log = logging.getLogger("bleeper.cluster")

RESYNC_EVERY = 5.0  # seconds between reading roles, backups, memberships and pages back from the database


class ClusterNode:
    def __init__(self, servers: list[str], node: str, *, lease: float = 10.0, replicas: int | None = None) -> None:
        self.bus = Bus(servers, node, replicas=replicas or min(3, len(servers)), lease=lease)
        self.lease = Lease(self.bus, lease)
        self.registry = ClusterRegistry(self.bus, self.lease)
        self.delivery: ClusterDelivery | None = None
        self.core: Core | None = None
        self.nodes: dict[str, dict[str, Any]] = {}  # live nodes at the last look, with what they say
        self.lease_losses = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[None]] = set()
        self._verifying: asyncio.Future[None] | None = None
        self._touched: dict[str, float] = {}  # "kind:key:..." -> when a shared row last changed (monotonic)
        self.store: Store | None = None
        self._closing = False
        self.lease.details = self.details
        self.bus.handle("state", self._state_signal)

    @property
    def name(self) -> str:
        return self.bus.node

    def hub_options(self) -> dict[str, Any]:
        """The registry and delivery to build the hub with."""
        return {"registry": self.registry, "delivery": self._make_delivery}

    def _make_delivery(self, core: Core) -> ClusterDelivery:
        self.core = core
        self.delivery = ClusterDelivery(core, self.registry, self.bus)
        self.delivery.receipts = self._receipts
        core.shared = self._share
        self.registry.on_gone = self._gone
        self.registry.on_evict = self._evict
        self.registry.group_names = lambda key: group.name if (group := core.groups.get(key)) else None
        self.registry.on_group = self._remote_group
        return self.delivery

    async def start(self, store: Store) -> None:
        """Connect, take the lease, and join in: from now on this node's people are everyone's."""
        assert self.delivery is not None, "build the hub with hub_options() first"
        self.store = store
        self.registry.names = cast("NameClaims", store)  # PostgreSQL: the configuration insists on it
        try:
            await self.bus.connect()
            self.lease.ttl = self.bus.lease  # the cluster's, if it differs from ours
            await self.lease.acquire()
        except ClusterError:
            raise
        except Exception as exc:  # a NATS error not foreseen: said as what it means for the node
            raise ClusterError(
                f"joining through {', '.join(self.bus.servers)} failed: {exc or type(exc).__name__}"
            ) from exc
        await self.delivery.start(store.stored_between, store.newest_id)
        self.bus.on_reconnect.append(self._reconnected)
        self.registry.snapshot()
        self.registry.ask_everyone()
        with contextlib.suppress(Exception):  # a bucket electing its leader: the watch loop looks again soon
            self.nodes = await live_nodes(self.bus)
        self._loop(self.lease.ttl / 5, self._renew)
        self._loop(1.0, self._watch_nodes)
        self._loop(1.0, self.delivery.reconcile)
        self._loop(SNAPSHOT_EVERY, self._snapshot)
        self._loop(RESYNC_EVERY, self.resync)
        log.info("node %s joined the cluster (%d node(s) live; lease %g s)", self.name, len(self.nodes),
                 self.lease.ttl, extra={"event": "cluster-join", "node": self.name})  # fmt: skip

    async def close(self) -> None:
        self._closing = True
        if self._verifying is not None:
            self._verifying.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        await self.lease.release()
        await self.bus.close()

    def _loop(self, every: float, chore: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def run() -> None:
            while not self._closing:
                await asyncio.sleep(every)
                try:
                    await chore()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("cluster chore %s failed: %s", chore.__name__, exc)

        self._tasks.append(asyncio.ensure_future(run()))

    # the lease ------------------------------------------------------------------------------------------------

    async def _renew(self) -> None:
        outcome = await self.lease.refresh()
        if outcome == "ok":
            if self.registry.unconfirmed and self.lease.valid():
                self._verify_soon()
            return
        if outcome == "unknown":
            return
        self.lease_losses += 1
        if outcome == "lost":
            log.warning("node %s lost its lease (%s): taking a new one and checking its guests' names", self.name,
                        self.lease.lost_why, extra={"event": "cluster-lease-lost"})  # fmt: skip
            await self.lease.acquire()
        else:
            log.warning("node %s renewed its lease after a gap longer than the lease (%g s; paused, or NATS could "
                        "not be written): checking its guests' names", self.name, self.lease.ttl,
                        extra={"event": "cluster-lease-gap"})  # fmt: skip
        self.registry.unconfirmed.clear()
        self._verify_soon()
        self.registry.snapshot()
        self.registry.ask_everyone()

    def _verify_soon(self) -> None:
        """Check the guest names held here, beside the renewals (which must not wait for thousands of names),
        one check at a time: a check already running is not joined by a second."""
        if self._verifying is None or self._verifying.done():
            self._verifying = asyncio.ensure_future(self._verify())
            self._verifying.add_done_callback(_log_verify_failure)

    async def _verify(self) -> None:
        lost = await self.registry.verify()
        core = self.core
        if core is not None:
            for key in lost:
                for session in list(self.registry.here(key)):
                    core.drop(session, "your name was given to someone else while this server was cut off from "
                              "the others; reconnect and choose a name")  # fmt: skip

    async def _snapshot(self) -> None:
        self.registry.snapshot()

    async def _reconnected(self) -> None:
        self.registry.snapshot()
        self.registry.ask_everyone()
        await self.resync()
        if self.delivery is not None:
            await self.delivery.reconcile()

    # the other nodes ------------------------------------------------------------------------------------------

    async def _watch_nodes(self) -> None:
        looked = time.monotonic()
        live = await live_nodes(self.bus)
        self.nodes = live
        if not self.lease.judge():
            return  # this node's own lease has had a gap lately: the others' may have too
        for node in self.registry.nodes_seen() - set(live) - {self.name}:
            if self.registry.heard.get(node, 0.0) >= looked or await self.lease.alive(node):
                continue  # heard from since the look began, or there when asked directly: not dead
            log.warning("node %s is gone (its lease expired): its people are offline", node,
                        extra={"event": "cluster-node-gone", "node": node})  # fmt: skip
            groups = self.registry.forget_node(node, f"server {node} stopped")
            core = self.core
            if core is not None:
                for key in groups:
                    self._forget_if_empty(core, key)

    def _gone(self, name: str, reason: str) -> None:
        """Someone went offline with their node: told to this node's connections (each node tells its own)."""
        if self.delivery is not None:
            self.delivery.local.event(everyone(), "OFFLINE", name, reason)

    def _evict(self, key: str) -> None:
        """An account with this name logged in elsewhere: a guest here under it goes, as on one server."""
        core = self.core
        if core is None:
            return
        for session in list(self.registry.here(key)):
            if session.account is None:
                core.drop(session, f"the name {session.name} belongs to an account that has logged in")

    def _remote_group(self, key: str, name: str | None) -> None:
        """Someone elsewhere is in a group (*name*), or the last one left it (None)."""
        core = self.core
        if core is None:
            return
        if name is not None:
            core.groups.setdefault(key, Group(name))
        else:
            self._forget_if_empty(core, key)

    @staticmethod
    def _forget_if_empty(core: Core, key: str) -> None:
        group = core.groups.get(key)
        if group is not None and not group.accounts and not core.registry.has_members(key):
            del core.groups[key]

    # shared state ---------------------------------------------------------------------------------------------

    def _share(self, kind: str, values: tuple[str | None, ...]) -> None:
        subject = (
            f"{values[0]}:{values[2] if kind == 'member' else values[1]}"  # (kind, key) of a row; (group, account)
        )
        self._touched[f"{kind}:{subject}"] = time.monotonic()
        self.bus.publish("state", signals.dumps({"n": self.name, "k": kind, "v": list(values)}))

    def _fresh(self, kind: str, first: object, second: object) -> bool:
        """Changed here or told of a moment ago: its row may not be in the database yet."""
        at = self._touched.get(f"{kind}:{first}:{second}")
        return at is not None and time.monotonic() - at < RESYNC_EVERY * 2

    async def resync(self) -> None:
        """Roles, backups, group memberships and urgent pages as the database has them: their signals may have
        been lost (NATS away for a moment), and nothing else would tell this node. What changed a moment ago
        is left as it is (its row may still be on its way to the database)."""
        core, store = self.core, self.store
        if core is None or store is None:
            return
        standing = read_rows(await store.standing())
        groups = await store.load_groups()
        now = time.monotonic()
        self._touched = {key: at for key, at in self._touched.items() if now - at < RESYNC_EVERY * 2}
        stored = {(key, holder): role.name for key, role in standing.roles.items() for holder in role.holders}
        here = {(name_key(role.name[1:]), holder): role.name for role in core.roles.all() for holder in role.holders}
        for (key, holder), name in stored.items() - here.items():
            if (key, holder) not in here and not self._fresh("keep", HOLDER, f"{key} {holder}"):
                core.roles.take(key, name, holder)
        for key, holder in here.keys() - stored.keys():
            if not self._fresh("keep", HOLDER, f"{key} {holder}"):
                core.roles.leave(key, holder)
        for key in list(core.backups):
            if key not in standing.backups and not self._fresh("keep", BACKUP, key):
                del core.backups[key]
        for key, backup in standing.backups.items():
            if not self._fresh("keep", BACKUP, key):
                core.backups[key] = backup
        for stood in standing.urgent:
            if core.urgent.find(stood.id) is None and not self._fresh("keep", URGENT, stood.id):
                stood.text = ""
                core.urgent.update(stood, core.monotonic())
                self._fetch_text(core, stood.id)
        for key, (name, accounts) in groups.items():
            group = core.groups.setdefault(key, Group(name))
            for account in accounts | group.accounts:
                if not self._fresh("member", key, account):
                    if account in accounts:
                        group.accounts.add(account)
                    else:
                        group.accounts.discard(account)
        for key, group in list(core.groups.items()):
            if key not in groups:
                group.accounts = {a for a in group.accounts if self._fresh("member", key, a)}
                self._forget_if_empty(core, key)

    def _state_signal(self, data: bytes) -> None:
        signal = signals.loads(data)
        core = self.core
        if signal.get("n") == self.name or core is None:
            return
        kind, values = signal["k"], signal["v"]
        if kind == "keep":
            kept, key, value = values
            self._touched[f"keep:{kept}:{key}"] = time.monotonic()
            if kept == HOLDER:
                role_key, holder = holder_of(key)
                if value is None:
                    core.roles.leave(role_key, holder)
                else:
                    core.roles.take(role_key, str(signals.loads(value.encode())["name"]), holder)
            elif kept == BACKUP:
                if value is None:
                    core.backups.pop(key, None)
                else:
                    core.backups[key] = value
            elif kept == URGENT:
                self._urgent(core, int(key), value)
        elif kind == "member":
            group_key, name, account = values
            self._touched[f"member:{group_key}:{account}"] = time.monotonic()
            if name is not None:
                core.groups.setdefault(group_key, Group(name)).accounts.add(account)
            elif (group := core.groups.get(group_key)) is not None:
                group.accounts.discard(account)
                self._forget_if_empty(core, group_key)

    def _urgent(self, core: Core, message_id: int, value: str | None) -> None:
        """An urgent message sent, stepped on, acknowledged or recalled elsewhere: this node's copy follows,
        so an ACK here finds it and, should its sender's node die, this node can take its next step."""
        if value is None:
            core.urgent.closed_elsewhere(message_id)
            return
        standing = read_rows([(URGENT, str(message_id), value)])
        if not standing.urgent:
            return
        stood = standing.urgent[0]
        known = core.urgent.open.get(message_id)
        stood.text = known.text if known is not None else ""
        core.urgent.update(stood, core.monotonic())
        if not stood.text:  # kept to pass on, should this node escalate it
            self._fetch_text(core, message_id)

    def _fetch_text(self, core: Core, message_id: int) -> None:
        if self.store is not None:
            task = asyncio.ensure_future(self._urgent_text(core, self.store, message_id))
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    @staticmethod
    async def _urgent_text(core: Core, store: Store, message_id: int) -> None:
        message = await store.message(message_id)
        urgent = core.urgent.open.get(message_id)
        if message is not None and urgent is not None and not urgent.text:
            urgent.text = message.text

    def _receipts(self, message: StoredMessage, targets: list[Session], sender_key: str) -> None:
        """Receipts for what this node delivered of a message its handler did not see delivered."""
        core = self.core
        if core is not None and message.to != "*" and (message.seqs or message.urgent or message.to[0] == "@"):
            note_delivered(core, message, targets, sender_key)

    # what `bleeper cluster status` and /metrics show ------------------------------------------------------------

    def details(self) -> dict[str, Any]:
        delivery = self.delivery
        return {
            "connections": len(self.core.sessions) if self.core is not None else 0,
            "people_here": len(self.registry.users),
            "behind": delivery.behind if delivery is not None else 0,
            "caught_up": delivery.filled if delivery is not None else 0,
        }

    def health(self) -> str:
        """One line for HEALTH and /healthz: what works and what is degraded."""
        if not self.bus.connected:
            return "cluster DEGRADED: NATS unreachable; serving this node's users, new guest names refused"
        if not self.lease.valid():
            return "cluster DEGRADED: this node's lease is being renewed; new guest names wait"
        return f"cluster ok: node {self.name}, {len(self.nodes)} node(s) live"


def _log_verify_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("checking guest names after a lease gap failed (tried again at the next renewal): %s",
                    task.exception())  # fmt: skip
