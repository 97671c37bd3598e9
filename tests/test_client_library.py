"""The async client library against a real server: every helper, errors, reconnects, quit."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bleeper.client import (
    ChatClient,
    CommandError,
    Connected,
    ConnectionClosed,
    Disconnected,
    GroupInfo,
    InvalidName,
    Message,
    NameTaken,
    NotConnected,
    Person,
    RateLimited,
)
from bleeper.client.events import Event
from bleeper.client.input import EVERYONE, interpret
from bleeper.client.library import parse_servers
from bleeper.client.plain import perform
from bleeper.client.render import event_line
from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import free_port


async def named(server: ChatServer, name: str, **kwargs: object) -> ChatClient:
    client = ChatClient("127.0.0.1", port_of(server), **kwargs)  # type: ignore[arg-type]
    await client.connect()
    await client.register(name)
    return client


async def next_of(client: ChatClient, kind: type, timeout: float = 5.0) -> object:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, kind):
            return event


async def test_connect_greets_and_register_takes_the_name(server: ChatServer) -> None:
    client = ChatClient("127.0.0.1", port_of(server))
    greeting = await client.connect()
    assert greeting.code == 220 and client.state == "connected"
    reply = await client.register("alice")
    assert reply.code == 201 and client.name == "alice"
    await client.quit()


async def test_name_taken_carries_the_suggestion_and_invalid_names_are_typed(server: ChatServer) -> None:
    alice = await named(server, "alice")
    other = ChatClient("127.0.0.1", port_of(server))
    await other.connect()
    with pytest.raises(NameTaken) as taken:
        await other.register("ALICE")
    assert taken.value.suggestion == "ALICE2" and taken.value.code == 409
    with pytest.raises(InvalidName):
        await other.register("no!")
    await other.register(taken.value.suggestion)
    assert other.name == "ALICE2"
    await alice.quit()
    await other.quit()


async def test_every_helper(server: ChatServer) -> None:
    alice = await named(server, "alice")
    bob = await named(server, "bob")
    assert (await alice.join("#ICU")).code == 203 and alice.groups == {"#ICU"}
    await bob.join("#icu")

    sent = await alice.say("morning all")
    assert sent.reached == 1 and sent.id >= 1
    message = await next_of(bob, Message)
    assert isinstance(message, Message) and (message.id, message.time, message.text) == (
        sent.id,
        sent.time,
        "morning all",
    )

    await alice.tell("bob", "psst")
    assert (await next_of(bob, Message)).to == "@bob"  # type: ignore[attr-defined]
    await alice.tell(["bob", "alice"], "both of us")
    assert (await next_of(bob, Message)).to == "@bob,alice"  # type: ignore[attr-defined]
    await alice.tell("#icu", "to the group")
    assert (await next_of(bob, Message)).group == "#ICU"  # type: ignore[attr-defined]

    assert await alice.who() == [Person("alice", ("#ICU",)), Person("bob", ("#ICU",))]
    await bob.command("STATUS busy on the ward round")
    (_, busy_bob) = await alice.who()
    assert (busy_bob.status, busy_bob.note, busy_bob.groups) == ("busy", "on the ward round", ("#ICU",))
    assert [p.name for p in await alice.who("#icu")] == ["alice", "bob"]
    assert await alice.list_groups() == [GroupInfo("#ICU", 2)]
    assert any(line.startswith("TELL") for line in await alice.help())
    assert (await alice.help("say"))[0] == "SAY <text>"
    assert (await alice.ping("tok")).text == "PONG tok"
    assert [line.split(" ", 4)[4] for line in await bob.history("#icu")] == ["to the group"]
    await bob.leave("#icu")
    assert bob.groups == set()
    with pytest.raises(CommandError) as missing:
        await alice.tell("nobody1", "hello?")
    assert missing.value.code == 404
    await alice.quit()
    await bob.quit()


async def test_events_include_presence_and_groups(server: ChatServer) -> None:
    alice = await named(server, "alice")
    await alice.join("#icu")
    bob = await named(server, "bob")
    assert await next_of(alice, Event) == Event("ONLINE", ("bob",))
    await bob.join("#icu")
    assert await next_of(alice, Event) == Event("JOIN", ("#icu", "bob"))
    await bob.quit("home time")
    assert await next_of(alice, Event) == Event("OFFLINE", ("bob", "quit:", "home", "time"))
    await alice.quit()


async def test_a_rename_is_shown_to_the_others(server: ChatServer) -> None:
    alice = await named(server, "alice")
    bob = await named(server, "bob")
    assert await next_of(alice, Event) == Event("ONLINE", ("bob",))
    assert (await bob.command("NAME robert")).code == 201
    renamed = await next_of(alice, Event)
    assert renamed == Event("RENAMED", ("bob", "robert"))
    line = event_line(renamed, "alice")
    assert line is not None and line.text == "bob is now robert"
    await alice.quit()
    await bob.quit()


async def test_concurrent_commands_get_their_own_replies(server: ChatServer) -> None:
    client = await named(server, "busy")
    replies = await asyncio.gather(*(client.ping(f"t{i}") for i in range(50)))  # within the default burst
    assert [r.text for r in replies] == [f"PONG t{i}" for i in range(50)]
    await client.quit()


async def test_quit_returns_221_after_the_server_closes_and_ends_events(server: ChatServer) -> None:
    client = await named(server, "leaver")
    reply = await client.quit("done")
    assert reply.code == 221 and client.state == "closed"
    seen = await asyncio.wait_for(_collect(client), 2)  # the iterator ends once the client is closed
    assert seen[0] == Connected(client.server, None, again=False)
    with pytest.raises(NotConnected):
        await client.say("too late")
    await asyncio.sleep(0.05)
    assert not server.hub.registry.count()


async def _collect(client: ChatClient) -> list[object]:
    return [event async for event in client.events()]


async def test_rate_limited_is_typed(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(rate=1, burst=1)
    client = ChatClient("127.0.0.1", port_of(server))
    await client.connect()
    await client.ping()
    with pytest.raises(RateLimited):
        await client.ping()
    client._shutdown("test over")


async def test_connection_refused_says_so() -> None:
    client = ChatClient("127.0.0.1", free_port(), reconnect=False)
    with pytest.raises(ConnectionClosed, match="connection refused"):
        await client.connect()


async def test_answers_server_pings_and_stays_connected(start_server) -> None:  # type: ignore[no-untyped-def]
    server: ChatServer = await start_server(ping_interval=0.2, ping_timeout=0.3)
    client = await named(server, "steady")
    await next_of(client, Event)  # the PING
    await asyncio.sleep(1.0)
    assert server.hub.registry.online("steady") and client.state == "connected"
    await client.quit()


async def test_reconnects_after_a_server_restart_with_its_name_and_groups() -> None:
    port = free_port()
    first = ChatServer(make_config(port=port))
    await first.start()
    client = ChatClient("127.0.0.1", port, backoff=(0.05, 0.5))
    await client.connect()
    await client.register("alice")
    await client.join("#icu")
    await first.stop(grace=1.0)
    lost = await next_of(client, Disconnected)
    assert isinstance(lost, Disconnected) and lost.retrying and client.state == "reconnecting"

    second = ChatServer(make_config(port=port))
    await second.start()
    try:
        back = await next_of(client, Connected, timeout=10)
        assert back == Connected(client.server, "alice", again=True)
        assert second.hub.registry.online("alice")
        assert [p.groups for p in await client.who()] == [("#icu",)]
        await client.quit()
    finally:
        await second.stop(grace=1.0)


async def test_groups_joined_by_typed_commands_are_rejoined_by_everyone_after_a_restart() -> None:
    """The TUI and plain mode send what the user types (``/join #icu``) as a raw command: the library still
    rejoins those groups after a reconnect, so a group whose members all reconnect carries on."""
    port = free_port()
    first = ChatServer(make_config(port=port))
    await first.start()
    clients = []
    for name in ("ann", "ben"):
        client = ChatClient("127.0.0.1", port, backoff=(0.05, 0.5))
        await client.connect()
        await client.register(name)
        clients.append(client)
    ann, ben = clients
    shown: list[str] = []
    await perform(ann, interpret("/join #icu", EVERYONE), EVERYONE, shown.append)
    assert (await ben.command("JOIN #ICU")).code == 203
    assert ann.groups == {"#icu"} and ben.groups == {"#icu"}
    await first.stop(grace=1.0)
    second = ChatServer(make_config(port=port))
    await second.start()
    try:
        for client in clients:
            back = await next_of(client, Connected, timeout=10)
            while isinstance(back, Connected) and not back.again:  # the first connection's
                back = await next_of(client, Connected, timeout=10)
            assert isinstance(back, Connected) and back.lost_groups == ()
            assert back.caught_up is None  # a guest's messages are not kept while it is away
        await perform(ann, interpret("hello again", "#icu"), "#icu", shown.append)
        got = await next_of(ben, Message)
        assert isinstance(got, Message) and (got.to, got.text) == ("#icu", "hello again")
        await ben.tell("#icu", "and back")
        assert (await next_of(ann, Message)).text == "and back"  # type: ignore[attr-defined]
        await perform(ann, interpret("/leave #icu", "#icu"), "#icu", shown.append)
        assert ann.groups == set()  # left by a typed command: not rejoined next time
        assert (await ben.command("part #icu")).code == 204 and ben.groups == set()  # any alias, any case
        for client in clients:
            await client.quit()
    finally:
        await second.stop(grace=1.0)


async def test_groups_refused_for_a_moment_by_the_rate_limit_are_rejoined_not_lost() -> None:
    """Rejoining many groups at once meets the server's rate limit ("slow down"): the client waits it out
    instead of dropping those groups for good."""
    port = free_port()
    limits = {"port": port, "rate": 2.0, "burst": 3}
    first = ChatServer(make_config(**limits))
    await first.start()
    client = ChatClient("127.0.0.1", port, backoff=(0.05, 0.5))
    await client.connect()
    await client.register("ann")
    wards = ["#ward1", "#ward2", "#ward3", "#ward4"]
    for ward in wards:
        assert (await client.join(ward)).code == 203
        await asyncio.sleep(0.6)  # within the limit now; the reconnect sends them all at once
    await first.stop(grace=1.0)
    second = ChatServer(make_config(**limits))
    await second.start()
    try:
        back = await next_of(client, Connected, timeout=20)
        while isinstance(back, Connected) and not back.again:
            back = await next_of(client, Connected, timeout=20)
        assert isinstance(back, Connected) and back.lost_groups == ()
        assert client.groups == set(wards)
        await asyncio.sleep(1.5)
        assert (await client.command("WHO #ward4")).items == ("ann",)
        await client.quit()
    finally:
        await second.stop(grace=1.0)


def test_a_reconnect_says_what_is_known_of_messages_sent_meanwhile() -> None:
    said = {
        Connected("h:1", "ann", True): "reconnected to h:1 as ann. Messages sent while you were away are not kept "
        "for names without an account: log in with an account (bleeper chat --login) to receive them",
        Connected("h:1", "ann", True, 0): "reconnected to h:1; nothing was missed",
        Connected("h:1", "ann", True, 3): "reconnected to h:1; 3 message(s) sent while you were away are shown above",
        Connected("h:1", "ann", True, 1, "5 gap: messages 2 to 4 are gone"): "reconnected to h:1; some messages "
        "sent while you were away are no longer kept (5 gap: messages 2 to 4 are gone)",
        Connected("h:1", "ann", True, 0, None, ("#icu",)): "reconnected to h:1; nothing was missed; could not "
        "rejoin #icu: /join to try again",
    }  # fmt: skip
    for event, text in said.items():
        line = event_line(event, "ann")
        assert line is not None and line.text == text
    assert "nothing was missed" not in str([event_line(e, "ann") for e in said if e.caught_up != 0])


@given(st.lists(st.tuples(st.sampled_from(["127.0.0.1", "node-1.example", "::1", "fe80::1", "bleeper"]),
                          st.integers(1, 65535)), min_size=1, max_size=5))  # fmt: skip
def test_server_lists_read_back_what_was_written(servers: list[tuple[str, int]]) -> None:
    written = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in servers)
    assert parse_servers(written) == servers
    bare = ", ".join(f"[{host}]" if ":" in host else host for host, _ in servers)  # no ports: the default
    assert parse_servers(bare, 9) == [(host, 9) for host, _ in servers]


@pytest.mark.parametrize("text", ["", ",", "host:port", "a:0", "[::1", "a b:1"])
def test_a_bad_server_list_says_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError):
        parse_servers(text)


async def test_a_client_with_several_servers_connects_to_the_first_that_answers() -> None:
    server = ChatServer(make_config())
    await server.start()
    try:
        client = ChatClient(servers=[("127.0.0.1", free_port()), ("127.0.0.1", port_of(server))], timeout=2)
        await client.connect()
        assert client.server == f"127.0.0.1:{port_of(server)}"
        await client.register("multi")
        await client.quit()
        unreachable = ChatClient(servers=[("127.0.0.1", free_port()), ("127.0.0.1", free_port())], timeout=2)
        with pytest.raises(ConnectionClosed, match="no server could be reached"):
            await unreachable.connect()
    finally:
        await server.stop()


def test_the_answer_to_a_message_stored_before_is_read_too() -> None:
    """A message resent with its ID after a lost answer (found by the cluster's chaos test) is answered
    "reached 0; already sent ...": the library must read it as sent, not fail."""
    from bleeper.client.library import _sent
    from bleeper.protocol.incoming import Reply

    text = "41 2026-11-30T01:46:15.123Z reached 0; already sent (same ID), not sent again"
    sent = _sent(Reply(250, text))
    assert (sent.id, sent.reached) == (41, 0)
    assert _sent(Reply(250, "42 2026-11-30T01:46:15.123Z reached 3; urgent: alerts every 120 s")).reached == 3
