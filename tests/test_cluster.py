"""Cluster mode with real parts: three ``bleeper serve --cluster`` processes on one PostgreSQL database and a
NATS cluster of three ``nats-server`` processes started here. People on different nodes must see one chat:
names unique everywhere, every command behaving as on one server, one order of messages for everyone.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator

import pytest

from bleeper.client import ChatClient
from bleeper.protocol.incoming import Event, Message
from tests.cluster_nodes import Node, database, nodes
from tests.helpers import ROOT, LineClient, create_accounts, free_port, login
from tests.nats_cluster import NatsCluster, nats_cluster
from tests.services import postgres_database

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def nats() -> Iterator[NatsCluster]:
    with nats_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def trio(nats: NatsCluster) -> Iterator[list[Node]]:
    """Three nodes shared by the tests of this module that kill nothing (each uses names of its own)."""
    with database() as db:
        asyncio.run(create_accounts(db, "alice", "bob", "carol", admins=("chief",)))
        with nodes(db, nats) as started:
            yield started


async def settle(*clients: LineClient) -> None:
    """Every client has received what was sent to it so far (signals between nodes take a moment)."""
    await asyncio.sleep(0.2)
    for client in clients:
        await client.command("PING settle")


async def test_cluster_status_lists_the_nodes_and_their_people(trio: list[Node], nats: NatsCluster) -> None:
    a, _, _ = trio
    zed = await a.client("zed")
    await asyncio.sleep(trio[0].lease / 5 + 0.5)  # each node says how it stands when it renews its lease
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "cluster", "status", "--json", cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env={**os.environ, "BLEEPER_CLUSTER": nats.urls},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    rows = {row["node"]: row for row in map(json.loads, out.decode().splitlines())}
    assert {"a", "b", "c"} <= set(rows)
    assert rows["a"]["people_here"] >= 1 and rows["a"]["connections"] >= 1 and rows["a"]["behind"] == 0
    table = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "cluster", "status", "--cluster", nats.urls, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(table.communicate(), 20)
    assert out.decode().splitlines()[0].split()[:2] == ["NODE", "SINCE"] and "node(s) live" in out.decode()
    unreachable = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "cluster", "status", "--cluster", f"nats://127.0.0.1:{free_port()}",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(unreachable.communicate(), 20)
    assert unreachable.returncode == 1 and "cannot read the cluster" in err.decode()
    await zed.command("QUIT")


async def test_a_name_race_across_nodes_has_one_winner(trio: list[Node]) -> None:
    a, b, _ = trio
    for round_ in range(20):
        first, second = await a.client(), await b.client()
        name = f"racer{round_}"
        await first.send(f"NAME {name}")
        await second.send(f"NAME {name}")
        replies = [await first.reply(), await second.reply()]
        assert sorted(reply.code for reply in replies) == [201, 409], replies
        winner, loser = (first, second) if replies[0].code == 201 else (second, first)
        await winner.command("QUIT")
        for _ in range(50):  # the name is free again, on the other node too, once the winner has gone
            reply = await loser.command(f"NAME {name}")
            if reply.code == 201:
                break
            await asyncio.sleep(0.05)
        assert reply.code == 201, reply
        await loser.close()


async def test_a_name_race_on_one_node_and_across_has_one_winner(trio: list[Node]) -> None:
    """Two connections on one node and one on another ask at once (the chaos test found a second holder
    when two on one node asked together)."""
    a, b, _ = trio
    for round_ in range(20):
        racers = [await a.client(), await a.client(), await b.client()]
        for racer in racers:
            await racer.send(f"NAME twin{round_}")
        replies = [await racer.reply() for racer in racers]
        assert sorted(reply.code for reply in replies) == [201, 409, 409], replies
        for racer in racers:
            await racer.close()


async def test_a_name_given_up_and_taken_again_on_one_node_stays_taken_everywhere(trio: list[Node]) -> None:
    """The name's old claim was still being released when the new holder took it (found by the chaos test):
    it must not be released under the new holder."""
    a, b, _ = trio
    for round_ in range(20):
        name = f"solo{round_}"
        first = await a.client(name)
        second = await a.client()
        await first.send("QUIT")
        await second.send(f"NAME {name}")
        await first.closed()
        reply = await second.reply()
        for _ in range(20):  # until the first has gone: then the second has it
            if reply.code == 201:
                break
            await asyncio.sleep(0.05)
            reply = await second.command(f"NAME {name}")
        assert reply.code == 201, reply
        await asyncio.sleep(0.1)  # the old claim's release, had it gone ahead, would be done by now
        other = await b.client()
        assert (await other.command(f"NAME {name}")).code == 409
        for client in (second, other):
            await client.close()


async def test_people_groups_and_presence_span_the_nodes(trio: list[Node]) -> None:
    a, b, c = trio
    ann = await a.client("ann")
    ben = await b.client("ben")
    online = await ann.event("ONLINE")
    assert isinstance(online, Event) and online.args == ("ben",)
    cid = await c.client("cid")
    await settle(ann, ben, cid)
    who = await cid.command("WHO")
    assert {"ann", "ben", "cid"} <= set(who.items), who
    assert (await ann.command("JOIN #ward")).code == 203
    joined = await ben.command("JOIN #ward")
    assert joined.code == 203
    join = await ann.event("JOIN")
    assert isinstance(join, Event) and join.args == ("#ward", "ben")
    await settle(ann, ben, cid)
    assert "#ward members=2" in (await cid.command("GROUPS")).items
    ward = await cid.command("WHO #ward")
    assert ward.items == ("ann", "ben"), ward
    assert "ann groups=#ward" in (await cid.command("WHO")).items

    said = await cid.command("SAY hello from c")
    assert said.code == 250
    for client in (ann, ben):
        message = await client.message()
        assert (message.sender, message.to, message.text) == ("cid", "*", "hello from c")
    assert (await ann.command("TELL ben a word")).code == 250
    message = await ben.message()
    assert (message.sender, message.to, message.text) == ("ann", "@ben", "a word")
    assert (await ben.command("TELL ann,cid both of you")).code == 250
    for client in (ann, cid):
        message = await client.message()
        assert (message.sender, message.text) == ("ben", "both of you")
    assert (await cid.command("TELL #ward to the ward")).code == 250
    for client in (ann, ben):
        message = await client.message()
        assert (message.sender, message.to, message.text) == ("cid", "#ward", "to the ward")

    assert (await ann.command("STATUS busy in theatre")).code == 205
    presence = await ben.event("PRESENCE")
    assert isinstance(presence, Event) and presence.args[:2] == ("ann", "busy")
    await settle(cid)
    assert "ann groups=#ward status=busy note=in theatre" in (await cid.command("WHO")).items

    assert (await ben.command("LEAVE #ward")).code == 204
    leave = await ann.event("LEAVE")
    assert isinstance(leave, Event) and leave.args == ("#ward", "ben")
    await ben.command("QUIT")
    for client in (ann, cid):
        offline = await client.event("OFFLINE")
        assert isinstance(offline, Event) and offline.args[0] == "ben"
    await settle(cid)
    assert "ben" not in (await cid.command("WHO")).items
    await ann.command("QUIT")
    await settle(cid)
    assert not any(item.startswith("#ward") for item in (await cid.command("GROUPS")).items)


async def test_a_group_sees_one_order_whichever_node_each_member_is_on(trio: list[Node]) -> None:
    members = [await node.client(f"m{node.name}") for node in trio]
    for member in members:
        assert (await member.command("JOIN #order")).code == 203
    await settle(*members)
    for member in members:
        member.events.clear()
    count = 40
    senders = members[:2]
    for index, sender in enumerate(senders):  # pipelined, both at once: their commits interleave
        await sender.send(*(f"TELL #order {index}-{n}" for n in range(count)))
    for sender in senders:
        for _ in range(count):
            assert (await sender.reply()).code == 250
    seen: list[list[tuple[int, str]]] = []
    for index, member in enumerate(members):
        got: list[tuple[int, str]] = []
        while len(got) < (2 * count if index == 2 else count):  # a sender does not get its own back
            message = await member.message()
            got.append((message.id, message.text))
        seen.append(got)
    everything = seen[2]
    assert [i for i, _ in everything] == sorted(i for i, _ in everything), "not in the order stored"
    assert {text for _, text in everything} == {f"{s}-{n}" for s in range(2) for n in range(count)}
    for got in seen[:2]:
        assert got == [entry for entry in everything if entry in got]  # the same order as the third member's
    for member in members:
        await member.command("QUIT")


async def test_accounts_receive_across_nodes_and_catch_up_anywhere(trio: list[Node]) -> None:
    a, b, c = trio
    alice, _ = await login(a.port, "alice")
    bob, _ = await login(b.port, "bob")
    sent = await bob.command("TELL alice on another node")
    assert sent.code == 250
    message = await alice.message()
    assert (message.sender, message.text) == ("bob", "on another node")
    first_seq = message.seq
    delivered = await bob.event("DELIVERED")  # from alice's node, through the bus
    assert isinstance(delivered, Event) and delivered.args == (str(message.id), "alice")
    assert (await alice.command(f"READ {message.id}")).code == 208
    read = await bob.event("READ")
    assert isinstance(read, Event) and read.args == (str(message.id), "alice")
    assert (await bob.command(f"RECALL {message.id}")).code == 210
    recalled = await alice.event("RECALLED")
    assert isinstance(recalled, Event) and recalled.args == (str(message.id), "bob")
    await alice.command("QUIT")
    await settle(bob)
    for n in range(5):
        assert (await bob.command(f"TELL alice while away {n}")).code == 250
    again = await LineClient.connect(c.port)
    await again.send("LOGIN alice alice-password")
    replayed = [await again.message() for _ in range(5)]
    assert [m.text for m in replayed] == [f"while away {n}" for n in range(5)]
    assert [m.seq for m in replayed] == list(range(first_seq + 1, first_seq + 6))
    assert (await again.reply()).code == 202
    await again.command("QUIT")
    await bob.command("QUIT")


async def test_on_call_roles_kick_and_announce_reach_every_node(trio: list[Node]) -> None:
    a, b, c = trio
    dana = await a.client("dana")
    assert (await dana.command("ONCALL TAKE @night-reg")).code == 209
    await settle(dana)
    eve = await b.client("eve")
    listed = await eve.command("ONCALL")
    assert any(item.startswith("@night-reg holders=dana") for item in listed.items), listed
    assert (await eve.command("TELL @night-reg please come")).code == 250
    message = await dana.message()
    assert (message.sender, message.to, message.text) == ("eve", "@night-reg", "please come")
    chief, _ = await login(c.port, "chief")
    await settle(chief, eve)
    announced = await chief.command("ANNOUNCE fire drill at noon")
    assert announced.code == 200, announced
    for client in (dana, eve):
        announce = await client.event("ANNOUNCE")
        assert isinstance(announce, Event) and announce.rest(1) == "fire drill at noon"
    kicked = await chief.command("KICK eve for the test")
    assert kicked.code == 200, kicked
    closing = await eve.closed()
    assert b"CLOSING" in closing and b"kicked" in closing
    await settle(chief)
    assert "eve" not in (await chief.command("WHO")).items
    await dana.command("ONCALL LEAVE @night-reg")
    await dana.command("QUIT")
    await chief.command("QUIT")


async def test_one_role_taken_on_every_node_at_once_is_held_by_all(trio: list[Node]) -> None:
    """Each node changes the role before hearing of the others' changes: none may be lost, now or after the
    nodes read their state back from the database."""
    takers = [await node.client(name) for node, name in zip(trio, ("fay", "gus", "hal"), strict=True)]
    for round_ in range(3):
        role = f"@theatre-{round_}"
        replies = await asyncio.gather(*(taker.command(f"ONCALL TAKE {role}") for taker in takers))
        assert [reply.code for reply in replies] == [209, 209, 209], replies
    await settle(*takers)
    await asyncio.sleep(6)  # past a resync, which reads roles back from the database
    for taker in takers:
        listed = (await taker.command("ONCALL")).items
        for round_ in range(3):
            (holders,) = [item.split("holders=")[1] for item in listed if item.startswith(f"@theatre-{round_} ")]
            assert sorted(holders.split(",")) == ["fay", "gus", "hal"], listed
    for taker in takers:
        for round_ in range(3):
            await taker.command(f"ONCALL LEAVE @theatre-{round_}")
        await taker.command("QUIT")


async def test_a_guest_renamed_on_one_node_is_renamed_everywhere(trio: list[Node]) -> None:
    a, b, _ = trio
    ivy = await a.client("ivy")
    jon = await b.client("jon")
    assert (await ivy.command("JOIN #renames")).code == 203
    await settle(ivy, jon)
    assert (await ivy.command("NAME ivana")).code == 201
    renamed = await jon.event("RENAMED")
    assert isinstance(renamed, Event) and renamed.args == ("ivy", "ivana")
    await settle(ivy, jon)
    who = (await jon.command("WHO")).items
    assert any(item.startswith("ivana") for item in who) and not any(item.startswith("ivy ") for item in who)
    assert (await jon.command("WHO #renames")).items == ("ivana",)
    assert (await jon.command("NAME ivy")).code == 201  # the old name is free everywhere
    assert (await jon.command("TELL ivana found you")).code == 250
    assert (await ivy.message()).text == "found you"
    for client in (ivy, jon):
        await client.command("QUIT")


def _texts(items: list[Event | Message]) -> list[str]:
    return [item.text for item in items if isinstance(item, Message)]


@pytest.fixture
def pair(nats: NatsCluster) -> Iterator[list[Node]]:
    """Two nodes of their own, with a short lease, for the tests that kill or pause one."""
    with database() as db:
        asyncio.run(create_accounts(db, "alice", "bob"))
        with nodes(db, nats, 2, lease=3.0, first="p") as started:
            yield started


async def test_a_dead_nodes_people_go_offline_once_and_its_names_come_free(pair: list[Node]) -> None:
    a, b = pair
    ann = await a.client("ann")
    dora = await b.client("dora")
    await ann.event("ONLINE")
    newcomer = await a.client()
    assert (await newcomer.command("NAME dora")).code == 409
    b.kill()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    offline = await ann.event("OFFLINE", timeout=10)
    assert isinstance(offline, Event) and offline.args[0] == "dora"
    assert loop.time() - killed < 3.0 + 2.5  # the lease, then the next look at the live nodes
    assert (await newcomer.command("NAME dora")).code == 201
    assert isinstance(online := await ann.event("ONLINE"), Event) and online.args == ("dora",)
    await settle(ann)
    assert not [item for item in ann.events if isinstance(item, Event) and item.kind == "OFFLINE"]  # said once
    await dora.close()
    b.start()  # back under the same name: it waits out its old lease if need be, and joins in
    bert = await b.client("bert")
    online = await ann.event("ONLINE")
    assert isinstance(online, Event) and online.args == ("bert",)
    assert (await bert.command("TELL dora welcome back")).code == 250
    assert (await newcomer.message()).text == "welcome back"


async def test_a_node_paused_past_its_lease_gives_up_names_taken_meanwhile(pair: list[Node]) -> None:
    a, b = pair
    ann = await a.client("ann")
    fred = await b.client("fred")
    await settle(ann, fred)
    b.pause()
    try:
        offline = await ann.event("OFFLINE", timeout=10)
        assert isinstance(offline, Event) and offline.args[0] == "fred"
        second = await a.client("fred")  # the name is free: fred's node has lost its lease
    finally:
        b.resume()
    closing = await fred.closed(timeout=10)  # the paused node finds its lease gone and its claim taken
    assert b"CLOSING" in closing and b"given to someone else" in closing
    await settle(ann, second)
    who = await ann.command("WHO")
    assert who.items.count("fred") == 1, who
    assert (await ann.command("TELL fred still there?")).code == 250
    assert (await second.message()).text == "still there?"
    ginny = await b.client("ginny")  # the resumed node serves again, with a new lease
    assert (await ginny.command("TELL ann hello")).code == 250
    assert (await ann.message()).text == "hello"


async def _health(node: Node) -> dict[str, object]:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{node.http_port}/healthz")
    data: dict[str, object] = response.json()
    return data


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.2)


async def test_without_nats_a_node_serves_its_own_refuses_new_names_and_recovers() -> None:
    async with postgres_database() as db:
        await create_accounts(db, "alice")
        with nats_cluster() as bus, nodes(db, bus, 2, lease=3.0) as (a, b):
            ann = await a.client("ann")
            neighbour = await a.client("ned")
            ben = await b.client("ben")
            alice, _ = await login(b.port, "alice")
            await settle(ann, ben, alice)
            for server in bus.servers:
                server.kill()

            async def degraded() -> bool:
                return "DEGRADED" in str((await _health(a)).get("cluster", ""))

            await _eventually(degraded)
            newcomer = await a.client()
            refused = await newcomer.command("NAME newbie")
            assert refused.code == 453 and "other servers" in refused.text, refused
            assert (await ann.command("SAY said while the bus was away")).code == 250
            assert (await neighbour.message()).text == "said while the bus was away"  # served on its own node
            assert (await ann.command("TELL alice sent while the bus was away")).code == 250
            for server in bus.servers:
                server.start()

            async def recovered() -> bool:
                return "cluster ok" in str((await _health(a)).get("cluster", ""))

            await _eventually(recovered, timeout=40)
            caught_up = [await alice.message(timeout=15) for _ in range(2)]  # from the database: no signal came
            assert [m.text for m in caught_up] == ["said while the bus was away", "sent while the bus was away"]
            assert (await ben.message(timeout=15)).text == "said while the bus was away"
            for _ in range(50):
                reply = await newcomer.command("NAME newbie")
                if reply.code == 201:
                    break
                await asyncio.sleep(0.2)
            assert reply.code == 201, reply
            await settle(ben)
            assert "newbie" in (await ben.command("WHO")).items


async def test_urgent_pages_are_acknowledged_on_any_node(trio: list[Node]) -> None:
    a, _, c = trio
    ann = await a.client("uma")
    ward = await c.client("ward9")
    await settle(ann, ward)
    sent = await ward.command("URGENT uma VF arrest bay 4")
    assert sent.code == 250
    page = await ann.message()
    assert page.urgent and page.text == "VF arrest bay 4"
    await settle(ann)
    acked = await ann.command(f"ACK {page.id}")
    assert acked.code == 206 and "acknowledged" in acked.text, acked
    told = await ward.event("ACKED")
    assert isinstance(told, Event) and told.args == (str(page.id), "uma")
    assert "already acknowledged by uma" in (await ann.command(f"ACK {page.id}")).text


async def _audit_of(db: str, message_id: int) -> list[tuple[str, dict[str, object]]]:
    import json

    import asyncpg

    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch("SELECT kind, detail FROM audit WHERE subject = $1 ORDER BY id", str(message_id))
    finally:
        await conn.close()
    return [(row["kind"], json.loads(row["detail"])) for row in rows]


async def test_a_pages_alerts_go_on_once_each_when_its_senders_node_dies(nats: NatsCluster) -> None:
    async with postgres_database() as db:
        urgent = ("--urgent-interval", "1.5", "--urgent-attempts", "2")
        with nodes(db, nats, 3, lease=3.0, extra=urgent, first="u") as (u, v, w):
            ann = await u.client("ann")
            bea = await w.client("bea")
            sender = await v.client("ward")
            assert (await ann.command("BACKUP bea")).code == 207
            await settle(ann, bea, sender)
            assert (await sender.command("URGENT ann chest pain bay 1")).code == 250
            page = await ann.message()
            v.kill()  # the node that sent it, and so the first to keep its state, dies
            alert = await ann.event("ALERT", timeout=10)  # the second alert, from another node
            assert isinstance(alert, Event) and alert.args[0] == str(page.id)
            escalated = await bea.message(timeout=10)  # then on to ann's backup, once
            assert escalated.urgent and escalated.id == page.id and escalated.text == "chest pain bay 1"
            assert (await bea.command(f"ACK {page.id}")).code == 206
            await asyncio.sleep(4)  # two more intervals: nothing else may come
            entries = await _audit_of(db, page.id)
            alerts = [detail["round"] for kind, detail in entries if kind == "alert"]
            escalations = [detail["to"] for kind, detail in entries if kind == "escalation"]
            assert alerts == ["2/2"], entries
            assert escalations == ["bea"], entries
            assert [kind for kind, _ in entries].count("ack") == 1
            extra = [item for item in ann.events if isinstance(item, Event) and item.kind == "ALERT"]
            assert not extra, extra


async def test_a_client_that_knows_several_nodes_moves_to_another_and_misses_nothing(pair: list[Node]) -> None:
    p, q = pair
    alice = ChatClient(servers=[("127.0.0.1", p.port), ("127.0.0.1", q.port)], backoff=(0.2, 2.0))
    await alice.connect()
    await alice.login("alice", "alice-password")
    assert alice.server == f"127.0.0.1:{p.port}"
    bob, _ = await login(q.port, "bob")
    received: list[Message] = []

    async def read(count: int) -> None:
        async for event in alice.events():
            if isinstance(event, Message):
                received.append(event)
                if len(received) == count:
                    return

    try:
        for n in range(3):
            assert (await bob.command(f"TELL alice before {n}")).code == 250
        await asyncio.wait_for(read(3), 10)
        p.kill()
        for n in range(3):
            assert (await bob.command(f"TELL alice after {n}")).code == 250
        await asyncio.wait_for(read(6), 15)
        assert alice.server == f"127.0.0.1:{q.port}"
        assert [m.text for m in received] == [f"before {n}" for n in range(3)] + [f"after {n}" for n in range(3)]
        assert [m.seq for m in received] == list(range(1, 7))
    finally:
        await alice.close()


MACHINE_POSTGRES = os.path.isdir("/etc/postgresql")  # Debian's cluster, as on this machine and CI's


def _postgres(action: str) -> None:
    """Stop or start the machine's PostgreSQL (as the machine's own notes say it is started)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True,
                   capture_output=True, timeout=60)  # fmt: skip


async def test_a_postgresql_restart_answers_451_and_the_cluster_recovers_by_itself(pair: list[Node]) -> None:
    if not MACHINE_POSTGRES or os.geteuid() != 0:
        pytest.skip("needs the machine's own PostgreSQL and root to restart it")
    p, q = pair
    ann = await p.client("pgann")
    ben = await q.client("pgben")
    await settle(ann, ben)
    assert (await ann.command("TELL pgben before")).code == 250
    assert (await ben.message()).text == "before"
    await asyncio.get_running_loop().run_in_executor(None, _postgres, "stop")
    try:
        refused = await ann.command("TELL pgben while the database is down")
        assert refused.code == 451 and "NOT sent" in refused.text, refused
    finally:
        await asyncio.get_running_loop().run_in_executor(None, _postgres, "start")
    for _ in range(100):  # the pool reconnects by itself
        reply = await ann.command("TELL pgben after")
        if reply.code == 250:
            break
        await asyncio.sleep(0.2)
    assert reply.code == 250, reply
    assert (await ben.message(timeout=10)).text == "after"
    assert (await ben.command("TELL pgann and back")).code == 250
    assert (await ann.message(timeout=10)).text == "and back"
