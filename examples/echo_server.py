"""Echo server: sends each line back in upper case.

python examples/echo_server.py localhost 8090
telnet localhost 8090
"""

from __future__ import annotations

import logging
import sys

from bleeper.framework import Connection, Server

log = logging.getLogger("echo")


class EchoServer(Server):
    async def on_start(self) -> None:
        log.info("echo server listening on %s", self.addresses)

    def on_connect(self, conn: Connection) -> None:
        log.info("connect %s (%d active)", conn.address, len(self.connections))

    def on_message(self, conn: Connection, line: str) -> None:
        conn.send(line.upper())

    def on_disconnect(self, conn: Connection, reason: str) -> None:
        log.info("disconnect %s: %s (%d active)", conn.address, reason, len(self.connections))

    async def on_stop(self) -> None:
        log.info("echo server stopping")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: python {argv[0]} HOST PORT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    EchoServer(argv[1], int(argv[2])).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
