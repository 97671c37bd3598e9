"""State store throughput: requests per second for get and set with 50 concurrent clients.

    python benchmarks/statestore.py --clients 50 --seconds 5

Each client holds one keep-alive connection with one request in flight (a person's program waiting for its
answer), so throughput comes from the server handling many at once. Sets go to 1,000 keys (so writes to one
key also contend), through the REST API (PUT /keys/k) and the original URL API (GET /?action=set). The
baseline, measured in the same run, is the same HTTP stack (uvicorn with h11, Starlette) answering a constant
(benchmarks/http_floor.py): the ratio shows what the store itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import psutil
import uvloop
from harness import ROOT, free_port, machine, percentile, wait_for_port


class Requester(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, until the deadline."""

    def __init__(self, make: Callable[[int], bytes], deadline: float, latencies: list[float],
                 done: asyncio.Future[int]) -> None:  # fmt: skip
        self.make, self.deadline, self.latencies, self.done = make, deadline, latencies, done
        self.buffer = b""
        self.count = 0
        self.errors = 0
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.next()

    def next(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.deadline:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.transport.write(self.make(self.count))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        if not head.startswith((b"http/1.1 200", b"http/1.1 201")):
            self.errors += 1
        self.buffer = self.buffer[end + 4 + length :]
        self.count += 1
        self.latencies.append((time.perf_counter() - self.started) * 1000)
        self.next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.count - self.errors)


def request(method: str, path: str, body: bytes = b"") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + body  # fmt: skip


async def load(port: int, clients: int, seconds: float, make: Callable[[int, int], bytes]) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    futures = []
    started = time.perf_counter()
    for number in range(clients):
        done: asyncio.Future[int] = loop.create_future()
        futures.append(done)
        requester = Requester(functools.partial(make, number), deadline, latencies, done)
        await loop.create_connection(lambda r=requester: r, "127.0.0.1", port)  # type: ignore[misc]
    ok = sum(await asyncio.gather(*futures))
    wall = time.perf_counter() - started
    return {"ok": ok, "rate": ok / wall, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99)}


def serve(command: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def measure(label: str, proc: subprocess.Popen[bytes], port: int, clients: int, seconds: float,
            make: Callable[[int, int], bytes]) -> float:  # fmt: skip
    ps = psutil.Process(proc.pid)
    cpu0 = sum(ps.cpu_times()[:2])
    result = uvloop.run(load(port, clients, seconds, make))
    cpu = sum(ps.cpu_times()[:2]) - cpu0
    print(f"{label:<34} {result['rate']:>8,.0f} requests/s  server CPU {cpu:.2f}s  "
          f"latency p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms", flush=True)  # fmt: skip
    return result["rate"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"state store: {args.clients} concurrent clients, {args.seconds:g} s per measurement")

    port = free_port()
    floor = serve([sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "benchmarks"), "http_floor:app", "--port",
                   str(port), "--http", "h11", "--log-level", "warning", "--no-access-log"], port)  # fmt: skip
    try:
        baseline = measure("baseline: HTTP stack, constant", floor, port, args.clients, args.seconds,
                           lambda n, i: request("GET", "/keys/k"))  # fmt: skip
    finally:
        stop(floor)

    scratch = tempfile.mkdtemp(prefix="bench-statestore-")
    port = free_port()
    store = serve([sys.executable, "-m", "bleeper", "store", "serve", "--port", str(port), "--db",
                   os.path.join(scratch, "kv.db")], port)  # fmt: skip
    try:
        figures = {
            "set (PUT /keys/k)": measure("set (PUT /keys/k)", store, port, args.clients, args.seconds,
                                         lambda n, i: request("PUT", f"/keys/key{(n * 7919 + i) % 1000}", b"value %d" % i)),
            "set (GET /?action=set)": measure("set (GET /?action=set)", store, port, args.clients, args.seconds,
                                              lambda n, i: request("GET", f"/?action=set&key=key{(n * 7919 + i) % 1000}&value=v{i}")),
            "get (GET /keys/k)": measure("get (GET /keys/k)", store, port, args.clients, args.seconds,
                                         lambda n, i: request("GET", f"/keys/key{(n * 7919 + i) % 1000}")),
            "get (GET /?action=get)": measure("get (GET /?action=get)", store, port, args.clients, args.seconds,
                                              lambda n, i: request("GET", f"/?action=get&key=key{(n * 7919 + i) % 1000}")),
        }  # fmt: skip
    finally:
        stop(store)
        shutil.rmtree(scratch, ignore_errors=True)
    for label, rate in figures.items():
        print(f"{label:<34} {rate / baseline:.2f}x the baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
