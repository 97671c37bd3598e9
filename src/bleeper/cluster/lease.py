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

    async def refresh(self) -> bool:
        """Renew the lease. False when it was lost (expired, or taken): the caller takes it anew. A bus that
        cannot be reached is not a loss yet: :meth:`valid` runs out on its own."""
        nodes = self.bus.nodes
        if nodes is None or not self.bus.connected:
            return True
        sent = time.monotonic()
        try:
            self.revision = await nodes.update(self.bus.node, self._value(), last=self.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            self.valid_until = 0.0
            return False
        except Exception as exc:
            log.debug("lease refresh failed: %s", exc)
            return True
        self.valid_until = sent + self.ttl * 0.8
        return True

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
    nodes = bus.nodes
    if nodes is None:
        raise BusUnavailable("no connection to the cluster")
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
