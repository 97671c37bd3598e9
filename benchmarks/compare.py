"""Before and after: the same loads against an earlier revision and this working tree, in one run.

python benchmarks/compare.py --before <git revision> [--rounds 3]

A refactoring is judged by ratios measured side by side: this machine is shared and noisy, so the two
servers take turns (before, after, before, after...) and each figure is the median of its rounds. Three
loads, as in docs/performance.md: fan-out to 1,000 clients in one group, direct messages between pairs, and
durable acknowledged messages on SQLite. Server CPU per message is the steadier figure; messages per second
of wall time are printed too.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop
from direct import run_direct
from durable import prepare
from durable import run as run_durable
from fanout import run_fanout
from harness import ROOT, ServerProcess, machine

Load = Callable[[ServerProcess], Coroutine[Any, Any, tuple[float, float, float]]]  # messages, CPU s, wall s


async def fanout(server: ServerProcess) -> tuple[float, float, float]:
    r = await run_fanout(server, 1000, 10, 200, 20, None, 10.0, 20)
    return r["delivered"], r["cpu"], r["wall"]


async def direct(server: ServerProcess) -> tuple[float, float, float]:
    r = await run_direct(server, 100, 200, 20)
    return r["delivered"], r["cpu"], r["wall"]


async def durable(server: ServerProcess) -> tuple[float, float, float]:
    r = await run_durable(server, 100, 300)
    return r["acked"], r["cpu"], r["wall"]


LOADS: dict[str, tuple[Load, str]] = {
    "fan-out, 1,000 clients": (fanout, "deliveries"),
    "direct messages, 100 pairs": (direct, "messages"),
    "durable, 100 senders, SQLite": (durable, "acknowledged messages"),
}


def checkout(revision: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="bench-before-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(folder), revision], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    return folder


def measure(load: Load, src: str | None, durable_db: bool) -> tuple[float, float, float]:
    server = ServerProcess(None, src=src)
    if durable_db:
        uvloop.run(prepare(server.db))
    with server:
        return uvloop.run(load(server))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the git revision to compare with (e.g. a commit hash)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["fanout", "direct", "durable"], help="one load instead of all three")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    worktree = checkout(args.before)
    try:
        for name, (load, unit) in LOADS.items():
            if args.only and load.__name__ != args.only:
                continue
            per_cpu: dict[str, list[float]] = {"before": [], "after": []}
            per_second: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for side, src in (("before", str(worktree / "src")), ("after", None)):
                    count, cpu, wall = measure(load, src, load is durable)
                    per_cpu[side].append(count / cpu)
                    per_second[side].append(count / wall)
            for figures, what in ((per_cpu, "per server CPU-second"), (per_second, "per second")):
                before, after = (statistics.median(figures[side]) for side in ("before", "after"))
                rounds = "; ".join(f"{side} " + ", ".join(f"{v:,.0f}" for v in figures[side]) for side in figures)
                print(f"{name}: {unit} {what}, median of {args.rounds}: before {before:,.0f}, after {after:,.0f} "
                      f"({after / before - 1:+.1%}); rounds: {rounds}")  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
