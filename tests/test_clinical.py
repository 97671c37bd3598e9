"""Clinical features over real sockets: presence, and administrators' KICK and ANNOUNCE (audited)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bleeper.protocol.incoming import Event
from bleeper.store import NewMessage, open_store
from tests.conftest import Start, starting
from tests.helpers import ROOT, LineClient, create_accounts, login, server_process
from tests.services import location
from tests.test_store import stored_entries


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
    presence = await ben.event("PRESENCE")  # others' user lists stay live
    assert isinstance(presence, Event) and presence.args == ("ann", "busy", "in", "theatre", "until", "3")
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

    admin = [e for e in await stored_entries(admin_db) if e.kind == "admin"]
    details = [json.loads(e.detail) for e in admin]
    assert [(e.actor, e.subject, d["action"]) for e, d in zip(admin, details, strict=True)] == [
        ("chief", "*", "announce"), ("chief", "alice", "kick")
    ]  # fmt: skip
    assert details[0]["reached"] == 4 and "fire" not in admin[0].detail
    assert details[1] == {"action": "kick", "connections": 2, "reason": "shared password"}


async def test_recall_leaves_a_tombstone_everywhere_and_is_audited(admin_db: str, start_admin: Start) -> None:
    server = await start_admin(urgent_interval=60)
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    msg_id = (await alice.command("TELL bob wrong patient: bed 7 not bed 4")).text.split()[0]
    await bob.message()
    assert (await bob.command(f"RECALL {msg_id}")).code == 403  # only its sender
    recalled = await alice.command(f"RECALL {msg_id}")
    assert recalled.code == 210 and "a tombstone remains" in recalled.text
    gone = await bob.event("RECALLED")
    assert isinstance(gone, Event) and gone.args == (msg_id, "alice")
    history = await bob.command("HISTORY alice")
    assert len(history.items) == 1 and "[recalled by alice at " in history.items[0]
    assert "bed 7" not in history.items[0] and "sha256 " in history.items[0]
    assert (await alice.command(f"RECALL {msg_id}")).text == f"{msg_id} was already recalled"
    assert (await alice.command("RECALL 99999")).code == 404
    page = (await alice.command("URGENT bob sorry, ignore")).text.split()[0]
    await alice.command(f"RECALL {page}")
    assert int(page) not in server.hub.urgent.open  # a recalled page stops alerting
    await server.stop(grace=0.5)
    recalls = [e for e in await stored_entries(admin_db) if e.kind == "recall"]
    assert [(e.actor, e.subject) for e in recalls] == [("alice", msg_id), ("alice", page)]


async def test_health_is_for_administrators(start_admin: Start) -> None:
    server = await start_admin()
    alice, _ = await login(server, "alice")
    chief, _ = await login(server, "chief")
    assert (await alice.command("HEALTH")).code == 403
    await alice.command("URGENT chief please look")
    report = await chief.command("HEALTH")
    assert report.code == 218
    text = "\n".join(report.items)
    assert "connections 2, people 2" in text and "urgent waiting 1" in text and "oldest urgent " in text
    assert "largest send buffer" in text and "waiting to commit, last commit" in text


async def test_retention_removes_old_text_but_keeps_the_record(admin_db: str, start_admin: Start) -> None:
    store = await open_store(admin_db)
    try:
        old = NewMessage("alice", "alice", "@bob", "@alice,bob", "ten days ago", int((time.time() - 10 * 86400) * 1000),
                         ("bob",))  # fmt: skip
        new = NewMessage("alice", "alice", "@bob", "@alice,bob", "today", int(time.time() * 1000), ("bob",))
        await store.store_messages([old, new])
    finally:
        await store.close()
    server = await start_admin(retention_days=7)
    bob, _ = await login(server, "bob")
    history = await bob.command("HISTORY alice")
    assert [item.split(" ", 4)[4] for item in history.items] == ["[expired: older than 7 days]", "today"]
    await server.stop(grace=0.5)
    kinds = [e.kind for e in await stored_entries(admin_db)]
    assert "retention" in kinds and kinds.count("message") == 2  # the hashes of both texts stay


def test_bleeper_health_from_the_command_line(tmp_path: Path) -> None:
    db = asyncio.run(create_accounts(str(tmp_path / "health.db"), admins=("chief",)))
    with server_process("--db", db) as (_, port):
        run = [sys.executable, "-m", "bleeper", "health", "--port", str(port), "--name", "chief"]
        env = {**os.environ, "BLEEPER_PASSWORD": "chief-password"}
        ok = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=30, env=env)
        assert ok.returncode == 0 and "uptime" in ok.stdout and "urgent waiting 0" in ok.stdout, ok.stderr
        env["BLEEPER_PASSWORD"] = "wrong"
        bad = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=30, env=env)
        assert bad.returncode == 1 and "login failed" in bad.stderr
