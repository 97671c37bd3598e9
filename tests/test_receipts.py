"""Receipts and TRACE over real sockets, on both stores: delivered and read events for the sender, and a
message's whole ledger from the audit log."""

from __future__ import annotations

from bleeper.protocol.incoming import Event
from tests.conftest import Start
from tests.helpers import LineClient, login

FAST = {"urgent_interval": 0.3, "urgent_attempts": 2}


async def event(client: LineClient, kind: str) -> Event:
    found = await client.event(kind)
    assert isinstance(found, Event), found
    return found


async def test_delivered_and_read_reach_the_sender_and_trace_shows_the_ledger(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    bob_phone, _ = await login(server, "bob")
    bob_desk, _ = await login(server, "bob")
    msg_id = (await alice.command("TELL bob bed 2 can go home")).text.split()[0]
    assert (await event(alice, "DELIVERED")).args == (msg_id, "bob")  # once per person, not per device
    await bob_phone.message()
    read = await bob_phone.command(f"READ {msg_id}")
    assert read.code == 208 and read.text == f"{msg_id} marked read; alice is told"
    assert (await event(alice, "READ")).args == (msg_id, "bob")
    await alice.drain()
    assert not [e for e in alice.events if isinstance(e, Event) and e.kind == "DELIVERED"]

    trace = await alice.command(f"TRACE {msg_id}")
    assert trace.code == 217 and trace.text == f"4 entries for message {msg_id}"
    lines = [line.split(" ", 1)[1] for line in trace.items]  # without the times
    assert lines[0] == "stored: from alice to @bob"
    assert sorted(lines[1:3]) == sorted(f"delivered to bob ({c.address})" for c in (bob_phone, bob_desk))
    assert lines[3] == "read by bob"
    assert (await bob_desk.command(f"TRACE {msg_id}")).code == 403  # the sender's, and administrators'
    assert (await alice.command("TRACE 99999")).code == 404
    carol, _ = await login(server, "carol")
    assert (await carol.command(f"READ {msg_id}")).code == 404  # not sent to carol
    assert (await alice.command(f"READ {msg_id}")).code == 404  # nor to its sender


async def test_an_offline_recipient_counts_as_delivered_when_it_logs_in(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    msg_id = (await alice.command("TELL carol results are in")).text.split()[0]
    carol, _ = await login(server, "carol")
    assert (await event(alice, "DELIVERED")).args == (msg_id, "carol")
    trace = await alice.command(f"TRACE {msg_id}")
    assert [line.split(" ", 1)[1] for line in trace.items][1] == f"delivered to carol ({carol.address})"


async def test_an_urgent_ledger_shows_escalation_and_acknowledgement(start: Start) -> None:
    """One page, one id, one ledger: TRACE shows every step, whoever it reached."""
    server = await start(**FAST)
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    carol, _ = await login(server, "carol")
    await bob.command("BACKUP carol")
    msg_id = (await alice.command("URGENT bob bed 4 sats 84%")).text.split()[0]
    passed_on = await carol.message()
    assert passed_on.id == int(msg_id) and passed_on.seq == 1  # carol's own number, the page's id
    assert (await carol.command(f"READ {msg_id}")).code == 208
    assert (await event(alice, "READ")).args == (msg_id, "carol")
    assert (await carol.command(f"ACK {msg_id}")).code == 206
    await event(alice, "ACKED")
    trace = await alice.command(f"TRACE {msg_id}")
    lines = [line.split(" ", 1)[1] for line in trace.items]
    assert trace.text == f"{len(lines)} entries for message {msg_id}"
    lines = [line for line in lines if line != "alerted bob, carol (alert 2 of 2)"]  # if carol was slow to ACK
    assert lines == [
        "stored: from alice to @bob (urgent)",
        f"delivered to bob ({bob.address})",
        "alerted bob (alert 2 of 2)",
        "escalated to carol (backup of bob)",
        f"delivered to carol ({carol.address})",
        "read by carol",
        "acknowledged by carol",
    ], lines
    _, text = await login(server, "carol")  # carol's other device: nothing waits, the page reached her
    assert text.startswith("carol logged in at 1; 0 waiting sent")


async def test_delivered_is_told_once_however_often_the_recipient_syncs(start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    bob, _ = await login(server, "bob")
    msg_id = (await alice.command("TELL bob one receipt only")).text.split()[0]
    assert (await event(alice, "DELIVERED")).args == (msg_id, "bob")
    await bob.message()
    first_device = bob.address
    for _ in range(3):
        assert (await bob.command("SYNC 0")).code == 215  # the message again, on the same device
    bob_tablet, _ = await login(server, "bob")
    assert (await bob_tablet.command("SYNC 0")).code == 215  # and on another one
    await bob.command("QUIT")
    await bob_tablet.command("QUIT")
    _, text = await login(server, "bob")
    assert "0 waiting sent" in text
    assert (await alice.command("PING receipts")).code == 200  # whatever was sent to alice has arrived
    assert not [e for e in alice.events if isinstance(e, Event) and e.kind == "DELIVERED"]
    lines = [line.split(" ", 1)[1] for line in (await alice.command(f"TRACE {msg_id}")).items]
    assert [line for line in lines if line.startswith("delivered")] == [f"delivered to bob ({first_device})"]
