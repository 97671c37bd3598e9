"""``bleeper cluster status``: the nodes holding a lease, their people and connections, and how far behind each
is, read from the ``nodes`` bucket (each node writes what it says of itself there with every renewal)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bleeper.config import ConfigError, load_serve_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cluster",
        help="a cluster's nodes (cluster mode)",
        description="Cluster mode: several 'bleeper serve --cluster' nodes on one PostgreSQL database and NATS. "
        "See docs/operations.md, 'Cluster mode'.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="list the live nodes",
        description="List the nodes holding a lease: since when, their connections and people, how many "
        "messages each has yet to deliver (behind) and has read from the database because a signal did not "
        "come (caught up), and how long ago each last renewed its lease. Exit status 0 when NATS answered, 1 "
        "when it could not be reached.",
        epilog="Example: bleeper cluster status --cluster nats://10.0.0.5:4222,nats://10.0.0.6:4222",
    )
    status.add_argument("--cluster", metavar="URL[,URL]",
                        help="the NATS servers (as for 'bleeper serve'; env BLEEPER_CLUSTER, or the TOML file)")  # fmt: skip
    status.add_argument("--config", metavar="FILE", help="TOML settings file, as for 'bleeper serve'")
    status.add_argument("--json", action="store_true", help="one JSON object per node instead of a table")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    try:
        config = load_serve_config({"cluster": args.cluster}, args.config, check=False)
    except ConfigError as exc:
        print(f"bleeper cluster status: {exc}", file=sys.stderr)
        return 2
    servers = config.cluster_list()
    if not servers:
        print("bleeper cluster status: no NATS servers given: --cluster nats://host:4222 (or BLEEPER_CLUSTER)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        nodes = asyncio.run(read_nodes(servers))
    except Exception as exc:
        print(f"bleeper cluster status: cannot read the cluster from {', '.join(servers)}: {exc}; check that NATS "
              "runs there and that a node has started once", file=sys.stderr)  # fmt: skip
        return 1
    if args.json:
        for name, info in sorted(nodes.items()):
            print(json.dumps({"node": name, **info}, sort_keys=True))
        return 0
    print(table(nodes, time.time()))
    return 0


async def read_nodes(servers: list[str], prefix: str = "bleeper") -> dict[str, dict[str, Any]]:
    """Every node holding a lease, with what it says of itself."""
    import nats

    from bleeper.cluster.lease import leases

    async def quiet(exc: Exception) -> None:
        """Connection errors are reported once, by the caller."""

    client = await nats.connect(servers, connect_timeout=3, allow_reconnect=False, max_reconnect_attempts=1,
                                reconnect_time_wait=0.2, error_cb=quiet)  # fmt: skip
    try:
        return await leases(await client.jetstream(timeout=5).key_value(f"{prefix}-nodes"))
    finally:
        await client.close()


def table(nodes: dict[str, dict[str, Any]], now: float) -> str:
    if not nodes:
        return "no node holds a lease: none is running, or their leases expired"
    lines = [f"{'NODE':<16} {'SINCE (UTC)':<20} {'CONNECTIONS':>11} {'PEOPLE':>6} {'BEHIND':>6} {'CAUGHT UP':>9} "
             f"{'RENEWED':>8}"]  # fmt: skip
    for name, info in sorted(nodes.items()):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(info.get("since", 0)) / 1000))
        renewed = max(0.0, now - int(info.get("at", 0)) / 1000)
        lines.append(f"{name:<16} {since:<20} {info.get('connections', 0):>11} {info.get('people_here', 0):>6} "
                     f"{info.get('behind', 0):>6} {info.get('caught_up', 0):>9} {renewed:>6.1f} s")  # fmt: skip
    lines.append(f"{len(nodes)} node(s) live")
    return "\n".join(lines)
