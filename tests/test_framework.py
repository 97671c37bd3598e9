"""The framework's hooks and guarantees, and the teaching examples built on it."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import pytest
from examples.echo_server import EchoServer
from examples.ego_server import FAVOURITE, EgoServer

from bleeper.framework import Client, Connection, Server
from bleeper.protocol.framing import FramingError
from tests.helpers import ROOT, free_port, wait_for_port


class Recorder(Server):
    """Records every hook call in order."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("127.0.0.1", 0, **kwargs)  # type: ignore[arg-type]
        self.calls: list[tuple[str, str]] = []

    async def on_start(self) -> None:
        self.calls.append(("start", ""))

    def on_connect(self, conn: Connection) -> None:
        conn.state = {"lines": 0}
        self.calls.append(("connect", ""))

    def on_message(self, conn: Connection, line: str) -> None:
        conn.state["lines"] += 1
        self.calls.append(("message", line))
        conn.send(f"{conn.state['lines']}:{line}")

    def on_invalid(self, conn: Connection, error: FramingError) -> None:
        self.calls.append(("invalid", type(error).__name__))

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        self.calls.append(("disconnect", reason))

    async def on_stop(self) -> None:
        self.calls.append(("stop", ""))


async def test_hooks_are_called_in_order_with_per_connection_state() -> None:
    server = Recorder(max_line=16)
    await server.start()
    port = server.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"one\ntwo\n" + b"x" * 40 + b"\n\xc3\x28\n")
    await writer.drain()
    assert await reader.readline() == b"1:one\r\n"
    assert await reader.readline() == b"2:two\r\n"
    writer.close()
    await asyncio.sleep(0.1)
    await server.stop()
    kinds = [kind for kind, _ in server.calls]
    assert kinds == ["start", "connect", "message", "message", "invalid", "invalid", "disconnect", "stop"]
    assert server.calls[4][1] == "LineTooLong" and server.calls[5][1] == "InvalidEncoding"


async def test_writes_in_one_turn_are_coalesced_into_one_transport_write() -> None:
    class Burst(Server):
        def on_message(self, conn: Connection, line: str) -> None:
            before = self.transport_writes
            for number in range(100):
                conn.send(str(number))
            asyncio.get_running_loop().call_soon(lambda: conn.send(f"writes={self.transport_writes - before}"))

    server = Burst("127.0.0.1", 0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][1])
    writer.write(b"go\n")
    lines = [(await reader.readline()).strip() for _ in range(101)]
    assert lines[:100] == [str(n).encode() for n in range(100)]
    assert lines[100] == b"writes=1"
    writer.close()
    await server.stop()


async def test_send_buffer_overflow_drops_only_that_connection() -> None:
    class Firehose(Server):
        def on_message(self, conn: Connection, line: str) -> None:
            for _ in range((line == "flood" and 2000) or 1):
                conn.send("y" * 1000)

    server = Firehose("127.0.0.1", 0, max_send_buffer=100_000)
    await server.start()
    port = server.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"flood\n")  # 2 MB in one turn: more than the 100 kB buffer
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    assert len(data) <= 200_000
    other_writer.write(b"hi\n")
    assert len(await other_reader.readline()) == 1002
    writer.close()
    other_writer.close()
    await server.stop()


async def test_async_handler_keeps_replies_in_order() -> None:
    class Slow(Server):
        async def _answer(self, conn: Connection, line: str) -> None:
            await asyncio.sleep(0.05)
            conn.send(f"slow {line}")

        def on_message(self, conn: Connection, line: str):  # type: ignore[no-untyped-def]
            if line.startswith("wait"):
                return self._answer(conn, line)
            conn.send(f"fast {line}")
            return None

    server = Slow("127.0.0.1", 0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][1])
    writer.write(b"a\nwait1\nb\nwait2\nc\n")
    lines = [(await reader.readline()).decode().strip() for _ in range(5)]
    assert lines == ["fast a", "slow wait1", "fast b", "slow wait2", "fast c"]
    writer.close()
    await server.stop()


async def test_client_base_talks_to_the_echo_example() -> None:
    server = EchoServer("127.0.0.1", 0)
    await server.start()
    got: asyncio.Queue[str] = asyncio.Queue()

    class Collector(Client):
        def on_message(self, conn: Connection, line: str) -> None:
            got.put_nowait(line)

    client = Collector("127.0.0.1", server.addresses[0][1])
    await client.connect()
    client.send("hello, world")
    assert await asyncio.wait_for(got.get(), 5) == "HELLO, WORLD"
    client.close()
    assert "closed" in await asyncio.wait_for(client.wait_closed(), 5)
    await server.stop()


async def test_ego_example_says_its_colour_and_hangs_up() -> None:
    server = EgoServer("127.0.0.1", 0)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][1])
    assert await asyncio.wait_for(reader.read(), 5) == (FAVOURITE + "\r\n").encode()
    writer.close()
    await server.stop()


@pytest.mark.parametrize(("script", "send", "expect"), [
    ("echo_server.py", b"shout this\r\n", b"SHOUT THIS\r\n"),
    ("ego_server.py", b"", (FAVOURITE + "\r\n").encode()),
])  # fmt: skip
def test_examples_run_as_scripts(script: str, send: bytes, expect: bytes) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / script), "localhost", str(port)],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        wait_for_port(port)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(send)
            assert sock.recv(1000) == expect
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_example_usage_message() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "echo_server.py")], capture_output=True, text=True)
    assert result.returncode == 2 and "usage:" in result.stderr
