"""Cluster mode: the same loads on one node and spread over three, a message crossing nodes, and failover.

python benchmarks/cluster.py [--pairs 60] [--messages 100] [--group 300] [--senders 4] [--sends 25]
                             [--clients 300] [--only direct,fanout,latency,failover]

Needs PostgreSQL (BLEEPER_TEST_POSTGRES, as the tests) and nats-server; starts three nats-server processes and
the Bleeper nodes itself. Every figure is measured in the same run as its baseline (one node, on the same
database and NATS), since this machine is shared and noisy:

- direct messages between pairs, and a group's fan-out, on one node, then with the clients spread over three
  nodes: deliveries per server CPU-second, summed over the nodes (this box has 2 cores: efficiency, not
  speed-up);
- light load: one message at a time from one client to another on the same node, then on another node:
  latency percentiles;
- failover: guests on one node that is SIGKILLed, each knowing all three servers: how long until every one
  is connected to another node, and until each has its name back (which waits for the dead node's lease).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import Any

import asyncpg
import uvloop
from fanout import send_bursts, wait_received
from harness import ROOT, ServerProcess, Stats, machine, open_clients, percentile, settle

sys.path.insert(0, str(ROOT))
from tests.nats_cluster import NatsCluster, nats_cluster

ADMIN_URL = os.environ.get("BLEEPER_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")
LEASE = 3.0
Load = Callable[[list["Node"]], Coroutine[Any, Any, tuple[int, float, float]]]  # deliveries, CPU s, wall s


class Node(ServerProcess):
    """A Bleeper node of the benchmark's cluster."""

    def __init__(self, db: str, nats: NatsCluster, name: str) -> None:
        super().__init__(db, "--cluster", nats.urls, "--node", name, "--cluster-lease", str(LEASE))
        self.label = f"node {name}"


@contextlib.contextmanager
def database() -> Iterator[str]:
    name = f"bleeper_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield ADMIN_URL.rpartition("/")[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def nodes(db: str, nats: NatsCluster, count: int) -> Iterator[list[Node]]:
    started: list[Node] = []
    try:
        for index in range(count):
            node = Node(db, nats, f"bench{index}")
            node.__enter__()
            started.append(node)
        yield started
    finally:
        for node in started:
            node.__exit__()


async def direct(servers: list[Node], pairs: int, messages: int) -> tuple[int, float, float]:
    """Each client sends to its partner; partners are on different nodes when there are several."""
    dialect = servers[0].dialect
    stats = Stats()
    clients = []
    for index in range(pairs * 2):
        server = servers[index % len(servers)]
        clients += await open_clients(server.port, dialect, 1, stats, track=1, prefix=f"d{index}x")
    await settle(clients, dialect)
    stats.received = 0
    cpu0, wall0 = sum(s.cpu() for s in servers), time.monotonic()
    await asyncio.gather(*(
        send_bursts(c, servers[i % len(servers)], partial(dialect.to_user, f"d{i ^ 1}x0"), messages, 20, f"p{i}")
        for i, c in enumerate(clients)
    ))  # fmt: skip
    await wait_received(stats, pairs * 2 * messages)
    wall, cpu = time.monotonic() - wall0, sum(s.cpu() for s in servers) - cpu0
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return stats.received, cpu, wall


async def fanout(
    servers: list[Node], members: int, senders: int, messages: int, group: str
) -> tuple[int, float, float]:
    """*members* clients in one group, spread over the nodes; *senders* of them send *messages* each."""
    dialect = servers[0].dialect
    stats = Stats()
    clients = []
    for index in range(members):
        server = servers[index % len(servers)]
        clients += await open_clients(server.port, dialect, 1, stats, track=1, prefix=f"{group}{index}x",
                                      group=group)  # fmt: skip
    await settle(clients, dialect)
    await asyncio.sleep(1.0)  # the members' presence reaches every node
    stats.received = 0
    cpu0, wall0 = sum(s.cpu() for s in servers), time.monotonic()
    await asyncio.gather(*(
        send_bursts(clients[i], servers[i % len(servers)], partial(dialect.to_group, group), messages, 5, f"f{i}")
        for i in range(senders)
    ))  # fmt: skip
    await wait_received(stats, senders * messages * (members - 1))
    wall, cpu = time.monotonic() - wall0, sum(s.cpu() for s in servers) - cpu0
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return stats.received, cpu, wall


async def latency(sender_port: int, receiver_port: int, count: int) -> list[float]:
    """One message at a time; the time from sending to the recipient reading it, in ms."""
    name = f"r{uuid.uuid4().hex[:6]}"
    reader, writer = await asyncio.open_connection("127.0.0.1", receiver_port)
    await reader.readline()
    writer.write(f"NAME {name}\r\n".encode())
    await reader.readline()
    s_reader, s_writer = await asyncio.open_connection("127.0.0.1", sender_port)
    await s_reader.readline()
    s_writer.write(f"NAME s{name}\r\n".encode())
    await s_reader.readline()
    await asyncio.sleep(0.5)  # the newcomers' presence reaches the other node
    times = []
    for n in range(count):
        started = time.perf_counter()
        s_writer.write(f"TELL {name} ping {n}\r\n".encode())
        while True:
            line = await reader.readline()
            if line.startswith(b"MSG "):
                break
        times.append((time.perf_counter() - started) * 1000)
        await s_reader.readline()  # the 250
        await asyncio.sleep(0.01)
    for w in (writer, s_writer):
        w.close()
    return times


async def failover(servers: list[Node], count: int) -> dict[str, float]:
    """*count* guests on servers[0], each knowing every server; SIGKILL servers[0]."""
    from bleeper.client import ChatClient, Connected

    order = [("127.0.0.1", s.port) for s in servers]
    clients = [ChatClient(servers=order, backoff=(0.1, 1.0), timeout=3) for _ in range(count)]
    for start in range(0, count, 100):
        await asyncio.gather(*(c.connect() for c in clients[start : start + 100]))
        await asyncio.gather(*(c.register(f"g{start + i}") for i, c in enumerate(clients[start : start + 100])))
    back: list[float] = []
    named: list[float] = []

    async def watch(client: ChatClient) -> None:
        async for event in client.events():
            if isinstance(event, Connected) and event.again:
                back.append(time.monotonic())
                named.append(time.monotonic())  # Connected again comes once the name is taken back
                return

    watchers = [asyncio.ensure_future(watch(c)) for c in clients]
    await asyncio.sleep(0.5)
    victim = servers[0]
    assert victim.proc is not None
    killed = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    victim.proc = None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*watchers), 60)
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
    done = max(named) - killed if len(named) == count else float("nan")
    return {
        "clients": count,
        "back": len(named),
        "all_named_s": done,
        "after_lease_s": done - LEASE if len(named) == count else float("nan"),
    }


def ratio(cluster: tuple[int, float, float], single: tuple[int, float, float]) -> str:
    per_cpu = cluster[0] / cluster[1], single[0] / single[1]
    return f"{per_cpu[0] / 1e3:.1f}k vs {per_cpu[1] / 1e3:.1f}k per server CPU-s: {per_cpu[0] / per_cpu[1]:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--group", type=int, default=300, help="members of the fan-out group")
    parser.add_argument("--senders", type=int, default=4, help="members of the group who send")
    parser.add_argument("--sends", type=int, default=25, help="messages each sender sends to the group")
    parser.add_argument("--clients", type=int, default=300, help="guests on the node killed for failover")
    parser.add_argument("--pings", type=int, default=300)
    parser.add_argument("--only", default="direct,fanout,latency,failover", help="which loads, comma-separated")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"machine: {machine()}")
    random.seed(1)
    with nats_cluster() as nats, database() as db, nodes(db, nats, 3) as servers:
        time.sleep(LEASE)  # every node's lease renewed for a whole lease: they judge each other from now on
        loads: list[tuple[str, str, Load]] = [
            ("direct", f"direct, {args.pairs} pairs x {args.messages} each way",
             lambda s: direct(s, args.pairs, args.messages)),
            ("fanout", f"fan-out, {args.group} members, {args.senders} senders x {args.sends}",
             lambda s: fanout(s, args.group, args.senders, args.sends, f"g{uuid.uuid4().hex[:4]}")),
        ]  # fmt: skip
        for _, label, run in (load for load in loads if load[0] in only):
            one = uvloop.run(run(servers[:1]))
            three = uvloop.run(run(servers))
            print(f"{label}: one node {one[0]} deliveries, {one[1]:.2f} CPU-s; three nodes {three[0]} deliveries, "
                  f"{three[1]:.2f} CPU-s; three vs one: {ratio(three, one)}")  # fmt: skip
        if "latency" in only:
            same = uvloop.run(latency(servers[0].port, servers[0].port, args.pings))
            across = uvloop.run(latency(servers[0].port, servers[1].port, args.pings))
            for label, values in (("same node", same), ("across nodes", across)):
                print(f"light load, {label}: p50 {statistics.median(values):.2f} ms, "
                      f"p99 {percentile(values, 99):.2f} ms")  # fmt: skip
        if "failover" not in only:
            return
        result = uvloop.run(failover(servers, args.clients))
        print(f"failover, {result['clients']} guests on the killed node: {result['back']} back on another node "
              f"with their names {result['all_named_s']:.2f} s after the kill ({result['after_lease_s']:.2f} s after "
              f"the lease of {LEASE:g} s)")  # fmt: skip


if __name__ == "__main__":
    main()
