"""The client library with accounts: login, catching up after a reconnect, sending exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bleeper.client import ChatClient, Connected, LoginFailed, Message
from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import LineClient, create_accounts, free_port, server_process
from tests.services import location


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with location(request.param, tmp_path) as where:
        yield await create_accounts(where, "alice", "bob")


async def messages(client: ChatClient, count: int) -> list[Message]:
    found: list[Message] = []
    while len(found) < count:
        event = await client.next_event(10)
        if isinstance(event, Message):
            found.append(event)
    return found


async def test_login_and_wrong_password(db: str) -> None:
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        client = ChatClient("127.0.0.1", port_of(server))
        await client.connect()
        with pytest.raises(LoginFailed):
            await client.login("alice", "wrong password")
        await client.login("Alice", "alice-password")
        assert client.name == "alice" and client.logged_in
        await client.quit()
    finally:
        await server.stop(grace=0.5)


async def test_after_a_server_restart_the_client_gets_every_missed_message_once(db: str) -> None:
    port = free_port()
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    alice = ChatClient("127.0.0.1", port, backoff=(0.05, 0.3))
    await alice.connect()
    await alice.login("alice", "alice-password")
    bob = ChatClient("127.0.0.1", port, reconnect=False)
    await bob.connect()
    await bob.login("bob", "bob-password")
    await bob.tell("alice", "before")
    assert [m.text for m in await messages(alice, 1)] == ["before"]
    await bob.quit()
    await server.stop(grace=0.5)

    # While alice's client is away, bob (on the new server) writes to her.
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    try:
        writer = await LineClient.connect(port)
        assert (await writer.command("LOGIN bob bob-password")).code == 202
        for number in range(3):
            assert (await writer.command(f"TELL alice while away {number}")).code == 250
        seen: list[object] = []
        while sum(isinstance(e, Message) for e in seen) < 3 or not any(isinstance(e, Connected) for e in seen):
            seen.append(await alice.next_event(10))
        got = [e for e in seen if isinstance(e, Message)]
        assert [m.text for m in got] == ["while away 0", "while away 1", "while away 2"]
        assert [m.seq for m in got] == [2, 3, 4]
        await asyncio.sleep(0.3)  # nothing else arrives: no duplicates
        assert not [e for e in _drain(alice) if isinstance(e, Message)]
        # The client may be back before bob has written all three: Connected counts those that came with the
        # catch-up (LOGIN and SYNC), exactly the messages that arrived before it.
        (back,) = [e for e in seen if isinstance(e, Connected)]
        before = seen.index(back)
        assert back == Connected(alice.server, "alice", True, sum(isinstance(e, Message) for e in seen[:before]))
        await alice.quit()
    finally:
        await server.stop(grace=0.5)


def _drain(client: ChatClient) -> list[object]:
    items = []
    while not client._events.empty():
        items.append(client._events.get_nowait())
    return items


async def test_a_resent_message_with_the_same_id_is_stored_once(db: str) -> None:
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        bob = await LineClient.connect(port_of(server))
        await bob.command("LOGIN bob bob-password")
        first = await LineClient.connect(port_of(server))
        await first.command("LOGIN alice alice-password")
        sent = await first.command("ID retry-7 TELL bob only once")
        await first.close()  # the connection drops; the client is not sure the message went through
        again = await LineClient.connect(port_of(server))
        await again.command("LOGIN alice alice-password")
        resent = await again.command("ID retry-7 TELL bob only once")
        assert resent.code == 250 and resent.fields[0] == sent.fields[0] and "already sent" in resent.text
        assert (await bob.message()).text == "only once"
        await bob.command("PING")
        assert not [e for e in bob.events if isinstance(e, Message)]
        assert len((await bob.command("HISTORY alice")).items) == 1
    finally:
        await server.stop(grace=0.5)


async def test_the_library_resends_after_a_reconnect(db: str) -> None:
    port = free_port()
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    alice = ChatClient("127.0.0.1", port, backoff=(0.05, 0.3))
    await alice.connect()
    await alice.login("alice", "alice-password")
    await server.stop(grace=0.5)
    sending = asyncio.ensure_future(alice.tell("bob", "sent while the server was down"))
    await asyncio.sleep(0.2)
    assert not sending.done()
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    try:
        sent = await asyncio.wait_for(sending, 10)
        assert sent.id >= 1
        bob = await LineClient.connect(port)
        assert (await bob.command("LOGIN bob bob-password")).text.endswith("1 waiting sent, 0 more")
        assert (await bob.message()).text == "sent while the server was down"
        await alice.quit()
    finally:
        await server.stop(grace=0.5)


async def test_a_gap_in_message_numbers_is_filled_with_sync(db: str) -> None:
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        bob = await LineClient.connect(port_of(server))
        await bob.command("LOGIN bob bob-password")
        alice = ChatClient("127.0.0.1", port_of(server))
        await alice.connect()
        await alice.login("alice", "alice-password")
        for number in range(3):
            await bob.command(f"TELL alice n{number}")
        assert [m.seq for m in await messages(alice, 3)] == [1, 2, 3]
        alice.last_seq = 1  # as if messages 2 and 3 had been lost on the way
        await bob.command("TELL alice n3")
        refilled = await messages(alice, 3)  # 4 arrives, the gap is noticed, SYNC brings 2 and 3 back
        assert sorted(m.seq for m in refilled) == [2, 3, 4] and alice.last_seq == 4
        await alice.quit()
    finally:
        await server.stop(grace=0.5)


async def test_a_gap_whose_messages_are_gone_is_skipped_and_numbering_carries_on(tmp_path: Path) -> None:
    """A gap seen while connected is filled with SYNC; when the server answers 410 (removed before they
    were delivered) the client skips the gone numbers instead of waiting for them for ever."""
    db = await create_accounts(str(tmp_path / "gap.db"), "alice", "bob")
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        bob = await LineClient.connect(port_of(server))
        await bob.command("LOGIN bob bob-password")
        alice = ChatClient("127.0.0.1", port_of(server))
        await alice.connect()
        await alice.login("alice", "alice-password")
        for number in range(3):
            await bob.command(f"TELL alice n{number}")
        assert [m.seq for m in await messages(alice, 3)] == [1, 2, 3]
        alice.last_seq = 1  # as if messages 2 and 3 had been lost on the way...
        with sqlite3.connect(db) as raw:  # ...and removed from the inbox since
            raw.execute("DELETE FROM inbox WHERE account_key = 'alice' AND seq IN (2, 3)")
        await bob.command("TELL alice n3")
        assert [m.seq for m in await messages(alice, 1)] == [4]
        for _ in range(50):  # the gap is noticed, SYNC answers 410, the gone numbers are skipped
            if alice.last_seq == 4:
                break
            await asyncio.sleep(0.05)
        assert alice.last_seq == 4
        await bob.command("TELL alice n4")
        assert [m.seq for m in await messages(alice, 1)] == [5] and alice.last_seq == 5
        await alice.quit()
    finally:
        await server.stop(grace=0.5)


async def test_a_repeat_after_a_crash_is_dropped_and_nothing_missed_is_said_only_when_true(tmp_path: Path) -> None:
    """SIGKILL within a second of a delivery: the server's delivered mark was not yet written, so the next
    LOGIN sends the message again with the same number. The library hands it on once."""
    db = await create_accounts(str(tmp_path / "crash.db"), "alice", "bob")
    port = free_port()
    with server_process("--db", db, port=port) as (proc, _):
        alice = ChatClient("127.0.0.1", port, backoff=(0.05, 0.3))
        await alice.connect()
        await alice.login("alice", "alice-password")
        bob = await LineClient.connect(port)
        assert (await bob.command("LOGIN bob bob-password")).code == 202
        assert (await bob.command("TELL alice bed 3 bloods back")).code == 250
        assert [m.seq for m in await messages(alice, 1)] == [1]
        proc.kill()  # well within the second before the mark is written
        proc.wait()
    with server_process("--db", db, port=port):
        back = await next_connected(alice)
        assert back.caught_up == 0  # the repeat is not news: nothing was missed
        assert alice.repeats == 1  # the server did send it again, and the library dropped it
        assert not [e for e in _drain(alice) if isinstance(e, Message)]
        await alice.quit()


async def next_connected(client: ChatClient) -> Connected:
    while True:
        event = await client.next_event(15)
        if isinstance(event, Connected) and event.again:
            return event


async def test_a_new_device_starts_at_the_accounts_number_and_a_quiet_reconnect_missed_nothing(db: str) -> None:
    """Messages delivered to another device before this one signed in are not news to it after a reconnect."""
    port = free_port()
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    phone = await LineClient.connect(port)
    assert (await phone.command("LOGIN alice alice-password")).code == 202
    bob = await LineClient.connect(port)
    assert (await bob.command("LOGIN bob bob-password")).code == 202
    for number in range(3):
        await bob.command(f"TELL alice seen on the phone {number}")
    await phone.drain()
    desk = ChatClient("127.0.0.1", port, backoff=(0.05, 0.3))
    await desk.connect()
    reply = await desk.login("alice", "alice-password")
    assert reply.text.startswith("alice logged in at 3; 0 waiting sent") and desk.last_seq == 3
    await server.stop(grace=0.5)
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    try:
        back = await next_connected(desk)
        assert back.caught_up == 0  # the three the phone had are not shown again as missed
        assert not [e for e in _drain(desk) if isinstance(e, Message)]
        await desk.quit()
    finally:
        await server.stop(grace=0.5)


async def test_a_reconnect_that_finds_messages_gone_says_so_and_carries_on(tmp_path: Path) -> None:
    """SYNC answers 410 when messages were removed before they could be delivered. The client used to take
    that for a failed reconnect and try again for ever; it now skips the gone range and says so."""
    db = await create_accounts(str(tmp_path / "gone.db"), "alice", "bob")
    port = free_port()
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    alice = ChatClient("127.0.0.1", port, backoff=(1.0, 1.0))  # a second away: time to write, and to remove
    await alice.connect()
    await alice.login("alice", "alice-password")
    await server.stop(grace=0.5)
    server = ChatServer(make_config(db=db, port=port))
    await server.start()
    try:
        bob = await LineClient.connect(port)
        assert (await bob.command("LOGIN bob bob-password")).code == 202
        for number in range(3):
            assert (await bob.command(f"TELL alice n{number}")).code == 250
        with sqlite3.connect(db) as raw:  # as if removed before alice was back: messages 1 and 2 are gone
            raw.execute("DELETE FROM inbox WHERE account_key = 'alice' AND seq < 3")
        seen = [await alice.next_event(10)]
        while not isinstance(seen[-1], Connected) or not seen[-1].again:
            seen.append(await alice.next_event(10))
        back = seen[-1]
        assert back.gone == "3 gap: messages 1 to 2 are gone" and back.caught_up == 1
        assert [m.text for m in seen if isinstance(m, Message)] == ["n2"]
        assert alice.last_seq == 3 and alice.state == "connected"
        await alice.quit()
    finally:
        await server.stop(grace=0.5)


class Relay:
    """The network between a client and the server: forwards both ways, can cut every connection, and can
    hold back what the server says on new connections (a slow link) while recording what the client says."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.holding = False
        self.released = asyncio.Event()
        self.hang_up_after_greeting = 0  # so many new connections close once the server has greeted
        self.hang_up_on: bytes | None = None  # the next connection closes once the server has said this
        self.from_client: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [client_writer, server_writer]
        self.connections += 1
        held = self.holding

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                self.from_client.append(data)
                server_writer.write(data)
            server_writer.close()

        async def downstream() -> None:
            if held:
                await self.released.wait()
            if self.hang_up_after_greeting > 0:  # a server that dies as the client signs in
                self.hang_up_after_greeting -= 1
                client_writer.write(await server_reader.read(65536))
                client_writer.close()
                server_writer.close()
                return
            while data := await server_reader.read(65536):
                client_writer.write(data)
                if self.hang_up_on is not None and self.hang_up_on in data:
                    self.hang_up_on = None
                    break
            client_writer.close()
            server_writer.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(upstream(), downstream())

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


@contextlib.asynccontextmanager
async def relayed(
    tmp_path: Path, backoff: tuple[float, float] = (0.05, 0.2), **settings: object
) -> AsyncIterator[tuple[ChatServer, Relay, ChatClient]]:
    """A server with accounts alice and bob, a relay in front of it, and alice logged in through the relay."""
    db = await create_accounts(str(tmp_path / "bleeper.db"), "alice", "bob")
    server = ChatServer(make_config(db=db, **settings))
    await server.start()
    relay = Relay(port_of(server))
    try:
        alice = ChatClient("127.0.0.1", await relay.start(), backoff=backoff)
        await alice.connect()
        await alice.login("alice", "alice-password")
        yield server, relay, alice
    finally:
        await relay.close()
        await server.stop(grace=0.5)


async def test_a_command_made_while_reconnecting_waits_for_the_login_on_the_new_connection(tmp_path: Path) -> None:
    """A message sent while the library reconnects must not go out on the new connection ahead of LOGIN (the
    server would refuse it, not being told who it is from): it waits, and is sent once signed in."""
    async with relayed(tmp_path, backoff=(0.05, 1.0)) as (server, relay, alice):
        relay.holding = True
        relay.cut()  # alice's library reconnects, and its new connection's greeting is held up
        for _ in range(100):
            if relay.connections == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the library waits for the new connection's greeting
        relay.from_client.clear()
        sending = asyncio.ensure_future(alice.tell("bob", "while reconnecting"))
        await asyncio.sleep(0.5)
        assert b"TELL" not in b"".join(relay.from_client), "sent before the new connection was signed in"
        relay.released.set()
        sent = await asyncio.wait_for(sending, 10)
        assert sent.reached == 0  # bob is not online: stored for him
        bob = await LineClient.connect(port_of(server))
        assert (await bob.command("LOGIN bob bob-password")).text.endswith("1 waiting sent, 0 more")
        assert (await bob.message()).text == "while reconnecting"
        await alice.quit()


async def test_the_reconnect_loop_carries_on_past_connections_that_close_as_it_signs_in(tmp_path: Path) -> None:
    """A node that greets and dies (a cluster node killed under a reconnecting crowd): LOGIN finds the new
    connection closed, or closing. The loop must treat that as one more failed try, not stop."""
    async with relayed(tmp_path) as (_, relay, alice):
        relay.hang_up_after_greeting = 3
        relay.cut()
        back = await next_connected(alice)
        assert back.name == "alice" and relay.connections == 5 and alice.state == "connected"
        assert (await alice.tell("bob", "back")).id >= 1
        await alice.quit()


async def test_the_reconnect_loop_carries_on_when_its_connection_closes_between_two_of_its_commands(
    tmp_path: Path,
) -> None:
    """Rejoining many groups, the library is told to slow down and pauses; the connection closes meanwhile, so
    its next JOIN finds no connection (NotConnected, not a closed reply): one more failed try, not the end."""
    async with relayed(tmp_path, rate=2.0, burst=4) as (_, relay, alice):
        for group in ("#a", "#b", "#c", "#d"):
            await asyncio.sleep(0.6)  # within the rate
            await alice.join(group)
        await asyncio.sleep(2.5)  # the bucket full again
        relay.hang_up_on = b"slow down"
        relay.cut()
        back = await next_connected(alice)
        assert relay.hang_up_on is None, "the connection was closed after a slow-down, as the test meant"
        assert back.name == "alice" and relay.connections >= 3 and alice.groups == {"#a", "#b", "#c", "#d"}
        await alice.quit()
