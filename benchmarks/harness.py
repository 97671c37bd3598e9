"""Shared benchmark machinery: start a server process, drive many clients, measure the server.

Server cost is read from the server process's own CPU time (user + system) and RSS, so the figures do not
depend on how fast the load generator is. Every server speaks through a *dialect*, so the same load runs
against Bleeper and against IRC servers (ngIRCd, InspIRCd) for a baseline in the same run.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"no server on port {port}")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


# -- dialects -------------------------------------------------------------------------------------------


class Dialect:
    name = "?"
    message_marker = b""  # bytes that start (or appear once in) each delivered message line
    ack_marker: bytes | None = None  # a per-message acknowledgement the sender gets, if any

    def register(self, nick: str) -> bytes:
        raise NotImplementedError

    def registered_marker(self, nick: str) -> bytes:
        raise NotImplementedError

    def join(self, group: str) -> bytes:
        raise NotImplementedError

    def joined_marker(self, group: str) -> bytes:
        raise NotImplementedError

    def to_group(self, group: str, text: str) -> bytes:
        raise NotImplementedError

    def to_user(self, nick: str, text: str) -> bytes:
        raise NotImplementedError

    def ping(self, token: str) -> bytes:
        raise NotImplementedError

    def pong_marker(self, token: str) -> bytes:
        raise NotImplementedError

    def text_of(self, line: bytes) -> bytes:
        """The message text of a delivered message line."""
        raise NotImplementedError


class BleeperDialect(Dialect):
    name = "bleeper"
    message_marker = b"MSG "
    ack_marker = b"250 "

    def register(self, nick: str) -> bytes:
        return f"NAME {nick}\r\n".encode()

    def registered_marker(self, nick: str) -> bytes:
        return f"201 {nick} ".encode()

    def join(self, group: str) -> bytes:
        return f"JOIN #{group}\r\n".encode()

    def joined_marker(self, group: str) -> bytes:
        return f"203 #{group} ".encode()

    def to_group(self, group: str, text: str) -> bytes:
        return f"TELL #{group} {text}\r\n".encode()

    def to_user(self, nick: str, text: str) -> bytes:
        return f"TELL {nick} {text}\r\n".encode()

    def ping(self, token: str) -> bytes:
        return f"PING {token}\r\n".encode()

    def pong_marker(self, token: str) -> bytes:
        return f"200 PONG {token}".encode()

    def text_of(self, line: bytes) -> bytes:
        return line.split(b" ", 6)[6]  # MSG <seq> <id> <time> <from> <to> <text>


class IrcDialect(Dialect):
    name = "irc"
    message_marker = b" PRIVMSG "

    def register(self, nick: str) -> bytes:
        return f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n".encode()

    def registered_marker(self, nick: str) -> bytes:
        return f" 001 {nick} ".encode()

    def join(self, group: str) -> bytes:
        return f"JOIN #{group}\r\n".encode()

    def joined_marker(self, group: str) -> bytes:
        return b" 366 "  # end of NAMES: the join is complete

    def to_group(self, group: str, text: str) -> bytes:
        return f"PRIVMSG #{group} :{text}\r\n".encode()

    def to_user(self, nick: str, text: str) -> bytes:
        return f"PRIVMSG {nick} :{text}\r\n".encode()

    def ping(self, token: str) -> bytes:
        return f"PING :{token}\r\n".encode()

    def pong_marker(self, token: str) -> bytes:
        return b"PONG"

    def text_of(self, line: bytes) -> bytes:
        return line.split(b" :", 1)[1]


# -- servers --------------------------------------------------------------------------------------------


class ServerProcess:
    """A server under test in its own process."""

    dialect: Dialect = BleeperDialect()
    label = "Bleeper"

    def __init__(self, db: str | None = None, *options: str, src: str | None = None) -> None:
        self.options = options
        self.src = src  # run the Bleeper found here (another checkout's src/) rather than this one
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self._scratch = tempfile.mkdtemp(prefix="bench-bleeper-")
        self.db = db or os.path.join(self._scratch, "bleeper.db")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "bleeper", "serve", "--port", str(self.port), "--rate", "0", "--max-per-ip", "0",
            "--log-level", "warning", "--db", self.db, "--no-http", *self.options,
        ]  # fmt: skip

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": self.src} if self.src else None
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                                     preexec_fn=_raise_fd_limit, env=env)  # fmt: skip
        wait_for_port(self.port)
        self.ps = psutil.Process(self.pid())
        return self

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def cpu(self) -> float:
        """CPU seconds used by the server so far, its writer process included."""
        assert self.ps is not None
        total = 0.0
        for process in (self.ps, *self.ps.children(recursive=True)):
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)


def _raise_fd_limit() -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class NgircdProcess(ServerProcess):
    dialect = IrcDialect()
    label = "ngIRCd"

    def __enter__(self) -> ServerProcess:
        self.dir = tempfile.mkdtemp(prefix="bench-ngircd-")
        conf = Path(self.dir) / "ngircd.conf"
        motd = Path(self.dir) / "motd"
        motd.write_text("bench\n")
        conf.write_text(
            "[Global]\n Name = bench.local\n Info = bench\n Listen = 127.0.0.1\n"
            f" Ports = {self.port}\n MotdFile = {motd}\n PidFile = {self.dir}/pid\n"
            "[Limits]\n MaxConnections = 0\n MaxConnectionsIP = 0\n MaxJoins = 0\n MaxNickLength = 32\n"
            " PingTimeout = 3600\n PongTimeout = 3600\n MaxListSize = 100000\n MaxPenaltyTime = 0\n"
            "[Options]\n DNS = no\n Ident = no\n PAM = no\n"
        )
        self.proc = subprocess.Popen(["ngircd", "--nodaemon", "--config", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=_raise_fd_limit)  # fmt: skip
        wait_for_port(self.port)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        shutil.rmtree(self.dir, ignore_errors=True)


class InspircdProcess(ServerProcess):
    dialect = IrcDialect()
    label = "InspIRCd"

    def __enter__(self) -> ServerProcess:
        self.dir = tempfile.mkdtemp(prefix="bench-inspircd-")
        d = self.dir
        Path(d, "motd").write_text("bench\n")
        Path(d, "inspircd.conf").write_text(
            '<server name="bench.local" description="bench" network="bench">\n'
            '<admin name="bench" nick="bench" email="bench@bench.local">\n'
            f'<bind address="127.0.0.1" port="{self.port}" type="clients">\n'
            '<connect name="main" allow="*" maxchans="100" timeout="60" pingfreq="3600" hardsendq="1000000000" '
            'softsendq="100000000" recvq="100000000" threshold="1000000000" commandrate="1000000000" fakelag="off" '
            'localmax="1000000" globalmax="1000000" useident="no" limit="1000000" resolvehostnames="no">\n'
            f'<pid file="{d}/pid">\n'
            f'<files motd="{d}/motd">\n'
            '<performance softlimit="100000" somaxconn="1024" clonesonconnect="no" quietbursts="yes">\n'
            '<security hidesplits="no" maxtargets="20">\n'
            '<limits maxnick="32" maxchan="64" maxtopic="300" maxquit="255" maxkick="255" maxreal="128" '
            'maxgecos="128" maxaway="200" maxident="12" maxhost="64">\n'
            f'<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{d}/ircd.log">\n'
        )
        self.proc = subprocess.Popen(["inspircd", "--nofork", "--nopid", *(["--runasroot"] if os.geteuid() == 0 else []),
                                      "--config", f"{d}/inspircd.conf"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_raise_fd_limit)  # fmt: skip
        wait_for_port(self.port)
        self.ps = psutil.Process(self.proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        shutil.rmtree(self.dir, ignore_errors=True)


def available_baselines() -> list[type[ServerProcess]]:
    """The IRC servers installed here (``apt-get install ngircd inspircd``), measured in the same run."""
    found: list[type[ServerProcess]] = []
    if shutil.which("ngircd"):
        found.append(NgircdProcess)
    if shutil.which("inspircd"):
        found.append(InspircdProcess)
    return found


# -- clients --------------------------------------------------------------------------------------------


@dataclass
class Stats:
    received: int = 0
    acked: int = 0
    latencies: list[float] = field(default_factory=list)


class LoadClient(asyncio.Protocol):
    """A fast client: counts delivered messages; parses lines only when it must (latency, acks, setup)."""

    def __init__(self, dialect: Dialect, stats: Stats, track_latency: bool) -> None:
        self.dialect = dialect
        self.stats = stats
        self.track = track_latency
        self.parse = True  # during setup, and for senders and latency trackers
        self.buffer = b""
        self.waiting: tuple[bytes, asyncio.Future[None]] | None = None
        self.transport: asyncio.Transport | None = None
        self.ack_event: asyncio.Event | None = None
        self.closed = asyncio.get_event_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        marker = self.dialect.message_marker
        if not self.parse and self.waiting is None:
            self.stats.received += data.count(marker)
            return
        self.buffer += data
        lines = self.buffer.split(b"\r\n")
        self.buffer = lines.pop()
        now = time.monotonic_ns()
        ack = self.dialect.ack_marker
        for line in lines:
            if marker in line:
                self.stats.received += 1
                if self.track:
                    text = self.dialect.text_of(line)
                    if text.startswith(b"t"):
                        self.stats.latencies.append((now - int(text[1:].split(b" ", 1)[0])) / 1e6)
            elif ack is not None and line.startswith(ack):
                self.stats.acked += 1
                if self.ack_event is not None:
                    self.ack_event.set()
            elif line.startswith(b"PING"):
                assert self.transport is not None
                self.transport.write(b"PONG" + line[4:] + b"\r\n")
            if self.waiting is not None and self.waiting[0] in line:
                _marker_wanted, future = self.waiting
                self.waiting = None
                if not future.done():
                    future.set_result(None)

    async def send_and_wait(self, data: bytes, marker: bytes, timeout: float = 120.0) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting = (marker, future)
        assert self.transport is not None
        self.transport.write(data)
        await asyncio.wait_for(future, timeout)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def open_clients(
    port: int, dialect: Dialect, count: int, stats: Stats, *, track: int = 0, group: str | None = None,
    prefix: str = "u", batch: int = 200,
) -> list[LoadClient]:  # fmt: skip
    """Connect and register *count* clients (and join *group*), *batch* at a time."""
    loop = asyncio.get_running_loop()
    clients: list[LoadClient] = []
    for start in range(0, count, batch):

        def factory(index: int) -> Callable[[], LoadClient]:
            return lambda: LoadClient(dialect, stats, index < track)

        made = await asyncio.gather(
            *(loop.create_connection(factory(i), "127.0.0.1", port) for i in range(start, min(count, start + batch)))
        )
        batch_clients = [protocol for _, protocol in made]
        await asyncio.gather(*(
            c.send_and_wait(dialect.register(f"{prefix}{start + i}"), dialect.registered_marker(f"{prefix}{start + i}"))
            for i, c in enumerate(batch_clients)
        ))  # fmt: skip
        if group is not None:
            await asyncio.gather(*(c.send_and_wait(dialect.join(group), dialect.joined_marker(group))
                                   for c in batch_clients))  # fmt: skip
        clients.extend(batch_clients)
    return clients


async def settle(clients: list[LoadClient], dialect: Dialect) -> None:
    """Wait until every client has read everything sent to it so far (a PING round trip each)."""
    await asyncio.gather(*(c.send_and_wait(dialect.ping(f"s{i}"), dialect.pong_marker(f"s{i}"))
                           for i, c in enumerate(clients)))  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"p50 {percentile(values, 50):.2f} ms, p99 {percentile(values, 99):.2f} ms, max {max(values):.2f} ms (n={len(values)}, mean {statistics.fmean(values):.2f})"
