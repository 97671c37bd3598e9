"""``bleeper send``: one message from a script or an alerting system, then a clean goodbye."""

from __future__ import annotations

import getpass
import os
import ssl as ssl_module
import sys
from collections.abc import Sequence

from bleeper.client.errors import BleeperError, NameTaken
from bleeper.client.library import ChatClient


def default_name() -> str:
    user = "".join(ch for ch in getpass.getuser() if ch.isalnum() or ch in "_-.")[:20] or "script"
    return f"{user}-send"


async def send_once(
    host: str,
    port: int,
    to: str,
    text: str,
    name: str | None = None,
    *,
    ssl: ssl_module.SSLContext | None = None,
    servers: Sequence[tuple[str, int]] = (),
) -> int:
    """Connect (to the first of *servers* that answers, when given), take a name, send, quit. Exit status 0
    when the server accepted the message."""
    client = ChatClient(host, port, reconnect=False, ssl=ssl, servers=servers)
    try:
        await client.connect()
        wanted = name or default_name()
        try:
            await client.register(wanted)
        except NameTaken as taken:
            await client.register(taken.suggestion)
        sent = await (client.say(text) if to in ("*", "everyone") else client.tell(to, text))
        print(f"sent message {sent.id} to {to} as {client.name} (reached {sent.reached})")
        await client.quit()
        return 0
    except BleeperError as exc:
        print(f"bleeper send: {exc}", file=sys.stderr)
        await client.close()
        return 1
    finally:
        if os.environ.get("BLEEPER_DEBUG"):
            print(f"state: {client.state}", file=sys.stderr)
