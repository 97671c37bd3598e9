"""Stalled reader: the same fan-out with and without one member that never reads.

The others' latency and throughput must not change; the stalled member is cut off when its send buffer fills.

    python benchmarks/stalled.py --clients 100 --senders 10 --messages 1000
"""

from __future__ import annotations

import argparse
import socket

import uvloop
from fanout import run_fanout
from harness import ServerProcess, machine, summary, wait_for_port


def stalled_member(server: ServerProcess) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(server.dialect.register("stalled") + server.dialect.join("bench"))
    return sock


def was_cut_off(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        while sock.recv(1 << 20):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5000, help="enough to fill the kernel's buffers too")
    parser.add_argument("--window", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"stalled reader: {args.clients} clients, {args.senders} senders x {args.messages} messages")
    for with_stalled in (False, True):
        with ServerProcess() as server:
            wait_for_port(server.port)
            sock = stalled_member(server) if with_stalled else None
            r = uvloop.run(run_fanout(server, args.clients, args.senders, args.messages, args.window, None, 0, 10))
            label = "stalled" if with_stalled else "control"
            print(f"{label:<8} delivered {int(r['delivered'])} lost {int(r['lost'])}  "
                  f"{r['per_s'] / 1e6:.3f}M deliveries/s  latency {summary(r['latencies'])}")  # type: ignore[arg-type]  # fmt: skip
            if sock is not None:
                print(f"{'':<8} stalled member cut off by the server: {'yes' if was_cut_off(sock) else 'NO'}")
                sock.close()


if __name__ == "__main__":
    main()
