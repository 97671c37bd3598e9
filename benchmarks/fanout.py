"""Fan-out: N clients in one group, S of them sending M messages each. Deliveries/s, per server CPU-second,
latency and losses.

    python benchmarks/fanout.py --clients 1000 --senders 10 --messages 500        # throughput
    python benchmarks/fanout.py --clients 100 --senders 10 --rate 20 --seconds 10  # latency at light load
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from functools import partial

import uvloop
from harness import (
    LoadClient,
    ServerProcess,
    Stats,
    available_baselines,
    machine,
    open_clients,
    settle,
    summary,
)

PAD = "x" * 60


async def send_bursts(
    client: LoadClient, server: ServerProcess, message: Callable[[str], bytes], count: int, window: int, tag: str
) -> None:
    """Send *count* messages (``message(text)`` makes one) in bursts of *window*, each followed by a PING round
    trip: works in any dialect, and no server is asked to buffer more than a burst per sender."""
    dialect = server.dialect
    sent = 0
    burst = 0
    while sent < count:
        n = min(window, count - sent)
        data = b"".join(message(f"t{time.monotonic_ns()} {PAD}") for _ in range(n))
        burst += 1
        await client.send_and_wait(data + dialect.ping(f"{tag}b{burst}"), dialect.pong_marker(f"{tag}b{burst}"))
        sent += n


async def send_paced(client: LoadClient, server: ServerProcess, group: str, rate: float, seconds: float) -> int:
    dialect = server.dialect
    interval = 1.0 / rate
    start = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - start < seconds:
        client.write(dialect.to_group(group, f"t{time.monotonic_ns()} {PAD}"))
        sent += 1
        next_at = start + sent * interval
        await asyncio.sleep(max(0.0, next_at - now))
    return sent


async def wait_received(stats: Stats, expected: int, stall: float = 15.0) -> None:
    last, last_change = -1, time.monotonic()
    while stats.received < expected:
        if stats.received != last:
            last, last_change = stats.received, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return
        await asyncio.sleep(0.01)


async def run_fanout(
    server: ServerProcess, clients_n: int, senders_n: int, messages: int, window: int,
    rate: float | None, seconds: float, track: int,
) -> dict[str, float]:  # fmt: skip
    dialect = server.dialect
    stats = Stats()
    clients = await open_clients(server.port, dialect, clients_n, stats, track=track, group="bench")
    for client in clients[track:]:
        client.parse = False
    await settle(clients, dialect)
    stats.received = 0
    stats.latencies.clear()
    senders = clients[-senders_n:]
    for sender in senders:
        sender.parse = True  # to see its PONGs promptly
    cpu0, wall0 = server.cpu(), time.monotonic()
    if rate is None:
        await asyncio.gather(
            *(
                send_bursts(s, server, partial(dialect.to_group, "bench"), messages, window, f"s{i}")
                for i, s in enumerate(senders)
            )
        )
        sent = messages * senders_n
    else:
        sent = sum(await asyncio.gather(*(send_paced(s, server, "bench", rate, seconds) for s in senders)))
    expected = sent * (clients_n - 1)
    await wait_received(stats, expected)
    wall, cpu = time.monotonic() - wall0, server.cpu() - cpu0
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return {
        "sent": sent, "expected": expected, "delivered": stats.received, "lost": expected - stats.received,
        "wall": wall, "cpu": cpu, "per_s": stats.received / wall, "per_cpu_s": stats.received / cpu if cpu else 0.0,
        "latencies": stats.latencies,  # type: ignore[dict-item]
    }  # fmt: skip


def report(label: str, result: dict[str, float]) -> None:
    print(
        f"{label:<9} sent {int(result['sent']):>7}  delivered {int(result['delivered']):>9}  lost {int(result['lost'])}  "
        f"{result['per_s'] / 1e6:.3f}M deliveries/s  {result['per_cpu_s'] / 1e6:.3f}M per server CPU-s  "
        f"server CPU {result['cpu']:.2f}s  wall {result['wall']:.2f}s"
    )
    print(f"{'':<9} latency {summary(result['latencies'])}")  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=500, help="per sender (throughput mode)")
    parser.add_argument("--window", type=int, default=20, help="messages per burst before a PING round trip")
    parser.add_argument("--rate", type=float, help="messages/s per sender: light-load latency mode")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--track", type=int, default=20, help="receivers that record latency")
    parser.add_argument("--no-baseline", action="store_true", help="skip the IRC servers")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    mode = (
        f"{args.rate:g} msg/s per sender for {args.seconds:g}s"
        if args.rate
        else f"{args.messages} messages per sender, window {args.window}"
    )
    print(f"fan-out: {args.clients} clients in one group, {args.senders} senders, {mode}")
    servers: list[type[ServerProcess]] = [ServerProcess] + ([] if args.no_baseline else available_baselines())
    for kind in servers:
        with kind() as server:
            result = uvloop.run(run_fanout(server, args.clients, args.senders, args.messages, args.window,
                                           args.rate, args.seconds, args.track))  # fmt: skip
            report(server.label, result)


if __name__ == "__main__":
    main()
