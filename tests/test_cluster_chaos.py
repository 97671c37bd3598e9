"""Chaos under load: three nodes, three NATS servers, PostgreSQL; accounts, guests fighting over names, a group
and an urgent page, while nodes are SIGKILLed at random moments (and restarted) and one NATS server is killed.

Then the promises are checked against what the clients saw and what the database holds: every acknowledged
message reached each account recipient exactly once, every account's numbers are gapless, each urgent alert
step happened once, and no guest name ever had two live holders. ``BLEEPER_CHAOS_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from dataclasses import dataclass, field

import asyncpg
import pytest

from bleeper.client import BleeperError, ChatClient, Message
from tests.cluster_nodes import Node, nodes
from tests.helpers import LineClient, create_accounts
from tests.nats_cluster import nats_cluster
from tests.services import postgres_database

pytestmark = pytest.mark.timeout(300)

ACCOUNTS = [f"acc{index}" for index in range(6)]
PAGED = "acc5"  # receives one urgent page and does not acknowledge it until the end
INTERVAL = 2.0  # seconds between an urgent page's alerts, in this test
GUEST_NAMES = ["gst0", "gst1"]


@dataclass
class Holding:
    name: str
    start: float  # when the 201 came (monotonic)
    end: float = float("inf")  # when it sent QUIT or saw the connection close
    node: str = ""  # where, and when by the wall clock (to find it in the nodes' logs)
    at: str = ""


@dataclass
class Account:
    name: str
    client: ChatClient
    received: list[Message] = field(default_factory=list)
    reader: asyncio.Future[None] | None = None
    acked: list[tuple[str, int]] = field(default_factory=list)  # (to, message id) for each 250 it got


async def test_promises_hold_while_nodes_and_a_nats_server_are_killed_under_load() -> None:
    seed = int(os.environ.get("BLEEPER_CHAOS_SEED", time.time()))
    print(f"chaos seed {seed} (BLEEPER_CHAOS_SEED={seed} replays it)")
    rng = random.Random(seed)
    async with postgres_database() as db:
        await create_accounts(db, *ACCOUNTS)
        urgent = ("--urgent-interval", str(INTERVAL), "--urgent-attempts", "3")
        # The lease outlasts a NATS server's failover (a few seconds here, with everything on two cores): a
        # node cut off longer than its lease has its guests' names given to others (see docs/operations.md).
        with nats_cluster() as bus, nodes(db, bus, 3, lease=6.0, extra=urgent, first="x") as cluster:
            accounts = [await _account(name, cluster, rng) for name in ACCOUNTS]
            stop = asyncio.Event()
            holdings: list[Holding] = []
            page_id = await _page(accounts)
            load = [asyncio.ensure_future(_send(account, accounts, stop, rng)) for account in accounts[:4]]
            load += [asyncio.ensure_future(_guest(name, cluster, holdings, stop, random.Random(rng.random())))
                     for name in GUEST_NAMES for _ in range(2)]  # fmt: skip
            kills = await _chaos(cluster, bus.servers, rng)
            stop.set()
            await asyncio.gather(*load)
            await _settle(accounts, cluster)
            await _acknowledge(accounts[-1], page_id)

            assert kills >= 5
            await _check_delivery(db, accounts)
            await _check_alerts(db, page_id)
            _check_names(holdings)
            for account in accounts:
                await account.client.close()


async def _account(name: str, cluster: list[Node], rng: random.Random) -> Account:
    servers = [("127.0.0.1", node.port) for node in cluster]
    rng.shuffle(servers)
    client = ChatClient(servers=servers, backoff=(0.1, 1.0), timeout=3)
    await client.connect()
    await client.login(name, f"{name}-password")
    await client.join("#chaos")
    account = Account(name, client)

    async def read() -> None:
        async for event in client.events():
            if isinstance(event, Message):
                account.received.append(event)

    account.reader = asyncio.ensure_future(read())
    return account


async def _page(accounts: list[Account]) -> int:
    sender = accounts[0]
    reply = await sender.client.command(f"URGENT {PAGED} chest pain, bed 3")
    assert reply.code == 250, reply
    page_id = int(reply.text.split()[0])
    sender.acked.append((PAGED, page_id))
    return page_id


async def _send(account: Account, accounts: list[Account], stop: asyncio.Event, rng: random.Random) -> None:
    """Messages to other accounts and the group, as fast as acknowledgements come (resent with their ID over
    reconnects by the library)."""
    others = [other.name for other in accounts if other is not account]
    count = 0
    while not stop.is_set():
        to = rng.choice([*others, "#chaos"])
        count += 1
        try:
            sent = await account.client.tell(to, f"{account.name} message {count}")
        except BleeperError:
            await asyncio.sleep(0.1)
            continue
        account.acked.append((to, sent.id))
        await asyncio.sleep(rng.uniform(0.005, 0.03))


async def _guest(name: str, cluster: list[Node], holdings: list[Holding], stop: asyncio.Event,
                 rng: random.Random) -> None:  # fmt: skip
    """Two of these per name: each takes the name when it can, holds it a while (saying things), lets go."""
    while not stop.is_set():
        node = rng.choice(cluster)
        try:
            client = await LineClient.connect(node.port)
        except (OSError, AssertionError, TimeoutError):
            await asyncio.sleep(0.2)
            continue
        holding: Holding | None = None
        try:
            reply = await client.command(f"NAME {name}")
            if reply.code != 201:
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                continue
            holding = Holding(name, time.monotonic(), node=node.name, at=time.strftime("%H:%M:%S"))
            holdings.append(holding)
            for _ in range(rng.randint(1, 5)):
                await client.send(f"SAY {name} is here")
                await asyncio.sleep(rng.uniform(0.05, 0.3))
            holding.end = time.monotonic()  # from the moment QUIT leaves: the name is no longer counted on
            await client.send("QUIT")
            await client.closed(timeout=5)
        except (OSError, ConnectionError, TimeoutError, AssertionError):
            pass
        finally:
            if holding is not None and holding.end == float("inf"):
                holding.end = time.monotonic()  # its node died: the connection closed
            await client.close()


async def _chaos(cluster: list[Node], nats_servers: list, rng: random.Random) -> int:  # type: ignore[type-arg]
    """SIGKILL a random node at random moments, six times, restarting each; one NATS server dies midway."""
    kills = 0
    for round_ in range(6):
        await asyncio.sleep(rng.uniform(1.5, 3.0))
        victim = rng.choice(cluster)
        victim.kill()
        kills += 1
        if round_ == 2:
            rng.choice(nats_servers).kill()  # and stays down: the other two carry on
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await asyncio.get_running_loop().run_in_executor(None, victim.start)
    return kills


async def _settle(accounts: list[Account], cluster: list[Node]) -> None:
    """Wait until every account's client is connected and has stopped receiving (caught up)."""
    deadline = time.monotonic() + 40
    last = -1
    while time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        total = sum(len(account.received) for account in accounts)
        if total == last and all(account.client.state == "connected" for account in accounts):
            return
        last = total
    raise AssertionError("the clients did not settle: " + ", ".join(
        f"{a.name} {a.client.state} {len(a.received)}" for a in accounts) + "\n" + "\n".join(
        f"--- {node.name} ---\n{node.tail(30)}" for node in cluster))  # fmt: skip


async def _acknowledge(account: Account, page_id: int) -> None:
    reply = await account.client.command(f"ACK {page_id}")
    assert reply.code == 206, reply


async def _check_delivery(db: str, accounts: list[Account]) -> None:
    conn = await asyncpg.connect(db)
    try:
        last_seqs = {row["account_key"]: int(row["last_seq"]) for row in await conn.fetch("SELECT * FROM sequences")}
    finally:
        await conn.close()
    sent_to: dict[str, set[int]] = {account.name: set() for account in accounts}
    acknowledged = 0
    for account in accounts:
        for to, message_id in account.acked:
            acknowledged += 1
            targets = [other.name for other in accounts if other is not account] if to == "#chaos" else [to]
            for target in targets:
                sent_to[target].add(message_id)
    assert acknowledged > 100, f"too little load to prove anything: {acknowledged} messages"
    print(f"{acknowledged} messages acknowledged; received " + ", ".join(
        f"{a.name} {len(a.received)} (repeats dropped {a.client.repeats})" for a in accounts))  # fmt: skip
    for account in accounts:
        ids = [message.id for message in account.received]
        seqs = [message.seq for message in account.received]
        assert len(ids) == len(set(ids)), f"{account.name} got a message twice"
        missing = sent_to[account.name] - set(ids)
        assert not missing, f"{account.name} never got acknowledged messages {sorted(missing)[:10]}"
        assert sorted(seqs) == list(range(1, last_seqs.get(account.name, 0) + 1)), f"{account.name}: gaps"


async def _check_alerts(db: str, page_id: int) -> None:
    """Each step of the page once: the audit log's alerts name their step, and no step twice."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch("SELECT kind, detail, at_ms, id FROM audit WHERE subject = $1 AND kind IN ('alert', 'ack')"
                                " ORDER BY id", str(page_id))  # fmt: skip
    finally:
        await conn.close()
    steps = [json.loads(row["detail"])["step"] for row in rows if row["kind"] == "alert"]
    assert len(steps) >= 3, f"the page was not alerted on: {steps}"
    assert len(steps) == len(set(steps)), f"a step of the page was taken twice: {[tuple(row) for row in rows]}"
    assert [row["kind"] for row in rows].count("ack") == 1
    print(f"page {page_id}: alert steps {steps}, acknowledged once")


def _check_names(holdings: list[Holding]) -> None:
    assert len(holdings) > 4, "the guests never took their names"
    print(f"{len(holdings)} times a guest name was held")
    for name in GUEST_NAMES:
        held = sorted((h for h in holdings if h.name == name), key=lambda h: h.start)
        for earlier, later in itertools.pairwise(held):
            assert later.start >= earlier.end, f"{name} had two live holders: {earlier} and {later}"
