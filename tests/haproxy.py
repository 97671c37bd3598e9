"""HAProxy in front of cluster nodes, as docs/operations.md describes it: the web client (HTTP and /ws) and
the line protocol's TCP port, each balanced over the live nodes, checked on /healthz. Debian's ``haproxy``
package; without it the tests skip, unless BLEEPER_REQUIRE_SERVICES=1 (CI installs it)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster_nodes import Node
from tests.helpers import free_port, wait_for_port
from tests.services import require_services


@dataclass
class Proxy:
    web_port: int
    tcp_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/"


def config(nodes: list[Node], web_port: int, tcp_port: int) -> str:
    """The configuration of docs/operations.md with the nodes' ports filled in, checks every 0.5 s, and
    ``balance first`` instead of ``leastconn``, so that a test knows which node a client is on (the first live)."""
    web = "\n".join(f"    server {n.name} 127.0.0.1:{n.http_port} check inter 500ms fall 2 rise 2" for n in nodes)
    tcp = "\n".join(f"    server {n.name} 127.0.0.1:{n.port} check port {n.http_port} inter 500ms fall 2 rise 2"
                    for n in nodes)  # fmt: skip
    return f"""global
    maxconn 4096

defaults
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option redispatch
    retries 3

frontend bleeper_web
    mode http
    bind 127.0.0.1:{web_port}
    default_backend bleeper_web

backend bleeper_web
    mode http
    balance first
    option httpchk GET /healthz
    http-check expect status 200
{web}

frontend bleeper_chat
    mode tcp
    bind 127.0.0.1:{tcp_port}
    default_backend bleeper_chat

backend bleeper_chat
    mode tcp
    balance first
    option httpchk GET /healthz
    http-check expect status 200
{tcp}
"""


@contextlib.contextmanager
def haproxy(nodes: list[Node]) -> Iterator[Proxy]:
    if shutil.which("haproxy") is None:
        message = "haproxy is not installed (apt install haproxy)"
        if require_services():
            pytest.fail(message + " (BLEEPER_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="bleeper-haproxy-"))
    proxy = Proxy(free_port(), free_port())
    path = folder / "haproxy.cfg"
    path.write_text(config(nodes, proxy.web_port, proxy.tcp_port))
    process = subprocess.Popen(["haproxy", "-db", "-f", str(path)], stdout=subprocess.DEVNULL,
                               stderr=(folder / "haproxy.log").open("wb"))  # fmt: skip
    try:
        wait_for_port(proxy.web_port)
        yield proxy
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
