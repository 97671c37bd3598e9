"""Bad input, hostile and slow clients, races and load: each gets a clear answer and nobody else suffers."""

from __future__ import annotations

import asyncio
import random
import re
import socket
import time

from bleeper.server import ChatServer
from tests.conftest import port_of
from tests.helpers import LineClient

SERVER_LINE = re.compile(rb"^(\d{3}[ -]|[A-Z]+( |$))")


async def test_line_too_long_is_413_and_the_connection_lives_on(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(max_line=100)
    alice = await LineClient.connect(port_of(server))
    await alice.send("SAY " + "x" * 200)
    reply = await alice.reply()
    assert reply.code == 413 and "100" in reply.text
    assert (await alice.command("PING ok")).text == "PONG ok"


async def test_ten_megabyte_line_without_newline(server: ChatServer) -> None:
    alice = await LineClient.connect(port_of(server))
    await alice.register("alice")
    bob = await LineClient.connect(port_of(server))
    await bob.register("bob")
    chunk = b"A" * 65536
    for _ in range(160):
        await alice.send_raw(chunk)
    first = await alice.reply()
    assert first.code == 413
    conn = next(c for c in server.connections if c.state.name == "alice")
    assert conn.framer.buffered == 0  # nothing of the 10 MB is held
    await alice.send_raw(b"\r\n")
    assert (await alice.command("SAY still here")).code == 250
    assert (await bob.message()).text == "still here"


async def test_invalid_utf8_is_400_and_the_next_line_works(server: ChatServer) -> None:
    alice = await LineClient.connect(port_of(server))
    await alice.send_raw(b"NAME \xe9milie\r\nNAME emilie\r\n")
    bad = await alice.reply()
    assert bad.code == 400 and "UTF-8" in bad.text
    assert (await alice.reply()).code == 201


async def test_telnet_negotiation_bytes_are_ignored(server: ChatServer) -> None:
    alice = await LineClient.connect(port_of(server))
    await alice.send_raw(b"\xff\xfd\x03\xff\xfb\x18NAME tel\xff\xf1net\r\n")
    assert (await alice.reply()).fields[0] == "telnet"


async def test_abrupt_disconnect_mid_line_sends_nothing_and_cleans_up(server: ChatServer) -> None:
    alice = await LineClient.connect(port_of(server))
    await alice.register("alice")
    await alice.command("JOIN #icu")
    bob = await LineClient.connect(port_of(server))
    await bob.register("bob")
    await bob.command("JOIN #icu")
    await alice.drain()
    await bob.send_raw(b"SAY half a mess")
    bob.writer.transport.abort()
    offline = await alice.event("OFFLINE")
    assert offline.args[0] == "bob"
    assert not [e for e in alice.events if e.__class__.__name__ == "Message"]
    assert (await alice.command("WHO #icu")).items == ("alice",)
    carol = await LineClient.connect(port_of(server))
    await carol.register("bob")  # the name was freed


async def test_reset_connection_is_cleaned_up(server: ChatServer) -> None:
    alice = await LineClient.connect(port_of(server))
    await alice.register("alice")
    sock = socket.create_connection(("127.0.0.1", port_of(server)))
    sock.sendall(b"NAME rst\r\n")
    await alice.event("ONLINE")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST instead of FIN
    offline = await alice.event("OFFLINE")
    assert offline.args[0] == "rst"


async def test_two_connections_racing_for_one_name(server: ChatServer) -> None:
    for round_number in range(20):
        a, b = await LineClient.connect(port_of(server)), await LineClient.connect(port_of(server))
        name = f"race{round_number}"
        await asyncio.gather(a.send(f"NAME {name}"), b.send(f"NAME {name}"))
        replies = await asyncio.gather(a.reply(), b.reply())
        assert sorted(r.code for r in replies) == [201, 409]
        await a.close()
        await b.close()


async def test_rate_limit_429_then_flood_disconnect(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(rate=5, burst=10)
    flooder = await LineClient.connect(port_of(server))
    watcher = await LineClient.connect(port_of(server))
    await watcher.register("watcher")
    await flooder.send(*["PING"] * 10)
    assert [(await flooder.reply()).code for _ in range(10)] == [200] * 10
    await flooder.send("PING")
    assert (await flooder.reply()).code == 429
    await flooder.send(*["PING"] * 40)
    rest = await flooder.closed()
    lines = rest.decode().splitlines()
    assert all(line.startswith("429 ") for line in lines[:-1])
    assert lines[-1].startswith("CLOSING flood")
    assert (await watcher.command("PING still")).text == "PONG still"


async def test_quit_is_honoured_even_when_rate_limited(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(rate=1, burst=2)
    client = await LineClient.connect(port_of(server))
    await client.send("PING", "PING", "PING", "QUIT")
    assert [(await client.reply()).code for _ in range(4)] == [200, 200, 429, 221]


async def test_random_binary_gets_well_formed_answers(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(rate=0)
    rng = random.Random(1234)
    bystander = await LineClient.connect(port_of(server))
    await bystander.register("bystander")
    for _ in range(5):
        garbage = await LineClient.connect(port_of(server))
        await garbage.send_raw(rng.randbytes(200_000))
        await garbage.send_raw(b"\r\nQUIT\r\n")
        received = await garbage.closed(timeout=10)
        lines = received.split(b"\r\n")
        assert lines[-2].startswith(b"221 ")  # every line was answered, in order, up to QUIT
        for line in lines[:-1]:
            assert SERVER_LINE.match(line), line[:80]
    assert (await bystander.command("PING alive")).text == "PONG alive"


async def test_random_binary_flood_is_cut_off_with_a_reason(server: ChatServer) -> None:
    rng = random.Random(99)
    bystander = await LineClient.connect(port_of(server))
    await bystander.register("bystander")
    garbage = await LineClient.connect(port_of(server))
    await garbage.send_raw(b"".join(rng.randbytes(100) + b"\n" for _ in range(2000)))
    received = await garbage.closed(timeout=10)
    assert received.split(b"\r\n")[-2].startswith(b"CLOSING flood")
    assert (await bystander.command("PING alive")).text == "PONG alive"


async def test_per_address_connection_cap(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(max_per_ip=3)
    held = [await LineClient.connect(port_of(server)) for _ in range(3)]
    refused = await LineClient.connect(port_of(server), greet=False)
    reply = await refused.reply()
    assert reply.code == 421 and "too many connections" in reply.text
    assert await refused.closed() == b""
    await held[0].command("QUIT")
    await held[0].closed()
    await asyncio.sleep(0.05)
    await LineClient.connect(port_of(server))  # a place is free again


async def test_server_full(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(max_clients=2)
    _held = [await LineClient.connect(port_of(server)) for _ in range(2)]
    refused = await LineClient.connect(port_of(server), greet=False)
    assert (await refused.reply()).code == 421


async def test_silent_client_is_pinged_then_dropped(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(ping_interval=0.3, ping_timeout=0.3)
    lively = await LineClient.connect(port_of(server))
    await lively.register("lively")
    silent = await LineClient.connect(port_of(server))
    await silent.register("silent")
    await lively.drain()
    ping = await lively.event("PING", timeout=3)
    await lively.send(f"PONG {ping.args[0]}")
    data = await silent.closed(timeout=5)
    assert b"PING " in data and b"CLOSING ping timeout" in data
    offline = await lively.event("OFFLINE", timeout=3)
    assert offline.args[:3] == ("silent", "ping", "timeout:")
    assert (await lively.command("PING")).code == 200


async def test_stalled_reader_is_dropped_and_others_lose_nothing(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(send_buffer=64 * 1024, rate=0)
    port = port_of(server)
    # A reader that never reads, with a tiny receive buffer so the server's buffer fills up.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", port))
    stalled.sendall(b"NAME stalled\r\nJOIN #ward\r\n")
    sender = await LineClient.connect(port)
    await sender.register("sender")
    readers = [await LineClient.connect(port) for _ in range(3)]
    for number, reader in enumerate(readers):
        await reader.register(f"reader{number}")
        await reader.command("JOIN #ward")
    await sender.drain()
    for reader in readers:
        await reader.drain()

    count = 3000  # 9 MB: more than the kernel's socket buffers can hide
    text = "x" * 3000
    latencies = []

    async def read_all(reader: LineClient) -> list[int]:
        return [int((await reader.message()).text.split()[0]) for _ in range(count)]

    readings = [asyncio.ensure_future(read_all(reader)) for reader in readers]
    for number in range(count):
        started = time.perf_counter()
        await sender.send(f"TELL #ward {number} {text}")
        assert (await sender.reply()).code == 250
        latencies.append(time.perf_counter() - started)
    for got in await asyncio.gather(*readings):
        assert got == list(range(count))
    offline = await readers[0].event("OFFLINE")
    assert offline.args[0] == "stalled" and "send buffer full" in offline.rest(1)
    assert max(latencies) < 1.0  # the stalled reader never held anyone up
    stalled.close()


async def test_thousand_concurrent_clients(server: ChatServer) -> None:
    port = port_of(server)
    clients = await asyncio.gather(*(LineClient.connect(port) for _ in range(1000)))
    replies = await asyncio.gather(*(c.command(f"NAME user{i}") for i, c in enumerate(clients)))
    assert all(r.code == 201 for r in replies)
    assert server.hub.registry.count() == 1000
    await asyncio.gather(*(c.drain() for c in clients))
    accepted = await clients[0].command("SAY shift change in 10 minutes")
    assert accepted.fields[-1] == "999"
    messages = await asyncio.gather(*(c.message(timeout=20) for c in clients[1:]))
    assert {m.text for m in messages} == {"shift change in 10 minutes"}
    await asyncio.gather(*(c.close() for c in clients))
    for _ in range(100):
        if not server.hub.sessions:
            break
        await asyncio.sleep(0.05)
    assert not server.hub.sessions and not server.hub.registry.count()
