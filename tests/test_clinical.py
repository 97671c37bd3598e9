"""Clinical features over real sockets: presence, and administrators' KICK and ANNOUNCE (audited)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bleeper.protocol.incoming import Event
from bleeper.store import open_store
from tests.conftest import Start, starting
from tests.helpers import LineClient, create_accounts, login
from tests.services import location
from tests.test_store import all_entries


@pytest.fixture(params=["sqlite", "postgres"])
async def admin_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with location(request.param, tmp_path) as where:
        yield await create_accounts(where, "alice", "bob", admins=("chief",))


@pytest.fixture
async def start_admin(admin_db: str) -> AsyncIterator[Start]:
    async with starting(db=admin_db) as start:
        yield start


async def named(port: int, name: str) -> LineClient:
    client = await LineClient.connect(port)
    await client.register(name)
    return client


async def test_status_shows_in_who_and_goes_with_the_person(start_server: Start) -> None:
    server = await start_server()
    port = server.addresses[0][1]
    ann, ben = await named(port, "ann"), await named(port, "ben")
    set_status = await ann.command("STATUS busy in theatre until 3")
    assert set_status.code == 205 and set_status.text == "busy (in theatre until 3)"
    who = await ben.command("WHO")
    assert "ann status=busy note=in theatre until 3" in who.items and "ben" in who.items
    assert (await ann.command("STATUS sleeping")).code == 400
    assert (await ann.command("AWAY away")).code == 205  # AWAY is STATUS's alias
    assert (await ann.command("STATUS available")).code == 205
    assert "ann" in (await ben.command("WHO")).items  # back to the default: nothing shown
    await ann.command("STATUS away")
    await ann.command("QUIT")
    again = await named(port, "ann")
    assert "ann" in (await again.command("WHO")).items  # a new connection starts available


async def test_do_not_disturb_tells_each_private_sender_once_and_still_delivers(start_server: Start) -> None:
    server = await start_server()
    port = server.addresses[0][1]
    doc, nurse, porter = await named(port, "doc"), await named(port, "nurse"), await named(port, "porter")
    set_dnd = await doc.command("STATUS dnd scrubbed in")
    assert set_dnd.code == 205 and "still arrive" in set_dnd.text
    first = await nurse.command("TELL doc bed 4 bloods back")
    assert first.code == 250 and "reached 1" in first.text
    notice = await nurse.event("STATUS")
    assert isinstance(notice, Event) and notice.args == ("doc", "dnd", "scrubbed", "in")
    assert (await doc.message()).text == "bed 4 bloods back"
    assert (await nurse.command("TELL doc and bed 5")).code == 250
    assert (await nurse.command("TELL porter,doc both of you")).code == 250  # sub-group: already told
    await porter.command("TELL doc,nurse from the porter")
    assert (await porter.event("STATUS")).args[:2] == ("doc", "dnd")  # another sender is told too
    await nurse.drain()
    assert not [e for e in nurse.events if isinstance(e, Event) and e.kind == "STATUS"]
    await doc.command("STATUS dnd still scrubbed")  # set again: senders are told again
    await nurse.command("TELL doc one more")
    assert (await nurse.event("STATUS")).args[2:] == ("still", "scrubbed")


async def test_kick_and_announce_are_for_administrators_and_audited(admin_db: str, start_admin: Start) -> None:
    server = await start_admin()
    port = server.addresses[0][1]
    alice_phone, _ = await login(server, "alice")
    alice_desk, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    guest = await named(port, "visitor")
    assert (await bob.command("KICK alice")).code == 403
    assert (await bob.command("ANNOUNCE fire drill")).code == 403
    chief, _ = await login(server, "chief")

    announced = await chief.command("ANNOUNCE fire drill at 14:00, ignore the alarm")
    assert announced.code == 200 and announced.text == "announced to 4 connection(s)"
    for listener in (alice_phone, alice_desk, bob, guest):
        heard = await listener.event("ANNOUNCE")
        assert isinstance(heard, Event) and heard.args[0] == "chief"
        assert heard.rest(1) == "fire drill at 14:00, ignore the alarm"

    kicked = await chief.command("KICK Alice shared password")
    assert kicked.code == 200 and "2 connection(s)" in kicked.text
    for device in (alice_phone, alice_desk):
        assert b"CLOSING kicked by chief: shared password" in await device.closed()
    assert (await chief.command("KICK alice")).code == 404
    assert (await chief.command("KICK")).code == 400
    await server.stop(grace=0.5)

    store = await open_store(admin_db)
    try:
        admin = [e for e in await all_entries(store) if e.kind == "admin"]
    finally:
        await store.close()
    details = [json.loads(e.detail) for e in admin]
    assert [(e.actor, e.subject, d["action"]) for e, d in zip(admin, details, strict=True)] == [
        ("chief", "*", "announce"), ("chief", "alice", "kick")
    ]  # fmt: skip
    assert details[0]["reached"] == 4 and "fire" not in admin[0].detail
    assert details[1] == {"action": "kick", "connections": 2, "reason": "shared password"}
