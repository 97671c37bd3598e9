"""Bleeper nodes as real processes for the cluster tests: each ``bleeper serve --cluster`` on free ports, its
console log in a file (read back when a test fails), stopped, killed, paused and restarted by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from tests.helpers import ROOT, LineClient, wait_for_port
from tests.nats_cluster import NatsCluster
from tests.services import ADMIN_URL, unavailable


def stable_port() -> int:
    """A free port below the kernel's ephemeral range, so that a node restarted on it does not find it taken by
    some client's outgoing connection (which get their local ports from that range)."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


@dataclass
class Node:
    name: str
    db: str
    nats: str
    folder: Path
    lease: float
    extra: tuple[str, ...] = ()
    port: int = field(default_factory=lambda: stable_port())
    http_port: int = field(default_factory=lambda: stable_port())
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bleeper", "serve", "--port", str(self.port), "--http-port",
                 str(self.http_port), "--db", self.db, "--cluster", self.nats, "--node", self.name,
                 "--cluster-lease", str(self.lease), "--max-per-ip", "0", "--rate", "1000", "--burst", "5000",
                 *self.extra],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 45.0) -> None:
        try:
            wait_for_port(self.port, timeout)
        except TimeoutError:
            raise AssertionError(f"node {self.name} did not start:\n{self.tail()}") from None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    async def client(self, name: str | None = None) -> LineClient:
        client = await LineClient.connect(self.port)
        if name is not None:
            reply = await client.register(name)
            assert reply.code == 201, reply
        return client


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for a module's nodes (synchronous, for module-scoped fixtures)."""
    name = f"bleeper_cluster_{os.getpid()}_{int(time.time() * 1000) % 10**8}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def nodes(db: str, nats: NatsCluster, count: int = 3, *, lease: float = 3.0, extra: tuple[str, ...] = (),
          first: str = "a") -> Iterator[list[Node]]:  # fmt: skip
    """*count* nodes (named from *first* on: ``a``, ``b``, ``c``...; nodes sharing a NATS cluster need names of
    their own) on one database; all stopped afterwards, their logs printed if the test failed."""
    folder = Path(tempfile.mkdtemp(prefix="bleeper-nodes-"))
    started = [Node(chr(ord(first) + index), db, nats.urls, folder, lease, extra) for index in range(count)]
    failed = False
    try:
        for node in started:
            node.start(wait=False)
        for node in started:
            node.wait_ready()
        yield started
    except BaseException:
        failed = True
        for node in started:
            print(f"--- node {node.name} ---\n{node.tail(120)}\n(whole log: {node.log})")
        raise
    finally:
        for node in started:
            node.stop()
        if not failed:
            shutil.rmtree(folder, ignore_errors=True)
