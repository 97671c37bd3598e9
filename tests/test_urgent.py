"""Urgent messages over real sockets: alerts until acknowledged, escalation to a backup, the sender told at
each step, and the same after a restart of the recipient's login (both stores)."""

from __future__ import annotations

import json

from bleeper.protocol.incoming import Event, Message
from bleeper.store import open_store
from tests.conftest import Start
from tests.helpers import LineClient, login
from tests.test_store import stored_entries

FAST = {"urgent_interval": 0.3, "urgent_attempts": 2}


async def named(port: int, name: str) -> LineClient:
    client = await LineClient.connect(port)
    await client.register(name)
    return client


async def event(client: LineClient, kind: str) -> Event:
    found = await client.event(kind)
    assert isinstance(found, Event), found
    return found


async def test_an_urgent_message_alerts_until_acknowledged(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, doc = await named(port, "ward7"), await named(port, "doc")
    sent = await ward.command("URGENT doc bed 4 sats 84%, please come")
    assert sent.code == 250 and "urgent: alerts every 0.3 s until acknowledged" in sent.text
    msg_id = int(sent.text.split()[0])
    page = await doc.message()
    assert page.urgent and page.id == msg_id and page.text == "bed 4 sats 84%, please come"

    alert = await event(doc, "ALERT")
    assert alert.args == (str(msg_id), "ward7", "1")  # who and how many: no text on a lock screen
    assert (await event(ward, "ESCALATION")).args == (str(msg_id), "alerted", "2/2", "doc")

    acked = await doc.command(f"ACK {msg_id}")
    assert acked.code == 206 and acked.text == f"{msg_id} acknowledged; ward7 is told"
    assert (await event(ward, "ACKED")).args == (str(msg_id), "doc")
    again = await doc.command(f"ACK {msg_id}")
    assert again.code == 206 and "already acknowledged by doc" in again.text
    await doc.drain()
    await ward.drain()
    await doc.command("PING later")  # well past the interval: nothing more arrives
    assert not [e for e in doc.events if isinstance(e, Event) and e.kind == "ALERT"]


async def test_unanswered_it_escalates_to_the_backup_who_can_acknowledge(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, doc, reg = await named(port, "ward7"), await named(port, "doc"), await named(port, "registrar")
    assert (await doc.command("BACKUP")).text == "you have no backup: BACKUP <name>"
    set_backup = await doc.command("BACKUP registrar")
    assert set_backup.code == 207 and "after 2 alerts" in set_backup.text
    msg_id = int((await ward.command("URGENT doc bed 9 arrest call")).text.split()[0])
    assert (await event(ward, "ESCALATION")).args == (str(msg_id), "alerted", "2/2", "doc")
    escalated = await event(ward, "ESCALATION")
    assert escalated.args == (str(msg_id), "escalated", "registrar", "backup-of", "doc")
    passed_on = await reg.message()
    assert passed_on.urgent and passed_on.text == "bed 9 arrest call" and passed_on.sender == "ward7"
    assert passed_on.id == msg_id and passed_on.to == "@doc"  # the same page, one id, addressed as it was
    assert (await event(reg, "ALERT")).args == (str(msg_id), "ward7", "1")  # the id the backup received
    # the delivery to the backup counts as its first alert, as the first delivery did
    assert (await event(ward, "ESCALATION")).args == (str(msg_id), "alerted", "2/2", "doc,registrar")
    acked = await reg.command(f"ACK {msg_id}")
    assert acked.code == 206 and acked.text == f"{msg_id} acknowledged; ward7 is told"
    for told in (ward, doc):
        assert (await event(told, "ACKED")).args == (str(msg_id), "registrar")
    assert (await reg.command(f"READ {msg_id}")).code == 208  # sent to the backup too, so the backup may read it
    lines = [line.split(" ", 1)[1] for line in (await ward.command(f"TRACE {msg_id}")).items]
    assert lines[0] == "stored: from ward7 to @doc (urgent)"
    assert lines.index(f"delivered to guest:doc ({doc.address})") < lines.index("alerted doc (alert 2 of 2)")
    assert lines.index("escalated to registrar (backup of doc)") < lines.index(
        f"delivered to guest:registrar ({reg.address})") < lines.index("acknowledged by guest:registrar")  # fmt: skip
    assert lines[-1] == "read by guest:registrar"
    assert (await ward.command(f"RECALL {msg_id}")).code == 210
    assert (await event(reg, "RECALLED")).args == (str(msg_id), "ward7")  # the backup's screen hides it too


async def test_without_a_backup_the_sender_is_told_and_alerts_go_on(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, doc = await named(port, "ward7"), await named(port, "doc")
    msg_id = (await ward.command("URGENT doc potassium 6.8")).text.split()[0]
    assert (await event(ward, "ESCALATION")).args[1] == "alerted"
    assert (await event(ward, "ESCALATION")).args == (msg_id, "no-backup", "doc")
    assert (await event(ward, "ESCALATION")).args == (msg_id, "alerted", "1/2", "doc")  # a new round
    assert (await doc.command(f"ACK #{msg_id}")).code == 206


async def test_ack_mistakes_are_explained(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, doc, porter = await named(port, "ward7"), await named(port, "doc"), await named(port, "porter")
    msg_id = (await ward.command("URGENT doc review please")).text.split()[0]
    assert (await porter.command(f"ACK {msg_id}")).code == 403
    assert (await doc.command("ACK 999999")).code == 404
    assert (await doc.command("ACK soon")).code == 400
    plain = (await ward.command("TELL doc not urgent")).text.split()[0]
    assert (await doc.command(f"ACK {plain}")).code == 404
    assert (await doc.command("BACKUP nobody-here")).code == 404


async def test_to_a_group_anyone_may_acknowledge(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, ann, ben = await named(port, "ward7"), await named(port, "ann"), await named(port, "ben")
    for member in (ann, ben):
        await member.command("JOIN #cardio")
    msg_id = (await ward.command("URGENT #cardio chest pain bay 3")).text.split()[0]
    assert (await ann.message()).urgent and (await ben.message()).urgent
    assert (await ben.command(f"ACK {msg_id}")).code == 206
    assert (await event(ann, "ACKED")).args == (msg_id, "ben")
    assert (await event(ward, "ACKED")).args == (msg_id, "ben")


async def test_an_offline_account_gets_it_as_urgent_at_login_and_acks_are_audited(db: str, start: Start) -> None:
    server = await start(**FAST)
    alice, _ = await login(server, "alice")
    msg_id = (await alice.command("URGENT bob CT result abnormal, call me")).text.split()[0]
    bob, text = await login(server, "bob")
    assert "1 waiting sent" in text
    waiting = bob.events[0] if bob.events else await bob.message()
    assert isinstance(waiting, Message) and waiting.urgent and waiting.text == "CT result abnormal, call me"
    assert (await bob.command(f"ACK {msg_id}")).code == 206
    await server.stop(grace=0.5)
    entries = await stored_entries(db)
    acks = [e for e in entries if e.kind == "ack"]
    assert [(e.actor, e.subject) for e in acks] == [("bob", msg_id)] and json.loads(acks[0].detail)["alerts"] >= 1


async def test_on_call_roles_reach_their_holders_and_hand_over_urgent_messages(start_server: Start) -> None:
    server = await start_server(**FAST)
    port = server.addresses[0][1]
    ward, ann, ben = await named(port, "ward7"), await named(port, "ann"), await named(port, "ben")
    assert (await ward.command("TELL @cardio-oncall anyone?")).code == 404
    took = await ann.command("ONCALL TAKE @cardio-oncall")
    assert took.code == 209 and took.text == "you hold @cardio-oncall"
    listed = await ward.command("ONCALL")
    assert listed.items == ("@cardio-oncall holders=ann",) and listed.text == "1 role(s) held"
    sent = await ward.command("TELL @Cardio-Oncall ECG in bay 2 please")
    assert sent.code == 250
    assert (await ann.message()).to == "@cardio-oncall"
    assert (await event(ward, "DELIVERED")).args[1] == "ann"

    msg_id = (await ward.command("URGENT @cardio-oncall VT on monitor bay 2")).text.split()[0]
    await ann.message()
    leave = await ann.command("ONCALL LEAVE @cardio-oncall")
    assert leave.code == 409 and "ONCALL HANDOVER @cardio-oncall <name>" in leave.text
    handed = await ann.command("ONCALL HANDOVER @cardio-oncall ben")
    assert handed.code == 209 and "1 urgent message(s) passed on" in handed.text
    assert (await event(ben, "ONCALL")).args == ("@cardio-oncall", "from", "ann")
    passed = await ben.message()
    assert passed.urgent and passed.text == "VT on monitor bay 2"
    handover = await event(ward, "ESCALATION")
    while handover.args[1] != "handed-over":
        handover = await event(ward, "ESCALATION")
    assert handover.args == (msg_id, "handed-over", "ben", "from", "ann")
    assert (await ben.command(f"ACK {msg_id}")).code == 206
    assert (await ward.command("ONCALL")).items == ("@cardio-oncall holders=ben",)
    assert (await ann.command("ONCALL LEAVE @cardio-oncall")).code == 403  # no longer holds it
    assert (await ben.command("HISTORY @cardio-oncall")).code == 216
    assert (await ben.command("ONCALL LEAVE @cardio-oncall")).code == 209
    assert (await ward.command("ONCALL")).items == ()


async def test_roles_backups_and_unacknowledged_urgent_messages_survive_restarts(db: str, start: Start) -> None:
    server = await start(urgent_interval=60)  # nothing alerts before the restart
    alice, _ = await login(server, "alice")
    assert (await alice.command("ONCALL TAKE @cardio-oncall")).code == 209
    assert (await alice.command("BACKUP carol")).code == 207
    bob, _ = await login(server, "bob")
    assert (await bob.command("ONCALL TAKE @gone")).code == 209
    assert (await bob.command("ONCALL LEAVE @gone")).code == 209
    waiting = (await bob.command("URGENT @cardio-oncall VT on monitor bay 2")).text.split()[0]
    answered = (await bob.command("URGENT alice call me")).text.split()[0]
    assert (await alice.message()).text == "VT on monitor bay 2"
    await alice.message()
    assert (await alice.command(f"ACK {answered}")).code == 206
    await server.stop(grace=0.5)

    server = await start(**FAST)  # alerts every 0.3 s, escalation after 2
    carol, _ = await login(server, "carol")
    assert (await carol.command("ONCALL")).items == ("@cardio-oncall holders=alice",)
    alice, _ = await login(server, "alice")
    assert (await alice.command("BACKUP")).text.startswith("your backup is carol")
    bob, _ = await login(server, "bob")
    alert = await event(alice, "ALERT")
    assert alert.args == (waiting, "bob", "1")  # only the unacknowledged one alerts again
    copy = await carol.message()  # then it escalates to the backup, text and all
    assert copy.urgent and copy.text == "VT on monitor bay 2"
    escalation = await event(bob, "ESCALATION")
    while escalation.args[1] != "escalated":
        escalation = await event(bob, "ESCALATION")
    assert escalation.args == (waiting, "escalated", "carol", "backup-of", "alice")
    await server.stop(grace=0.5)

    server = await start(**FAST)
    carol, _ = await login(server, "carol")
    assert copy.id == int(waiting)  # the same page, the same id
    assert (await carol.command(f"ACK {copy.id}")).code == 206
    alice, _ = await login(server, "alice")
    assert (await alice.command(f"ACK {waiting}")).text == f"{waiting} already acknowledged by carol"
    await server.stop(grace=0.5)
    store = await open_store(db)
    try:
        rows = await store.standing()
    finally:
        await store.close()
    assert [(kind, key) for kind, key, _ in rows] == [("backup", "alice"), ("holder", "cardio-oncall alice")]
