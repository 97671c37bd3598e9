"""Every command and every error reply, over real sockets against an in-process server."""

from __future__ import annotations

import re

import pytest

from bleeper.protocol.incoming import Event, Message
from bleeper.server import ChatServer
from tests.conftest import port_of
from tests.helpers import LineClient

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


async def people(server: ChatServer, *names: str) -> list[LineClient]:
    clients = []
    for name in names:
        client = await LineClient.connect(port_of(server))
        await client.register(name)
        clients.append(client)
    for client in clients:  # forget the ONLINE events of people who came after
        await client.drain()
    return clients


async def test_greeting_tells_a_person_what_to_type(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server), greet=False)
    greeting = await client.reply()
    assert greeting.code == 220 and "HELP" in greeting.text and "NAME" in greeting.text


async def test_help_lists_every_command_and_explains_one(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    listing = await client.command("HELP")
    assert listing.code == 214
    words = {item.split()[0] for item in listing.items}
    assert words == {
        "HELP",
        "NAME",
        "SAY",
        "TELL",
        "JOIN",
        "LEAVE",
        "WHO",
        "GROUPS",
        "PING",
        "PONG",
        "QUIT",
        "LOGIN",
        "SYNC",
        "HISTORY",
        "STATUS",
        "URGENT",
        "ACK",
        "READ",
        "TRACE",
        "ONCALL",
        "BACKUP",
        "RECALL",
        "PUSH",
        "HEALTH",
        "KICK",
        "ANNOUNCE",
    }
    detail = await client.command("help msg")
    assert detail.code == 214 and detail.items[0] == "TELL <to> <text>" and "also: MSG, PM" in detail.items
    unknown = await client.command("HELP FROB")
    assert unknown.code == 400 and "HELP" in unknown.text


async def test_name_accepted_and_others_told(server: ChatServer) -> None:
    (alice,) = await people(server, "alice")
    bob = await LineClient.connect(port_of(server))
    accepted = await bob.command("NAME bob")
    assert accepted.code == 201 and accepted.fields[0] == "bob"
    assert await alice.event("ONLINE") == Event("ONLINE", ("bob",))


@pytest.mark.parametrize("name", ["a b", "x" * 33, "bob!", "#icu"])
async def test_invalid_name_is_422(server: ChatServer, name: str) -> None:
    client = await LineClient.connect(port_of(server))
    reply = await client.command(f"NAME {name}")
    assert reply.code in (422, 400), reply  # "a b" is two words: a syntax error


async def test_reserved_name_is_422(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    reply = await client.command("NAME Server")
    assert reply.code == 422 and "reserved" in reply.text


async def test_taken_name_is_409_with_a_free_suggestion(server: ChatServer) -> None:
    _holder = await people(server, "Dr.Smith")
    client = await LineClient.connect(port_of(server))
    for variant in ("Dr.Smith", "dr.smith", "ＤＲ.ＳＭＩＴＨ"):
        reply = await client.command(f"NAME {variant}")
        assert reply.code == 409, reply
    suggestion = reply.fields[0]
    assert (await client.command(f"NAME {suggestion}")).code == 201


async def test_a_guest_renames_and_the_others_hear_of_it(server: ChatServer) -> None:
    alice, bob = await people(server, "alice", "bob")
    assert (await alice.command("NAME alice")).text == "alice you are already alice"
    assert (await alice.command("NAME alicia")).text == "alicia you are now alicia (were alice)"
    renamed = await bob.event("RENAMED")
    assert renamed.args == ("alice", "alicia")  # type: ignore[union-attr]
    assert "alicia" in (await bob.command("WHO")).items


@pytest.mark.parametrize("line", ["SAY hi", "TELL bob hi", "JOIN #icu", "LEAVE #icu", "WHO", "GROUPS"])
async def test_commands_need_a_name_first(server: ChatServer, line: str) -> None:
    client = await LineClient.connect(port_of(server))
    reply = await client.command(line)
    assert reply.code == 401 and "NAME" in reply.text


async def test_say_reaches_everyone_else_once(server: ChatServer) -> None:
    alice, bob, carol = await people(server, "alice", "bob", "carol")
    accepted = await alice.command("SAY good morning, all")
    assert accepted.code == 250
    msg_id, stamp, word, count = accepted.fields
    assert re.fullmatch(STAMP, stamp) and word == "reached" and count == "2"
    for other in (bob, carol):
        message = await other.message()
        assert message == Message(1, int(msg_id), stamp, "alice", "*", "good morning, all")
    assert (await alice.command("PING")).code == 200
    assert not [e for e in alice.events if isinstance(e, Message)]


async def test_private_message_reaches_only_its_recipient(server: ChatServer) -> None:
    alice, bob, carol = await people(server, "alice", "bob", "carol")
    accepted = await alice.command("TELL BOB bed 4 needs you")
    assert accepted.code == 250 and accepted.fields[-1] == "1"
    message = await bob.message()
    assert (message.sender, message.to, message.text) == ("alice", "@bob", "bed 4 needs you")
    await carol.command("PING")
    assert not carol.events


async def test_sub_group_message_lists_all_recipients(server: ChatServer) -> None:
    alice, bob, carol, dave = await people(server, "alice", "bob", "carol", "dave")
    accepted = await alice.command("TELL bob,carol,Bob handover at 8")
    assert accepted.fields[-1] == "2"
    for other in (bob, carol):
        message = await other.message()
        assert message.to == "@bob,carol" and message.recipients == ("bob", "carol")
    await dave.command("PING")
    assert not dave.events


async def test_message_to_unknown_user_is_404_and_nothing_is_sent(server: ChatServer) -> None:
    alice, bob = await people(server, "alice", "bob")
    reply = await alice.command("TELL bob,nobody1,ghost hello")
    assert reply.code == 404 and "nobody1" in reply.text and "ghost" in reply.text
    await bob.command("PING")
    assert not bob.events


async def test_groups_join_message_leave(server: ChatServer) -> None:
    alice, bob, carol = await people(server, "alice", "bob", "carol")
    joined = await alice.command("JOIN #ICU")
    assert joined.code == 203 and joined.fields[0] == "#ICU"
    assert (await bob.command("JOIN #icu")).code == 203
    assert await alice.event("JOIN") == Event("JOIN", ("#ICU", "bob"))
    again = await bob.command("JOIN #Icu")
    assert again.code == 203 and "already" in again.text

    sent = await carol.command("TELL #icu anyone free?")  # non-members may write to a group
    assert sent.code == 250 and sent.fields[-1] == "2"
    for member in (alice, bob):
        message = await member.message()
        assert (message.to, message.group, message.text) == ("#ICU", "#ICU", "anyone free?")

    groups = await carol.command("GROUPS")
    assert groups.code == 213 and groups.items == ("#ICU members=2",) and groups.text == "1 group"
    who = await carol.command("WHO #icu")
    assert who.code == 212 and who.items == ("alice", "bob")
    everyone = await carol.command("WHO")
    assert everyone.items == ("alice groups=#ICU", "bob groups=#ICU", "carol") and everyone.text == "3 people online"

    left = await bob.command("LEAVE #icu")
    assert left.code == 204
    assert await alice.event("LEAVE") == Event("LEAVE", ("#ICU", "bob"))
    assert (await bob.command("LEAVE #icu")).code == 404
    assert (await alice.command("LEAVE #icu")).code == 204
    assert (await carol.command("GROUPS")).items == ()
    assert (await carol.command("TELL #icu hello?")).code == 404
    assert (await carol.command("WHO #icu")).code == 404


async def test_invalid_group_name_is_422(server: ChatServer) -> None:
    (alice,) = await people(server, "alice")
    assert (await alice.command("JOIN #bad!name")).code == 422
    assert (await alice.command("JOIN icu")).code == 400


async def test_ping_replies_and_pong_is_silent(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    assert (await client.command("PING abc")).text == "PONG abc"
    await client.send("PONG 1")
    assert (await client.command("PING")).text == "PONG"


async def test_quit_confirms_then_closes_and_others_are_told(server: ChatServer) -> None:
    alice, bob = await people(server, "alice", "bob")
    await alice.command("JOIN #icu")
    await bob.send("QUIT end of shift")
    goodbye = await bob.reply()
    assert goodbye.code == 221 and "bob" in goodbye.text
    assert await bob.closed() == b""
    offline = await alice.event("OFFLINE")
    assert offline == Event("OFFLINE", ("bob", "quit:", "end", "of", "shift"))
    # the name is free again
    again = await LineClient.connect(port_of(server))
    await again.register("bob")


async def test_quit_works_before_choosing_a_name(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    assert (await client.command("bye")).code == 221
    assert await client.closed() == b""


async def test_unknown_command_and_bad_syntax_are_400_with_hints(server: ChatServer) -> None:
    (alice,) = await people(server, "alice")
    unknown = await alice.command("FROBNICATE now")
    assert unknown.code == 400 and "HELP" in unknown.text
    usage = await alice.command("TELL bob")
    assert usage.code == 400 and usage.text == "usage: TELL <to> <text>"


async def test_blank_lines_are_ignored(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    await client.send("", "   ", "\t")
    assert (await client.command("PING x")).text == "PONG x"


async def test_commands_are_answered_in_order_when_pipelined(server: ChatServer) -> None:
    client = await LineClient.connect(port_of(server))
    await client.send("NAME pipe", "PING 1", "WHO", "FOO", "PING 2", "QUIT")
    codes_seen = [(await client.reply()).code for _ in range(6)]
    assert codes_seen == [201, 200, 212, 400, 200, 221]


async def test_message_text_is_cleaned_of_escapes(server: ChatServer) -> None:
    alice, bob = await people(server, "alice", "bob")
    await alice.send_raw(b"SAY \x1b[2J\x1b[31mred\x07 alert\r\n")
    await alice.reply()
    assert (await bob.message()).text == "[2J[31mred alert"
