"""The NATS connection a node shares with the others: signals on subjects, node leases in a JetStream bucket.

Nothing here knows chat. :class:`Bus` connects (and keeps reconnecting, for ever, with jitter), makes sure the
``nodes`` key/value bucket exists (one lease key per live node, expiring by the bucket's age limit), publishes
without waiting (an outbox drained in order by one task), and hands each received signal to the handler of
its subject. (Guest names are claimed in PostgreSQL, see cluster/registry.py.)

Signals are lossy by design: while the bus is away they are dropped, not queued for ever. What must not be lost
(messages) is in PostgreSQL and each node catches up from there (cluster/delivery.py); presence is re-sent as
a whole by every node after a reconnect (cluster/registry.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from bleeper.cluster import ClusterError

log = logging.getLogger("bleeper.cluster")

STREAM_CONFIG_DIFFERS = 10058  # JetStream: "stream name already in use with a different configuration"
OUTBOX_LIMIT = 100_000  # signals waiting while the bus is away; beyond this the oldest go (catch-up covers them)


class BusUnavailable(ClusterError):
    """The bus cannot be reached just now; the message says what it means for users."""


class Bus:
    """One node's connection to the NATS cluster. *servers*: ``nats://host:port`` URLs (any of the cluster's);
    *replicas*: JetStream copies of each bucket (3 for a three-server NATS cluster); *lease*: seconds a node's
    lease key lives without a refresh."""

    def __init__(self, servers: list[str], node: str, *, replicas: int = 3, lease: float = 10.0,
                 prefix: str = "bleeper") -> None:  # fmt: skip
        self.servers = servers
        self.node = node
        self.replicas = replicas
        self.lease = lease
        self.prefix = prefix
        self.client: Client | None = None
        self.nodes: KeyValue | None = None
        self.handlers: dict[str, Callable[[bytes], None]] = {}
        self.on_reconnect: list[Callable[[], Awaitable[None]]] = []
        self._outbox: list[tuple[str, bytes]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0  # signals dropped because the outbox was full (for /metrics)
        self.last_error = ""

    def subject(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def connect(self, timeout: float = 30.0) -> None:
        """Connect and set up the buckets, retrying until *timeout*: a JetStream cluster that has just started
        needs a few seconds to elect its leaders."""
        try:
            self.client = await asyncio.wait_for(self._connect(), timeout)
        except TimeoutError:
            raise BusUnavailable(f"cannot reach NATS at {', '.join(self.servers)} ({self.last_error or 'no answer'}); "
                                 "check the --cluster URLs and that nats-server runs there") from None  # fmt: skip
        for name in list(self.handlers):
            await self._subscribe(name)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await self._buckets()
                return
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise BusUnavailable(f"NATS JetStream is not ready at {', '.join(self.servers)}: {exc}; check "
                                         "that every nats-server runs with -js and the cluster has a leader") from exc  # fmt: skip
                await asyncio.sleep(0.5)

    async def _connect(self) -> Client:
        return await nats.connect(
            self.servers,
            name=f"bleeper-{self.node}",
            max_reconnect_attempts=-1,  # for ever: the node keeps serving its own users meanwhile
            reconnect_time_wait=0.5,
            connect_timeout=2,
            ping_interval=2,
            max_outstanding_pings=3,
            allow_reconnect=True,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )

    async def _buckets(self) -> None:
        assert self.client is not None
        js = self.client.jetstream(timeout=5)
        storage = StorageType.FILE
        bucket = f"{self.prefix}-nodes"
        try:
            self.nodes = await js.create_key_value(KeyValueConfig(
                bucket=bucket, history=1, ttl=self.lease, replicas=self.replicas, storage=storage,
                description="Bleeper node leases: a key per live node, gone when it stops refreshing it"))  # fmt: skip
        except BadRequestError as exc:
            if exc.err_code != STREAM_CONFIG_DIFFERS:
                raise
            # The first node set the lease for the cluster (the bucket's age limit): every node must use it.
            self.nodes = await js.key_value(bucket)
            info = await js.stream_info(f"KV_{bucket}")
            lease = float(info.config.max_age or self.lease)
            if lease != self.lease:
                log.warning("the cluster's lease is %g s (set when it was first started); this node uses it, not "
                            "--cluster-lease %g", lease, self.lease)  # fmt: skip
                self.lease = lease

    def handle(self, name: str, handler: Callable[[bytes], None]) -> None:
        """Call *handler* with every signal published on *name* (by any node, this one included)."""
        self.handlers[name] = handler

    async def _subscribe(self, name: str) -> None:
        assert self.client is not None
        handler = self.handlers[name]

        async def received(msg: Msg) -> None:
            try:
                handler(msg.data)
            except Exception:
                log.exception("a %s signal could not be handled", name)

        await self.client.subscribe(self.subject(name), cb=received, pending_msgs_limit=1_000_000,
                                    pending_bytes_limit=512 * 1024 * 1024)  # fmt: skip

    def publish(self, name: str, data: bytes) -> None:
        """Send a signal to every node; never waits. Dropped (and counted) while the bus is unreachable and
        the outbox is full."""
        outbox = self._outbox
        if len(outbox) >= OUTBOX_LIMIT:
            del outbox[0]
            self.dropped += 1
        outbox.append((self.subject(name), data))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                for subject, data in batch:
                    if self.client is None or self.client.is_closed:
                        return
                    try:
                        await self.client.publish(subject, data)
                    except Exception as exc:  # disconnected with a full reconnect buffer: lost, caught up later
                        self.dropped += 1
                        self.last_error = str(exc) or type(exc).__name__
        finally:
            self._flusher = None

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flusher), 2)
        if self.client is not None and not self.client.is_closed:
            with contextlib.suppress(Exception):
                await self.client.drain()
            with contextlib.suppress(Exception):
                await self.client.close()

    async def _error(self, exc: Exception) -> None:
        self.last_error = str(exc) or type(exc).__name__

    async def _disconnected(self) -> None:
        if self.client is not None and not self.client.is_closed:
            log.warning("lost the connection to NATS; serving this node's users, refusing new guest names until "
                        "it is back", extra={"event": "cluster-bus", "state": "disconnected"})  # fmt: skip

    async def _reconnected(self) -> None:
        url: Any = self.client.connected_url if self.client is not None else None
        log.info("NATS connection back (%s); catching up", getattr(url, "netloc", url),
                 extra={"event": "cluster-bus", "state": "reconnected"})  # fmt: skip
        for callback in self.on_reconnect:
            try:
                await callback()
            except Exception:
                log.exception("catching up after a NATS reconnect failed")
