"""Idle connections: server RSS per registered, idle connection.

python benchmarks/idle.py --connections 10000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

import uvloop
from harness import ServerProcess, Stats, available_baselines, machine, open_clients, settle


async def run_idle(server: ServerProcess, count: int) -> dict[str, float]:
    stats = Stats()
    # Warm up: one client, so the first-use allocations are in the baseline.
    warm = await open_clients(server.port, server.dialect, 1, stats, prefix="w")
    await settle(warm, server.dialect)
    await asyncio.sleep(0.5)
    before = server.rss()
    started = time.monotonic()
    clients = await open_clients(server.port, server.dialect, count, stats, prefix="i", batch=100)
    for client in clients:
        client.parse = False
    await settle(clients, server.dialect)
    setup = time.monotonic() - started
    await asyncio.sleep(1.0)
    after = server.rss()
    for client in clients + warm:
        if client.transport is not None:
            client.transport.close()
    gc.collect()
    return {"before": before, "after": after, "per_conn": (after - before) / count, "setup": setup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"idle: {args.connections} registered connections")
    for kind in [ServerProcess] + ([] if args.no_baseline else available_baselines()):
        with kind() as server:
            r = uvloop.run(run_idle(server, args.connections))
            print(f"{server.label:<9} RSS {r['before'] / 2**20:.1f} MiB -> {r['after'] / 2**20:.1f} MiB: "
                  f"{r['per_conn'] / 1024:.2f} KiB per connection (set-up {r['setup']:.1f}s)")  # fmt: skip


if __name__ == "__main__":
    main()
