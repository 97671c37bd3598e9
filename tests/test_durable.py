"""Durable messaging over real sockets, on SQLite and PostgreSQL: accounts, LOGIN, offline delivery, SYNC,
HISTORY, persistence across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bleeper.protocol.incoming import Message
from bleeper.server import ChatServer
from bleeper.store.passwords import hash_password
from tests.conftest import Start, make_config, port_of
from tests.helpers import LineClient, login


async def test_login_and_wrong_passwords_get_the_same_answer(start: Start) -> None:
    server = await start()
    _, text = await login(server, "ALICE")
    assert text.startswith("alice logged in")
    client = await LineClient.connect(port_of(server))
    wrong = await client.command("LOGIN bob not-his-password")
    unknown = await client.command("LOGIN nobody1 whatever-password")
    assert wrong.code == unknown.code == 430 and wrong.text == unknown.text


async def test_failed_logins_are_throttled(start: Start) -> None:
    server = await start()
    client = await LineClient.connect(port_of(server))
    codes = [(await client.command("LOGIN carol wrong-guess")).code for _ in range(6)]
    assert codes[:5] == [430] * 5 and codes[5] == 429
    other = await LineClient.connect(port_of(server))  # same address: throttled too, even with the right password
    assert (await other.command("LOGIN carol carol-password")).code == 429


async def test_account_names_need_login_in_open_mode(start: Start) -> None:
    server = await start()
    guest = await LineClient.connect(port_of(server))
    taken = await guest.command("NAME Alice")
    assert taken.code == 409 and "account" in taken.text
    assert (await guest.command("NAME visitor")).code == 201


async def test_an_impostor_on_an_account_name_is_cut_off_when_the_owner_logs_in(start: Start, db: str) -> None:
    server = await start()
    assert server.store is not None
    await server.store.create_account("dave", "dave", hash_password("dave-password"), False, 1)  # not known yet
    impostor = await LineClient.connect(port_of(server))
    assert (await impostor.command("NAME dave")).code == 201
    owner, text = await login(server, "dave")
    assert text.startswith("dave logged in")
    rest = await impostor.closed()
    assert b"CLOSING the name dave belongs to an account that has logged in" in rest
    assert (await owner.command("WHO")).items == ("dave",)


async def test_pipelined_messages_are_answered_in_order_and_quit_waits_for_them(start: Start) -> None:
    server = await start(rate=0)
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    lines = [f"TELL bob n{number}" for number in range(100)]  # more than 64 waiting for storage at once
    await alice.send(*lines, "PING between", "TELL bob last", "QUIT")
    replies = [await alice.reply() for _ in range(103)]
    assert [r.code for r in replies] == [250] * 100 + [200, 250, 221]
    ids = [int(r.fields[0]) for r in replies[:100]] + [int(replies[101].fields[0])]
    assert ids == sorted(ids)
    got = [(await bob.message()).text for _ in range(101)]
    assert got == [f"n{number}" for number in range(100)] + ["last"]


async def test_required_auth_allows_only_login_first(start: Start) -> None:
    server = await start(auth="required")
    client = await LineClient.connect(port_of(server))
    assert (await client.command("NAME visitor")).code == 403
    assert (await client.command("WHO")).code == 401
    assert (await client.command("PING")).code == 200
    assert (await client.command("LOGIN bob bob-password")).code == 202
    assert (await client.command("WHO")).code == 212


async def test_every_device_of_an_account_receives_its_messages(start: Start) -> None:
    server = await start()
    phone, _ = await login(server, "alice")
    desk, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    await bob.command("TELL alice on both screens")
    first, second = await phone.message(), await desk.message()
    assert first.text == second.text == "on both screens" and first.seq == second.seq == 1
    assert (await bob.command("WHO")).items.count("alice") == 1


async def test_offline_messages_arrive_at_next_login_in_order_with_original_time(start: Start) -> None:
    server = await start()
    bob, _ = await login(server, "bob")
    await bob.command("JOIN #icu")
    carol, _ = await login(server, "carol")
    await carol.command("JOIN #icu")
    await carol.command("QUIT")
    sent = []
    for line in ("TELL carol first", "TELL #icu second", "TELL carol,alice third"):
        sent.append(await bob.command(line))
    assert all(reply.code == 250 for reply in sent)
    assert sent[0].fields[-1] == "0"  # nobody online to reach yet
    carol, text = await login(server, "carol")
    assert text == "carol logged in at 3; 3 waiting sent, 0 more"
    got = [m for m in carol.events if isinstance(m, Message)]
    assert [(m.seq, m.text) for m in got] == [(1, "first"), (2, "second"), (3, "third")]
    assert [m.time for m in got] == [reply.fields[1] for reply in sent]
    assert got[1].to == "#icu" and got[2].to == "@carol,alice"
    # delivered once: a later login has nothing waiting
    await carol.command("QUIT")
    _, text = await login(server, "carol")
    assert text == "carol logged in at 3; 0 waiting sent, 0 more"  # where a new device's numbering starts


async def test_a_long_backlog_is_replayed_in_parts(start: Start) -> None:
    server = await start(rate=0)
    bob, _ = await login(server, "bob")
    text = "x" * 3000
    for number in range(120):  # 360 kB: more than one replay
        await bob.command(f"TELL carol {number} {text}")
    carol, reply = await login(server, "carol")
    sent, more = int(reply.split("; ")[1].split()[0]), int(reply.split(", ")[1].split()[0])
    assert 0 < sent < 120 and sent + more == 120 and f"SYNC {sent} for the rest" in reply, reply
    assert (await carol.command(f"SYNC {sent}")).text == f"120 sent {more}; 0 more"
    got = [m.seq for m in carol.events if isinstance(m, Message)]
    assert got == list(range(1, 121))


async def test_sync_returns_exactly_what_was_missed(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    for number in range(5):
        await bob.command(f"TELL alice n{number}")
    seen = [await alice.message() for _ in range(5)]
    assert [m.seq for m in seen] == [1, 2, 3, 4, 5]
    await alice.send("SYNC 2")
    replayed = [await alice.message() for _ in range(3)]
    synced = await alice.reply()
    assert [m.text for m in replayed] == ["n2", "n3", "n4"]
    assert synced.code == 215 and synced.text == "5 sent 3; 0 more"
    assert (await alice.command("SYNC 5")).text == "5 sent 0; 0 more"
    assert (await alice.command("SYNC 9")).code == 400
    guest = await LineClient.connect(port_of(server))
    await guest.register("guest")
    assert (await guest.command("SYNC 0")).code == 403


async def test_history_of_groups_and_private_conversations(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    carol, _ = await login(server, "carol")
    await alice.command("JOIN #icu")
    await bob.command("JOIN #icu")
    for number in range(3):
        await alice.command(f"TELL #icu update {number}")
    await alice.command("TELL bob private note")
    recent = await bob.command("HISTORY #icu 2")
    assert recent.code == 216 and [item.split(" ", 4)[4] for item in recent.items] == ["update 1", "update 2"]
    assert (await bob.command("HISTORY alice")).items[0].endswith("alice @bob private note")
    assert (await carol.command("HISTORY #icu")).code == 403  # not a member
    assert (await carol.command("HISTORY alice")).items == ()  # nothing between carol and alice


async def test_messages_groups_and_inboxes_survive_a_restart(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    await alice.command("JOIN #night")
    await alice.command("JOIN #day")
    assert (await alice.command("LEAVE #day")).code == 204  # leaving is kept too
    bob, _ = await login(server, "bob")
    await bob.command("QUIT")
    accepted = await alice.command("TELL bob see you after the restart")
    await alice.command("TELL #night kept")
    await server.stop(grace=0.5)
    server = await start()
    bob, text = await login(server, "bob")
    assert text.endswith("1 waiting sent, 0 more")
    message = await bob.message()
    assert (message.id, message.text) == (int(accepted.fields[0]), "see you after the restart")
    assert (await bob.command("GROUPS")).items == ("#night members=0",)
    alice, _ = await login(server, "alice")
    assert (await alice.command("WHO #night")).items == ("alice",)
    assert (await alice.command("HISTORY #night")).items[0].endswith("kept")
    assert (await alice.command("WHO")).items == ("alice groups=#night", "bob")


async def test_a_database_it_cannot_use_stops_the_server_with_advice(tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 200)
    server = ChatServer(make_config(db=str(broken)))
    with pytest.raises(Exception, match="damaged or not a database"):
        await server.start()


async def test_sync_during_a_burst_counts_what_it_sent_and_repeats_nothing(start: Start) -> None:
    """Messages committed while a SYNC reads the inbox: ``215 <upto> sent <n>; <m> more`` stays consistent
    (never a negative count), and every number above the SYNC's arrives once, in order, live or replayed."""
    server = await start(rate=0)
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    received: list[int] = []
    for _ in range(5):
        since = len(received)
        await alice.send(*(f"TELL bob burst {n}" for n in range(20)))
        await bob.send(f"SYNC {since}")
        synced = await bob.reply()  # however much of the burst was committed before the SYNC read it
        upto, sent, more = int(synced.fields[0]), int(synced.fields[2].rstrip(";")), int(synced.fields[3])
        assert synced.code == 215 and more >= 0 and sent == upto - since, synced
        for _ in range(20):
            assert (await alice.reply()).code == 250
        while len(received) < since + 20:
            received.append((await bob.message()).seq)
    await bob.drain()
    assert received == list(range(1, 101)) and not [m for m in bob.events if isinstance(m, Message)]


async def test_a_live_message_during_an_unfinished_backlog_does_not_mark_the_backlog_delivered(start: Start) -> None:
    """LOGIN replays about 256 KiB and says how many more wait. A live message that arrives before the client
    has fetched the rest must not make the server think the rest was delivered: the next LOGIN starts where
    the first replay stopped."""
    server = await start(rate=0)
    bob, _ = await login(server, "bob")
    text = "x" * 3000
    for number in range(120):
        await bob.command(f"TELL carol {number} {text}")
    carol, reply = await login(server, "carol")
    sent = int(reply.split("; ")[1].split()[0])
    assert 0 < sent < 120
    await bob.command("TELL carol live while the rest waits")
    while (await carol.message()).seq != 121:  # delivered live, ahead of the rest
        pass
    await carol.command("QUIT")  # without asking for the rest
    await server.stop(grace=0.5)  # the delivered mark is written
    server = await start(rate=0)
    carol, reply = await login(server, "carol")
    waiting = [m.seq for m in carol.events if isinstance(m, Message)]
    assert waiting == list(range(sent + 1, sent + 1 + len(waiting))) and 121 - sent - len(waiting) >= 0, reply
    assert reply.endswith(f"{len(waiting)} waiting sent, {121 - sent - len(waiting)} more") or "SYNC" in reply
