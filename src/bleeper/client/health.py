"""``bleeper health``: log in as an administrator, ask the server for its vital signs, print them."""

from __future__ import annotations

import getpass
import os
import ssl as ssl_module
import sys
from collections.abc import Sequence

from bleeper.client.errors import BleeperError
from bleeper.client.library import ChatClient


def admin_password(name: str) -> str | None:
    """``BLEEPER_PASSWORD`` for scripts and monitoring; otherwise asked for on the terminal."""
    password = os.environ.get("BLEEPER_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        return None
    return getpass.getpass(f"password for {name}: ")


async def check_health(
    host: str,
    port: int,
    name: str,
    *,
    ssl: ssl_module.SSLContext | None = None,
    servers: Sequence[tuple[str, int]] = (),
) -> int:
    """Exit status 0 with the report printed; 1 when the server cannot be reached or refuses."""
    password = admin_password(name)
    if password is None:
        print("bleeper health: no password: set BLEEPER_PASSWORD or run it on a terminal", file=sys.stderr)
        return 2
    client = ChatClient(host, port, reconnect=False, ssl=ssl, servers=servers)
    try:
        await client.connect()
        await client.login(name, password)
        report = await client.command("HEALTH")
        if report.code != 218:
            print(f"bleeper health: {report.code} {report.text}", file=sys.stderr)
            return 1
        for item in report.items:
            print(item)
        await client.quit()
        return 0
    except BleeperError as exc:
        print(f"bleeper health: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.close()
