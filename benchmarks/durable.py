"""Durable throughput: messages acknowledged (250) only after their commit, with many concurrent senders.

    python benchmarks/durable.py --senders 100 --messages 200            # SQLite, then PostgreSQL if reachable
    python benchmarks/durable.py --postgres postgresql://root@127.0.0.1/postgres

Every message goes to an account that is offline, so each is a message row plus an inbox row and a sequence
update, committed before the server answers. A connection has one message in flight at a time (the server
holds its next line until the commit), so throughput comes from group commit across senders.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import asyncpg
import uvloop
from harness import ServerProcess, machine, percentile

from bleeper.store import open_store


async def prepare(db: str) -> None:
    store = await open_store(db)
    try:
        await store.create_account("ward", "ward", "not-a-real-hash", False, int(time.time() * 1000))
    finally:
        await store.close()


async def sender(port: int, number: int, count: int, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(f"NAME sender{number}\r\n".encode())
    while not (await reader.readline()).startswith(b"201 "):
        pass
    acked = 0
    for index in range(count):
        started = time.perf_counter()
        writer.write(f"TELL ward {number}-{index} observation recorded, all stable\r\n".encode())
        line = await reader.readline()
        while not line[:1].isdigit():  # events (others coming online) are not the reply
            line = await reader.readline()
        if line.startswith(b"250 "):
            acked += 1
            latencies.append((time.perf_counter() - started) * 1000)
    writer.close()
    return acked


async def run(server: ServerProcess, senders: int, messages: int) -> dict[str, float]:
    latencies: list[float] = []
    cpu0, wall0 = server.cpu(), time.perf_counter()
    acked = sum(await asyncio.gather(*(sender(server.port, n, messages, latencies) for n in range(senders))))
    wall, cpu = time.perf_counter() - wall0, server.cpu() - cpu0
    return {
        "acked": acked,
        "wall": wall,
        "cpu": cpu,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
    }


async def postgres_database(admin_url: str) -> tuple[str, str] | None:
    name = f"bleeper_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL not reachable at {admin_url} ({exc}); skipping it")
        return None
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return f"{admin_url.rpartition('/')[0]}/{name}", name


async def drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200, help="per sender")
    parser.add_argument("--postgres", default="postgresql://root@127.0.0.1:5432/postgres", help="admin URL")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"durable: {args.senders} senders x {args.messages} messages, each acknowledged after its commit")
    backends: list[tuple[str, str | None]] = [("SQLite", None)]
    pg = uvloop.run(postgres_database(args.postgres))
    if pg is not None:
        backends.append(("PostgreSQL", pg[0]))
    try:
        for label, db in backends:
            server = ServerProcess(db)
            uvloop.run(prepare(server.db))  # before the server starts, so it knows the account
            with server:
                r = uvloop.run(run(server, args.senders, args.messages))
                print(f"{label:<10} acked {int(r['acked'])}  {r['acked'] / r['wall']:,.0f} messages/s  "
                      f"server CPU {r['cpu']:.2f}s ({r['acked'] / r['cpu']:,.0f} per CPU-s)  "
                      f"ack latency p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms")  # fmt: skip
    finally:
        if pg is not None:
            uvloop.run(drop(args.postgres, pg[1]))


if __name__ == "__main__":
    main()
