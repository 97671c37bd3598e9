"""Ego server: tells each visitor its favourite colour, then hangs up.

python examples/ego_server.py localhost 8090
"""

from __future__ import annotations

import logging
import sys

from bleeper.framework import Connection, Server

FAVOURITE = "My favourite colour is blue. Goodbye!"


class EgoServer(Server):
    def on_connect(self, conn: Connection) -> None:
        conn.send(FAVOURITE)
        conn.close("said its piece")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: python {argv[0]} HOST PORT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    EgoServer(argv[1], int(argv[2])).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
