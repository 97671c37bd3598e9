"""Run every chat benchmark with the figures recorded in docs/performance.md (make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = [
    ["fanout.py", "--clients", "1000", "--senders", "10", "--messages", "1000"],
    ["fanout.py", "--clients", "100", "--senders", "10", "--rate", "20", "--seconds", "10", "--track", "100"],
    ["direct.py", "--pairs", "100", "--messages", "500"],
    ["stalled.py", "--clients", "100", "--senders", "10", "--messages", "5000"],
    ["idle.py", "--connections", "10000"],
    ["durable.py", "--senders", "100", "--messages", "200"],
    ["statestore.py", "--clients", "50", "--seconds", "4"],
    ["browse.py", "--runs", "31"],
]


def main() -> int:
    for args in RUNS:
        print(f"\n$ python benchmarks/{' '.join(args)}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]], cwd=HERE)
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
