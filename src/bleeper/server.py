"""The chat server: the framework's TCP transport wired to the chat hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bleeper import __version__
from bleeper.chat import Hub, HubLimits, Session
from bleeper.chat.standing import read_rows
from bleeper.config import ServeConfig
from bleeper.framework import Connection, Server
from bleeper.framework.http import HttpListener
from bleeper.framework.runner import loop_name
from bleeper.framework.websocket import WebSocketTransport
from bleeper.irc_listener import MAX_LINE as IRC_MAX_LINE
from bleeper.irc_listener import IrcListener
from bleeper.protocol.framing import FramingError
from bleeper.store import Store, open_store
from bleeper.store.adapter import StoreBackend
from bleeper.tls import server_context
from bleeper.web import WebOptions, create_app
from bleeper.web.metrics import Metric, exposition

if TYPE_CHECKING:
    from bleeper.cluster.node import ClusterNode
    from bleeper.web.push import VapidKey, WebPush

log = logging.getLogger("bleeper.events")


class ChatServer(Server):
    """``bleeper serve``: every hook hands its event to the hub, which holds all the rules."""

    def __init__(self, config: ServeConfig | None = None) -> None:
        self.config = config = config or ServeConfig()
        super().__init__(config.plain_host or config.host, config.port, max_line=config.max_line,
                         max_send_buffer=config.send_buffer)  # fmt: skip
        self.tls_context = server_context(config)  # checked now: a bad certificate stops the start
        self.push_key: VapidKey | None = None  # Web Push, optional: loaded and checked now, like the certificate
        if config.push_vapid_key:
            from bleeper.web.push import VapidKey

            self.push_key = VapidKey.load(config.push_vapid_key, config.push_contact)
        self.push: WebPush | None = None
        self.tls_addresses: list[tuple[str, int]] = []
        self.cluster: ClusterNode | None = None
        if config.cluster:
            from bleeper.cluster.node import ClusterNode

            self.cluster = ClusterNode(config.cluster_list(), config.node_name(), lease=config.cluster_lease,
                                       replicas=config.cluster_replicas or None)  # fmt: skip
        self.hub = Hub(
            HubLimits(
                rate=config.rate,
                burst=config.burst,
                max_per_address=config.max_per_ip,
                max_clients=config.max_clients,
                ping_interval=config.ping_interval,
                ping_timeout=config.ping_timeout,
                log_messages=config.log_messages,
                auth=config.auth,
                urgent_interval=config.urgent_interval,
                urgent_attempts=config.urgent_attempts,
            ),
            server_name=config.server_name,
            **(self.cluster.hub_options() if self.cluster is not None else {}),
        )
        self.irc: IrcListener | None = None
        if config.irc_port or config.irc_tls_port:
            motd = Path(config.irc_motd).read_text(errors="replace").splitlines() if config.irc_motd else []
            self.irc = IrcListener(self.hub, config.server_name, motd)
        self.irc_addresses: list[tuple[str, int]] = []
        self.store: Store | None = None
        self.backend: StoreBackend | None = None
        self._chores: set[asyncio.Future[None]] = set()
        self.http: HttpListener | None = None
        self.http_addresses: list[tuple[str, int]] = []
        self.connections_total = 0
        self.disconnects: dict[str, int] = {}  # why connections ended, by kind, for /metrics

    async def start(self) -> None:
        """Open the store first: a server that cannot keep messages must not accept any."""
        self.store = await open_store(self.config.db, exclusive=True, writer=self.config.db_writer)
        try:
            self.backend = StoreBackend(self.store)
            self.hub.backend = self.backend
            self.hub.know_accounts(await self.store.list_accounts())
            self.hub.load_groups(await self.store.load_groups())
            if self.push_key is not None:
                from bleeper.web.push import WebPush

                self.push = WebPush(self.store, self.push_key, self.config.push_contact,
                                    services=self.config.push_service_list())  # fmt: skip
                self.hub.notifier = self.push
            await self._restore_standing(self.store)
            if self.cluster is not None:
                await self.cluster.start(self.store)
            await self._log_audit_head("start")
            await super().start()
        except BaseException:
            if self.cluster is not None:
                await self.cluster.close()
            await self.store.close()
            raise

    async def stop(self, grace: float = 5.0) -> None:
        await super().stop(grace)  # WebSocket connections too: they are told, like everyone else
        if self.cluster is not None:
            await self.cluster.close()  # after the goodbyes: the others hear them, then the lease goes
        if self.http is not None:
            await self.http.stop()
            self.http = None
        if self.push is not None:
            await self.push.close()
        if self.backend is not None:
            await self.backend.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                await self._log_audit_head("stop")
            await self.store.close()
            self.store = None

    async def _restore_standing(self, store: Store) -> None:
        standing = read_rows(await store.standing())
        texts: dict[int, str] = {}
        for msg_id in standing.urgent_ids():
            message = await store.message(msg_id)
            texts[msg_id] = message.text if message is not None else ""
        self.hub.restore(standing, texts)
        if standing.roles or standing.backups or standing.urgent:
            log.info("restored %d on-call role(s), %d backup(s), %d urgent message(s) waiting for acknowledgement",
                     len(standing.roles), len(standing.backups), len(standing.urgent))  # fmt: skip
        if standing.unreadable:
            log.warning("%d row(s) of standing state could not be read and were skipped", standing.unreadable)

    async def _log_audit_head(self, when: str) -> None:
        """Written to the console log, which lives apart from the database: a copy of the head there catches a
        log rewritten from some entry on (``bleeper audit verify --head``)."""
        assert self.store is not None
        number, digest = await self.store.audit_head()
        log.info("audit chain head at %s: %d:%s", when, number, digest,
                 extra={"event": "audit-head", "head": f"{number}:{digest}"})  # fmt: skip

    def _chore(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if len(self._chores) < 4:
            task = asyncio.ensure_future(make())
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    async def _refresh(self) -> None:
        """Accounts added or removed by ``bleeper user`` while the server runs."""
        if self.store is None:
            return
        try:
            self.hub.know_accounts(await self.store.list_accounts())
        except Exception as exc:
            log.warning("reading the accounts failed: %s", exc)

    async def _flush_marks(self) -> None:
        """Delivery marks, about once a second: after a crash the next LOGIN repeats only the last second."""
        if self.backend is None:
            return
        try:
            await self.backend.flush_marks()
        except Exception as exc:
            log.warning("writing delivery marks failed (they are written again next time): %s", exc)

    async def on_start(self) -> None:
        _raise_file_limit()
        if self.tls_context is not None:
            self.tls_addresses = await self.add_listener(self.config.host, self.config.tls_port, self.tls_context)
        if self.config.irc_port:
            self.irc_addresses += await self.add_listener(self.config.host, self.config.irc_port, kind="irc",
                                                          max_line=IRC_MAX_LINE)  # fmt: skip
        if self.config.irc_tls_port:
            self.irc_addresses += await self.add_listener(self.config.host, self.config.irc_tls_port,
                                                          self.tls_context, kind="irc", max_line=IRC_MAX_LINE)  # fmt: skip
        if self.config.http:
            await self._start_http()
        if self.config.ping_interval:
            self.every(min(1.0, self.config.ping_interval / 4), self.hub.keepalive)
        self.every(5.0, lambda: self._chore(self._refresh))
        self.every(1.0, lambda: self._chore(self._flush_marks))
        self.every(min(1.0, self.config.urgent_interval / 4), self.hub.alert_urgent)
        self.hub.vital_signs = self._vital_signs
        if self.config.retention_days > 0:
            self._chore(self._expire)
            self.every(3600.0, lambda: self._chore(self._expire))
        others = set(self.tls_addresses) | set(self.irc_addresses)
        where = ", ".join(f"{host}:{port}" for host, port in self.addresses if (host, port) not in others)
        if self.irc_addresses:
            where += ", IRC on " + ", ".join(f"{host}:{port}" for host, port in self.irc_addresses)
        if self.tls_addresses:
            where += ", TLS on " + ", ".join(f"{host}:{port}" for host, port in self.tls_addresses)
        if self.http_addresses:
            scheme = "https" if self.config.tls_cert else "http"
            where += ", web client on " + ", ".join(f"{scheme}://{_url_host(h)}:{p}/" for h, p in self.http_addresses)
        loop = asyncio.get_running_loop()
        log.info(
            "start Bleeper %s listening on %s (%s; store %s; auth %s; message text %s)",
            __version__,
            where,
            loop_name(loop),
            _safe(self.config.db),
            self.config.auth,
            "logged" if self.config.log_messages else "not logged",
            extra={"event": "start", "listen": where, "loop": loop_name(loop), "store": _safe(self.config.db)},
        )
        if self.push_key is not None:
            log.info("Web Push on: pages subscribe with public key %s; contact %s", self.push_key.public,
                     self.config.push_contact, extra={"event": "push"})  # fmt: skip

    async def _start_http(self) -> None:
        config = self.config
        options = WebOptions(self, self._metrics, self._health, config.origin_list(), config.web_notification_text,
                             push_key=self.push_key.public if self.push_key is not None else None)  # fmt: skip
        listener = HttpListener(create_app(options), config.http_host, config.http_port, ssl_certfile=config.tls_cert,
                                ssl_keyfile=config.tls_key)  # fmt: skip
        try:
            self.http_addresses = await listener.start()
        except OSError as exc:
            raise HttpPortError(exc.errno or 0, f"cannot listen for HTTP on {config.http_host}:{config.http_port}: "
                                f"{exc.strerror or exc}; choose another --http-port, or --no-http") from exc  # fmt: skip
        self.http = listener

    def _health(self) -> tuple[bool, dict[str, object]]:
        healthy = self.store is not None and not self._stopping
        details: dict[str, object] = {"connections": len(self.connections), "people": self.hub.registry.count(),
                                      "urgent_waiting": len(self.hub.urgent.open)}  # fmt: skip
        if self.backend is not None:
            details["store_last_commit_ms"] = round(self.backend.journal.last_commit_ms, 3)
        if self.cluster is not None:  # degraded is still healthy: this node serves its users (see the docs)
            details["cluster"] = self.cluster.health()
            details["node"] = self.cluster.name
        return healthy, details

    def _metrics(self) -> str:
        hub, journal = self.hub, self.backend.journal if self.backend is not None else None
        web = sum(1 for conn in self.connections if isinstance(conn.transport, WebSocketTransport))
        irc = sum(1 for conn in self.connections if conn.kind == "irc")
        return exposition([
            Metric("bleeper_connections", "gauge", "Open connections")
            .add(len(self.connections) - web - irc, transport="tcp").add(web, transport="websocket")
            .add(irc, transport="irc"),
            Metric("bleeper_connections_total", "counter", "Connections accepted").add(self.connections_total),
            Metric("bleeper_people", "gauge", "People online (names in use)").add(hub.registry.count()),
            Metric("bleeper_messages_total", "counter", "Messages stored (acknowledged after commit)")
            .add(journal.committed if journal else 0),
            Metric("bleeper_deliveries_total", "counter", "Messages handed to recipients' connections")
            .add(hub.deliveries),
            _by_reason(Metric("bleeper_disconnects_total", "counter", "Connections ended, by why"), self.disconnects),
            Metric("bleeper_urgent_waiting", "gauge", "Urgent messages not yet acknowledged").add(len(hub.urgent.open)),
            Metric("bleeper_store_commit_seconds", "gauge", "Duration of the last store commit")
            .add(journal.last_commit_ms / 1000 if journal else 0),
            Metric("bleeper_store_commits_total", "counter", "Store commits").add(journal.commits if journal else 0),
            Metric("bleeper_store_queue", "gauge", "Messages and audit entries waiting for the next commit")
            .add(journal.waiting if journal else 0),
            *self._push_metrics(),
            *self._cluster_metrics(),
        ])  # fmt: skip

    def _push_metrics(self) -> list[Metric]:
        """Web Push outcomes, only when push is on: a server without it exposes what it always did."""
        if self.push is None:
            return []
        sent = Metric("bleeper_push_sent_total", "counter", "Web Push posts, by result (sent, gone: subscription "
                      "forgotten, rejected, failed, dropped: too many waiting or the server stopping)")  # fmt: skip
        for result, count in self.push.results.items():
            sent.add(count, result=result)
        return [sent]

    def _cluster_metrics(self) -> list[Metric]:
        """Cluster mode only: the bus, the lease, the other nodes and catching up."""
        cluster = self.cluster
        if cluster is None:
            return []
        delivery = cluster.delivery
        return [
            Metric("bleeper_cluster_bus_connected", "gauge", "1 while NATS is reachable").add(int(cluster.bus.connected)),
            Metric("bleeper_cluster_lease_valid", "gauge", "1 while this node holds its lease").add(int(cluster.lease.valid())),
            Metric("bleeper_cluster_lease_losses_total", "counter", "Times this node lost its lease and took it again")
            .add(cluster.lease_losses),
            Metric("bleeper_cluster_nodes", "gauge", "Nodes holding a lease, at the last look").add(len(cluster.nodes)),
            Metric("bleeper_cluster_behind", "gauge", "Messages stored but not yet delivered by this node")
            .add(delivery.behind if delivery is not None else 0),
            Metric("bleeper_cluster_caught_up_total", "counter", "Messages read from the database because their "
                   "signal did not come").add(delivery.filled if delivery is not None else 0),
            Metric("bleeper_cluster_signals_dropped_total", "counter", "Signals dropped while NATS was unreachable")
            .add(cluster.bus.dropped),
        ]  # fmt: skip

    def _vital_signs(self) -> list[str]:
        """The transport's and the store's figures for HEALTH."""
        largest = max((conn.queued for conn in self.connections), default=0)
        lines = [f"largest send buffer {largest} bytes (limit {self.max_send_buffer})"]
        if self.cluster is not None:
            lines.append(self.cluster.health())
        if self.backend is not None:
            journal = self.backend.journal
            lines.append(f"store {_safe(self.config.db)}: {journal.waiting} waiting to commit, last commit "
                         f"{journal.last_commit_ms:.1f} ms, {journal.committed} messages in {journal.commits} commits")  # fmt: skip
        return lines

    async def _expire(self) -> None:
        """Retention: message text older than --retention-days goes; rows, times and audit hashes stay."""
        if self.store is None:
            return
        days = self.config.retention_days
        cutoff = int((time.time() - days * 86400) * 1000)
        try:
            count = await self.store.expire_before(cutoff, f"[expired: older than {days:g} days]")
        except Exception as exc:
            log.warning("retention failed: %s", exc)
            return
        if count:
            self.hub.audit("retention", "server", "messages", expired=count, cutoff_ms=cutoff)
            log.info("retention: removed the text of %d message(s) older than %g days", count, days,
                     extra={"event": "retention", "expired": count})  # fmt: skip

    def on_connect(self, conn: Connection) -> None:
        self.connections_total += 1
        if conn.kind == "irc" and self.irc is not None:
            conn.state = self.irc.connect(conn)
        else:
            conn.state = self.hub.connect(conn, conn.address, conn.host)

    def on_message(self, conn: Connection, line: str) -> Awaitable[None] | None:
        session: Session | None = conn.state
        if session is None:
            return None
        if conn.kind == "irc" and self.irc is not None:
            return self.irc.line(session, line)
        pending = self.hub.handle(session, line)
        if pending is None:
            return None
        # The hub has its own callback on the answer (errors included); the framework only needs to know when
        # this connection may go on.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release(_: object) -> None:
            if not waiter.done():
                waiter.set_result(None)

        pending.add_done_callback(release)
        return waiter

    def on_invalid(self, conn: Connection, error: FramingError) -> None:
        session: Session | None = conn.state
        if session is not None and conn.kind == "irc" and self.irc is not None:
            self.irc.invalid(session, error)
        elif session is not None:
            self.hub.framing_error(session, error)

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        kind = _reason_kind(reason)
        self.disconnects[kind] = self.disconnects.get(kind, 0) + 1
        session: Session | None = conn.state
        if session is not None:
            self.hub.disconnect(session, reason)

    async def on_stop(self) -> None:
        active = len(self.hub.sessions)
        log.info(
            "stop: telling %d client(s) the server is shutting down", active, extra={"event": "stop", "active": active}
        )
        self.hub.shutdown("server shutting down")


class HttpPortError(OSError):
    """The web listener could not start; the message says what to do."""


# Disconnect reasons by how they begin, reduced to a few kinds: a metric label must not take free text.
REASON_KINDS = (("send buffer full", "slow_reader"), ("flood", "flood"), ("ping timeout", "ping_timeout"),
                ("kicked", "kicked"), ("server shutting down", "shutdown"), ("refused", "refused"))  # fmt: skip


def _reason_kind(reason: str) -> str:
    return next((kind for start, kind in REASON_KINDS if reason.startswith(start)), "client")


def _by_reason(metric: Metric, counts: dict[str, int]) -> Metric:
    for kind, count in sorted(counts.items()):
        metric.add(count, reason=kind)
    return metric


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _safe(location: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", location)


def _raise_file_limit() -> None:
    """Each client needs a file descriptor: raise the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
