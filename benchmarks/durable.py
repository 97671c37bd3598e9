"""Durable throughput: messages acknowledged (250) only after their commit, with many concurrent senders.

    python benchmarks/durable.py --senders 100 --messages 300 --rounds 5   # SQLite, then PostgreSQL if reachable
    python benchmarks/durable.py --postgres postgresql://root@127.0.0.1/postgres

Every message goes to an account that is offline, so each is a message row plus an inbox row and a sequence
update, committed before the server answers. Each sender waits for its 250 before sending again, as a person
would, so throughput comes from group commit across senders. Figures on this shared virtual machine swing by
15% from run to run, so the benchmark runs several rounds against one server and reports their median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg
import uvloop
from harness import ServerProcess, machine, percentile

from bleeper.chat.records import NewMessage
from bleeper.store import open_store


async def prepare(db: str) -> None:
    store = await open_store(db)
    try:
        await store.create_account("ward", "ward", "not-a-real-hash", False, int(time.time() * 1000))
    finally:
        await store.close()


async def one_commit_each(db: str, count: int) -> float:
    """The baseline, measured in the same run: the same store and schema writing one message per transaction,
    as a server without group commit would. Messages per second."""
    store = await open_store(db)
    try:
        started = time.perf_counter()
        for number in range(count):
            await store.store_messages([
                NewMessage(f"sender{number % 100}", None, "ward", f"@sender{number % 100},ward",
                           f"{number} observation recorded, all stable", int(time.time() * 1000), ("ward",))
            ])  # fmt: skip
        return count / (time.perf_counter() - started)
    finally:
        await store.close()


class Sender(asyncio.Protocol):
    """One sender with one message in flight: sends, waits for its reply, sends the next. A protocol rather
    than streams, and a fast path for the usual single reply line, so the load generator leaves as much of the
    two cores as it can to the server."""

    def __init__(self, number: int, count: int, latencies: list[float], done: asyncio.Future[int]) -> None:
        self.number, self.count, self.latencies, self.done = number, count, latencies, done
        self.buffer = b""
        self.sent = self.acked = 0
        self.started = 0.0
        self.named = False
        self.transport: asyncio.Transport | None = None
        self.prefix = b"TELL ward %d-" % number

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(f"NAME sender{self.number}\r\n".encode())  # type: ignore[attr-defined]

    def next(self) -> None:
        assert self.transport is not None
        if self.sent == self.count:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(self.acked)
            return
        self.started = time.perf_counter()
        self.transport.write(self.prefix + b"%d observation recorded, all stable\r\n" % self.sent)
        self.sent += 1

    def data_received(self, data: bytes) -> None:
        if not self.buffer and data.startswith(b"250 ") and data.find(b"\n") == len(data) - 1:
            self.acked += 1  # the usual case: exactly one acknowledgement
            self.latencies.append((time.perf_counter() - self.started) * 1000)
            self.next()
            return
        lines = (self.buffer + data).split(b"\r\n")
        self.buffer = lines.pop()
        for line in lines:
            if line.startswith(b"201 ") and not self.named:
                self.named = True
                self.next()
            elif line.startswith(b"250 "):
                self.acked += 1
                self.latencies.append((time.perf_counter() - self.started) * 1000)
                self.next()
            elif line[:1].isdigit() and not line.startswith(b"220 "):
                self.next()  # refused: count it as not acknowledged and go on

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.acked)


async def sender(port: int, number: int, count: int, latencies: list[float]) -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    await loop.create_connection(lambda: Sender(number, count, latencies, done), "127.0.0.1", port)
    return await done


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
    parser.add_argument("--messages", type=int, default=300, help="per sender, per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds against one server; the database grows")
    parser.add_argument("--baseline", type=int, default=2000, help="messages for the one-commit-each baseline")
    parser.add_argument("--postgres", default="postgresql://root@127.0.0.1:5432/postgres", help="admin URL")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"durable: {args.senders} senders x {args.messages} messages, each acknowledged after its commit")
    # The SQLite writer thread (--db-writer thread) is measured in the same run as the default writer process.
    backends: list[tuple[str, str | None, tuple[str, ...]]] = [
        ("SQLite", None, ()), ("SQLite/thread", None, ("--db-writer", "thread"))
    ]  # fmt: skip
    pg = uvloop.run(postgres_database(args.postgres))
    if pg is not None:
        backends.append(("PostgreSQL", pg[0], ()))
    try:
        for label, db, options in backends:
            server = ServerProcess(db, *options)
            uvloop.run(prepare(server.db))  # before the server starts, so it knows the account
            baseline = uvloop.run(one_commit_each(server.db, args.baseline))
            print(f"{label:<13} baseline, one commit per message, store alone: {baseline:,.0f} messages/s")
            with server:
                rates = []
                for number in range(1, args.rounds + 1):
                    r = uvloop.run(run(server, args.senders, args.messages))
                    rates.append(r["acked"] / r["wall"])
                    print(f"{label:<13} round {number}: acked {int(r['acked'])}  {rates[-1]:,.0f} messages/s  "
                          f"server CPU {r['cpu']:.2f}s ({r['acked'] / r['cpu']:,.0f} per CPU-s)  "
                          f"ack latency p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms")  # fmt: skip
                median = statistics.median(rates)
                print(f"{label:<13} median {median:,.0f} messages/s (range {min(rates):,.0f}-{max(rates):,.0f} "
                      f"over {len(rates)} rounds), {median / baseline:.1f}x the baseline")  # fmt: skip
    finally:
        if pg is not None:
            uvloop.run(drop(args.postgres, pg[1]))


if __name__ == "__main__":
    main()
