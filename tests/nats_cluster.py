"""A NATS cluster of our own for the cluster tests: three ``nats-server -js`` processes on free ports, routed to
each other, with JetStream storage in a scratch folder. The machine's own NATS (if any) is never used: a test
must be able to kill a server.

Without ``nats-server`` on the PATH the tests skip, unless BLEEPER_REQUIRE_SERVICES=1 (CI installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_port
from tests.services import require_services


@dataclass
class NatsServer:
    name: str
    port: int
    cluster_port: int
    folder: Path
    routes: list[int] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.folder / f"{self.name}.conf"
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
        config.write_text(
            f'server_name: "{self.name}"\nlisten: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.folder / self.name}", max_memory_store: 64MB, max_file_store: 256MB }}\n'
            f'cluster {{ name: "bleeper-test", listen: "127.0.0.1:{self.cluster_port}", routes: [{routes}] }}\n'
        )
        log = (self.folder / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(["nats-server", "-c", str(config)], stdout=log, stderr=log)
        log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class NatsCluster:
    servers: list[NatsServer]

    @property
    def urls(self) -> str:
        """As ``--cluster`` takes them: comma-separated."""
        return ",".join(server.url for server in self.servers)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Every server answers on its client port and JetStream has a meta leader (asked over /jsz would need
        monitoring ports; a client that can create a replicated bucket is the real test, done by the caller)."""
        deadline = time.monotonic() + timeout
        for server in self.servers:
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", server.port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"nats-server {server.name} did not start; see {server.folder}") from None
                    time.sleep(0.05)


def nats_available() -> bool:
    return shutil.which("nats-server") is not None


@contextlib.contextmanager
def nats_cluster(size: int = 3) -> Iterator[NatsCluster]:
    """*size* routed nats-server processes with JetStream; killed and their storage removed afterwards."""
    if not nats_available():
        message = "nats-server is not installed (apt install nats-server)"
        if require_services():
            pytest.fail(message + " (BLEEPER_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="bleeper-nats-"))
    cluster_ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(f"n{index + 1}", free_port(), cluster_ports[index], folder,
                   [port for other, port in enumerate(cluster_ports) if other != index])
        for index in range(size)
    ]  # fmt: skip
    try:
        for server in servers:
            server.start()
        cluster = NatsCluster(servers)
        cluster.wait_ready()
        yield cluster
    finally:
        for server in servers:
            server.stop()
        if not os.environ.get("KEEP_NATS"):
            shutil.rmtree(folder, ignore_errors=True)
