"""Direct messages: P pairs, each side sending M private messages to its partner.

python benchmarks/direct.py --pairs 100 --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import time
from functools import partial

import uvloop
from fanout import send_bursts, wait_received
from harness import ServerProcess, Stats, available_baselines, machine, open_clients, settle, summary


async def run_direct(server: ServerProcess, pairs: int, messages: int, window: int) -> dict[str, float]:
    dialect = server.dialect
    stats = Stats()
    clients = await open_clients(server.port, dialect, pairs * 2, stats, track=pairs * 2, prefix="d")
    await settle(clients, dialect)
    stats.received = 0
    cpu0, wall0 = server.cpu(), time.monotonic()
    await asyncio.gather(*(
        send_bursts(c, server, partial(dialect.to_user, f"d{i ^ 1}"), messages, window, f"p{i}")
        for i, c in enumerate(clients)
    ))  # fmt: skip
    expected = pairs * 2 * messages
    await wait_received(stats, expected)
    wall, cpu = time.monotonic() - wall0, server.cpu() - cpu0
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    return {"sent": expected, "delivered": stats.received, "lost": expected - stats.received, "wall": wall,
            "cpu": cpu, "latencies": stats.latencies}  # type: ignore[dict-item]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--messages", type=int, default=500, help="per client")
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"direct messages: {args.pairs} pairs, {args.messages} messages each way, window {args.window}")
    for kind in [ServerProcess] + ([] if args.no_baseline else available_baselines()):
        with kind() as server:
            r = uvloop.run(run_direct(server, args.pairs, args.messages, args.window))
            print(f"{server.label:<9} delivered {int(r['delivered']):>8}  lost {int(r['lost'])}  "
                  f"{r['delivered'] / r['wall'] / 1e3:.1f}k messages/s  {r['delivered'] / r['cpu'] / 1e3:.1f}k per server CPU-s  "
                  f"server CPU {r['cpu']:.2f}s")  # fmt: skip
            print(f"{'':<9} latency {summary(r['latencies'])}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
