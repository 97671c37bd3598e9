"""The chat domain's own cost per message, without sockets or a store: an earlier revision against this tree.

python benchmarks/hub_path.py --before <git revision> [--rounds 5]

The server-level loads (compare.py) measure what a deployment sees, where the hub is a fraction of each
message's cost beside the system calls; this isolates that fraction. 100 pairs of guests on one in-memory
hub (peers that only count writes, the in-memory backend) TELL each other; each side runs in a fresh Python
process importing its own ``src/``, the two alternate, and the figure is the best of each side's runs (the
least disturbed by this shared machine), in microseconds of CPU per message handled, reply and delivery
included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from compare import checkout
from harness import ROOT, machine

DRIVER = """
import sys, time
from bleeper.chat import Hub, HubLimits

class Peer:
    __slots__ = ("writes",)
    def __init__(self): self.writes = 0
    def write(self, data): self.writes += 1
    def close(self, reason): pass

hub = Hub(HubLimits(rate=0))
pairs = []
for i in range(100):
    a = hub.connect(Peer(), f"10.0.0.{i}:1", f"10.0.0.{i}")
    b = hub.connect(Peer(), f"10.0.1.{i}:1", f"10.0.1.{i}")
    hub.handle(a, f"NAME a{i}")
    hub.handle(b, f"NAME b{i}")
    pairs.append((a, b, f"TELL b{i} bed 4 bloods are back, please review", f"TELL a{i} on my way"))
best = float("inf")
for _ in range(5):
    started = time.process_time()
    for _ in range(50):
        for a, b, there, back in pairs:
            hub.handle(a, there)
            hub.handle(b, back)
    best = min(best, time.process_time() - started)
print(best / (50 * 200) * 1e6)
"""


def per_message(src: str) -> float:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the git revision to compare with (e.g. a commit hash)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    worktree = checkout(args.before)
    try:
        figures: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            for side, src in (("before", worktree / "src"), ("after", ROOT / "src")):
                figures[side].append(per_message(str(src)))
        before, after = min(figures["before"]), min(figures["after"])
        rounds = "; ".join(f"{side} " + ", ".join(f"{v:.2f}" for v in figures[side]) for side in figures)
        print(f"hub path, direct messages between guests: CPU microseconds per message, best of {args.rounds}: "
              f"before {before:.2f}, after {after:.2f} ({after / before - 1:+.1%}); rounds: {rounds}")  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
