"""Test-side helpers: a raw line client over a real socket, and ways to start real servers."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bleeper.chat.names import name_key
from bleeper.protocol.incoming import Event, Message, Reply, ReplyAssembler
from bleeper.server import ChatServer
from bleeper.store import open_store
from bleeper.store.passwords import hash_password

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0


class LineClient:
    """Speaks to the server the way telnet would: raw lines in, raw lines out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.assembler = ReplyAssembler()
        self.events: list[Event | Message] = []

    @property
    def address(self) -> str:
        """This end as the server names it: ``host:port``."""
        host, port = self.writer.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", *, greet: bool = True) -> LineClient:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        client = cls(reader, writer)
        if greet:
            greeting = await client.reply()
            assert greeting.code == 220, greeting
        return client

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(line + "\r\n" for line in lines).encode())
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = TIMEOUT) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise ConnectionError("server closed the connection")
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2].decode()

    async def reply(self, timeout: float = TIMEOUT) -> Reply:
        """The next whole reply; events that arrive first are kept in ``self.events``."""
        while True:
            item = self.assembler.feed(await self.line(timeout))
            if isinstance(item, Reply):
                return item
            if item is not None:
                self.events.append(item)

    async def event(self, kind: str | None = None, timeout: float = TIMEOUT) -> Event | Message:
        """The next event (of *kind*, skipping others); fails if a reply comes first."""
        for index, kept in enumerate(self.events):
            if kind is None or _kind(kept) == kind:
                return self.events.pop(index)
        while True:
            item = self.assembler.feed(await self.line(timeout))
            if isinstance(item, Reply):
                raise AssertionError(f"expected an event, got reply {item}")
            if item is not None and (kind is None or _kind(item) == kind):
                return item
            if item is not None:
                self.events.append(item)

    async def drain(self) -> None:
        """Forget everything received so far (a PING round trip proves it all arrived)."""
        await self.send("PING drain")
        while (await self.reply()).text != "PONG drain":
            pass
        self.events.clear()

    async def message(self, timeout: float = TIMEOUT) -> Message:
        item = await self.event("MSG", timeout)
        assert isinstance(item, Message)
        return item

    async def command(self, line: str) -> Reply:
        await self.send(line)
        return await self.reply()

    async def register(self, name: str) -> Reply:
        reply = await self.command(f"NAME {name}")
        assert reply.code == 201, reply
        return reply

    async def closed(self, timeout: float = TIMEOUT) -> bytes:
        """Read until the server hangs up; returns what came before."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def create_accounts(where: str, *names: str, admins: tuple[str, ...] = ()) -> str:
    """Accounts in the store at *where* (a path or URL), each with the password ``<name>-password``; those
    in *admins* are administrators."""
    store = await open_store(where)
    try:
        for name in (*names, *admins):
            await store.create_account(name_key(name), name, hash_password(f"{name}-password"), name in admins,
                                       int(time.time() * 1000))  # fmt: skip
    finally:
        await store.close()
    return where


def _kind(item: Event | Message) -> str:
    return "MSG" if isinstance(item, Message) else item.kind


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


@contextmanager
def server_process(
    *args: str, port: int | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``bleeper serve`` as a real subprocess; stopped with SIGTERM afterwards."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    scratch = tempfile.mkdtemp(prefix="bleeper-test-")
    if "--db" not in args:
        args = ("--db", os.path.join(scratch, "bleeper.db"), *args)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bleeper", "serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=ROOT,
    )
    try:
        wait_for_port(port)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


async def login(server: ChatServer | int, name: str, password: str | None = None) -> tuple[LineClient, str]:
    """A connection to *server* (or a port) logged in to *name*'s account (password ``<name>-password``)."""
    client = await LineClient.connect(server if isinstance(server, int) else server.addresses[0][1])
    reply = await client.command(f"LOGIN {name} {password or name.lower() + '-password'}")
    assert reply.code == 202, reply
    return client, reply.text


@contextmanager
def running_store(folder: Path, *args: str, port: int | None = None) -> Iterator[str]:
    """``bleeper store serve`` as a real process (on a free port unless given); yields its URL."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bleeper", "store", "serve", "--port", str(port), "--db",
                             str(folder / "kv.db"), *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Terminal:
    """``python -m bleeper ARGS`` in a real pseudo-terminal, its output rendered by a terminal emulator (pyte),
    so tests check what a person would see on the screen rather than raw escape sequences."""

    def __init__(self, *args: str) -> None:
        import pexpect
        import pyte

        self.child = pexpect.spawn(
            sys.executable, ["-m", "bleeper", *args], cwd=str(ROOT), encoding="utf-8", dimensions=(24, 100),
            timeout=10, env={**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"},
        )  # fmt: skip
        self.screen = pyte.Screen(100, 24)
        self.stream = pyte.Stream(self.screen)

    def rows(self) -> list[str]:
        return [row.rstrip() for row in self.screen.display if row.strip()]

    async def see(self, text: str, timeout: float = 10) -> list[str]:
        """Wait until *text* is on the screen; returns the non-empty rows."""
        import pexpect

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=0))
                continue
            except pexpect.TIMEOUT:
                pass
            except pexpect.EOF:
                if text in "\n".join(self.rows()):
                    return self.rows()
                raise AssertionError(f"{text!r} never appeared; screen:\n" + "\n".join(self.rows())) from None
            if text in "\n".join(self.rows()):
                return self.rows()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{text!r} not on screen; screen:\n" + "\n".join(self.rows()))
            await asyncio.sleep(0.05)

    def type(self, keys: str) -> None:
        self.child.send(keys)

    async def exited(self, timeout: float = 10) -> int:
        import pexpect

        await self.child.expect(pexpect.EOF, timeout=timeout, async_=True)
        self.child.close()
        return int(self.child.exitstatus or 0)
