"""A small asyncio framework for line-based servers and clients.

Subclass :class:`Server` (or :class:`Client`) and override the ``on_*`` hooks you need::

    class Echo(Server):
        def on_message(self, conn, line):
            conn.send(line.upper())

    Echo("127.0.0.1", 8090).run()

``conn.send`` never blocks: it appends to a bounded per-connection buffer that is written once per
event-loop turn; a connection whose buffer overflows is dropped and everyone else carries on.
"""

from bleeper.framework.client import Client
from bleeper.framework.connection import Connection, Endpoint
from bleeper.framework.runner import run
from bleeper.framework.server import Server

__all__ = ["Client", "Connection", "Endpoint", "Server", "run"]
