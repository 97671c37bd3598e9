"""A node's lease: the key that says "this node is alive", and the fencing token of everything it claims.

The key (the node's name, in the ``nodes`` bucket) expires by the bucket's age limit unless the node rewrites
it, which it does every fifth of the lease with a compare-and-swap on the key's revision. Its value names the
node's *incarnation* (a random id per start, and per lease taken again), which the node's name claims carry:
a claim whose incarnation no longer holds the lease belongs to nobody and may be taken over.

A node trusts its own lease only until the last refresh it *sent* plus the lease, less a margin
(:meth:`Lease.valid`, on the monotonic clock, which runs on while a process is stopped): a node paused past
its lease knows it the moment it runs again, before it acts on any claim, and takes the lease anew.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from bleeper.cluster import ClusterError, signals
from bleeper.cluster.bus import Bus, BusUnavailable

log = logging.getLogger("bleeper.cluster")


class NodeNameInUse(ClusterError):
    """Another live node goes by this node's name."""


class Lease:
    def __init__(self, bus: Bus, ttl: float) -> None:
        self.bus = bus
        self.ttl = ttl
        self.incarnation = ""
        self.revision = 0
        self.valid_until = 0.0
        self.lost_why = ""  # why the last renewal found the lease gone (for the log)
        self.healthy_since: float | None = None  # renewed without a break since (monotonic)
        self.details: Callable[[], dict[str, Any]] = dict  # what `bleeper cluster status` shows of this node
        self.started_ms = int(time.time() * 1000)

    def valid(self) -> bool:
        return time.monotonic() < self.valid_until

    def _value(self) -> bytes:
        return signals.dumps({"i": self.incarnation, "pid": os.getpid(), "since": self.started_ms,
                              "at": int(time.time() * 1000), **self.details()})  # fmt: skip

    async def acquire(self) -> None:
        """Take the lease under a new incarnation. A key left by this node's previous life is waited out (at
        most one lease); a key that keeps being refreshed is another node with this name."""
        nodes = self.bus.nodes
        assert nodes is not None
        self.incarnation = uuid.uuid4().hex[:16]
        deadline = time.monotonic() + self.ttl * 2 + 2
        patience = time.monotonic() + 30  # a bucket just made may have no leader for a few seconds
        told = False
        while True:
            sent = time.monotonic()
            try:
                self.revision = await nodes.create(self.bus.node, self._value())
                self.valid_until = sent + self.ttl * 0.8
                self.healthy_since = sent
                return
            except KeyWrongLastSequenceError:
                pass
            except Exception as exc:  # no answer from the bucket yet (or the bus is away): try again
                if time.monotonic() > patience:
                    raise BusUnavailable(f"cannot take this node's lease in NATS: {exc or type(exc).__name__}") from exc
                await asyncio.sleep(0.25)
                continue
            if time.monotonic() > deadline:
                raise NodeNameInUse(f"another node called {self.bus.node!r} is running (its lease keeps being "
                                    "renewed): give each node its own --node name")  # fmt: skip
            if not told:
                log.info("waiting for the lease of an earlier node %r to expire (at most %g s)", self.bus.node,
                         self.ttl)  # fmt: skip
                told = True
            await asyncio.sleep(0.25)

    async def refresh(self) -> str:
        """Renew the lease: ``"ok"``; ``"again"`` when the key had expired (the bucket could not be written for a
        whole lease: a NATS leader election, a pause) and was made anew under the same incarnation, so the
        caller checks that its names are still its own; ``"lost"`` when another node holds this node's name
        (the caller takes a new incarnation); ``"unknown"`` when the bus cannot be reached (:meth:`valid`
        runs out on its own)."""
        nodes = self.bus.nodes
        if nodes is None or not self.bus.connected:
            self.healthy_since = None
            return "unknown"
        sent = time.monotonic()
        try:
            try:
                self.revision = await nodes.update(self.bus.node, self._value(), last=self.revision)
                outcome = "ok"
            except KeyWrongLastSequenceError:
                outcome = await self._again(nodes)
        except Exception as exc:
            log.debug("lease refresh failed: %s", exc)
            self.healthy_since = None
            return "unknown"
        if outcome == "lost":
            self.valid_until = 0.0
            self.healthy_since = None
            return outcome
        self.valid_until = sent + self.ttl * 0.8
        if self.healthy_since is None or outcome == "again":
            self.healthy_since = sent
        return outcome

    async def _again(self, nodes: KeyValue) -> str:
        """The key is not at the revision last written: an earlier renewal that timed out landed after all (it
        names this incarnation), or the key expired (made anew), or another node took this node's name."""
        try:
            entry = await nodes.get(self.bus.node)
        except KeyNotFoundError:
            try:
                self.revision = await nodes.create(self.bus.node, self._value())
            except KeyWrongLastSequenceError:
                self.lost_why = "another node took this node's name while its lease had expired"
                return "lost"
            self.lost_why = "the lease had expired"
            return "again"
        if signals.loads(entry.value or b"{}").get("i") != self.incarnation:
            self.lost_why = "another node holds this node's name"
            return "lost"
        self.revision = await nodes.update(self.bus.node, self._value(), last=entry.revision)
        return "ok"

    def judge(self) -> bool:
        """Whether this node may take another node's silence for death: only once its own lease has renewed
        without a break for a whole lease. When the bucket could not be written for a while (a NATS leader
        election), every node's lease lapsed together, and the others need that long to renew theirs."""
        return self.healthy_since is not None and time.monotonic() - self.healthy_since >= self.ttl

    async def holds(self, node: str, incarnation: str) -> bool:
        """Whether *node* holds its lease under *incarnation* now. Raises when the bus cannot tell."""
        nodes = self.bus.nodes
        if nodes is None:
            raise BusUnavailable("no connection to the cluster")
        try:
            entry = await nodes.get(node)
        except KeyNotFoundError:
            return False
        return bool(signals.loads(entry.value or b"{}").get("i") == incarnation)

    async def alive(self, node: str) -> bool:
        """Whether *node* holds a lease now, asked of the bucket directly (a listing may lag behind)."""
        nodes = self.bus.nodes
        if nodes is None:
            raise BusUnavailable("no connection to the cluster")
        try:
            await nodes.get(node)
        except KeyNotFoundError:
            return False
        return True

    async def release(self) -> None:
        """A clean stop: others need not wait for the lease to expire."""
        nodes = self.bus.nodes
        if nodes is not None and self.bus.connected and self.revision:
            try:
                await nodes.delete(self.bus.node, last=self.revision)
            except Exception as exc:
                log.debug("releasing the lease: %s", exc)
        self.valid_until = 0.0


async def live_nodes(bus: Bus) -> dict[str, dict[str, Any]]:
    """Every node holding a lease now, with what it says of itself."""
    if bus.nodes is None:
        raise BusUnavailable("no connection to the cluster")
    return await leases(bus.nodes)


async def leases(nodes: KeyValue) -> dict[str, dict[str, Any]]:
    """The lease bucket's keys and values: what ``bleeper cluster status`` prints, too."""
    try:
        keys = await nodes.keys()
    except NoKeysError:
        return {}
    found: dict[str, dict[str, Any]] = {}
    for key in keys:
        try:
            entry = await nodes.get(key)
        except KeyNotFoundError:
            continue
        found[key] = signals.loads(entry.value or b"{}")
    return found
