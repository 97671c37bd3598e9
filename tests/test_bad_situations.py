"""Storage trouble gives a clear answer and loses nothing: nothing is acknowledged that was not stored."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bleeper.server import ChatServer
from bleeper.store import open_store
from tests.conftest import make_config, port_of
from tests.helpers import ROOT, LineClient, create_accounts, free_port, wait_for_port


async def accounts(path: Path) -> str:
    return await create_accounts(str(path), "alice", "bob")


# The server runs in a mount namespace of its own with a small tmpfs for its database: a real full disk for
# the server and its writer process, filled and emptied from here through /proc/<pid>/root.
IN_SMALL_DISK = 'mount -t tmpfs -o size=8m tmpfs "$1" && cp "$2" "$1/full.db" && shift 2 && exec "$@"'


def small_disk_available() -> bool:
    try:
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    except FileNotFoundError:
        return False
    return probe.returncode == 0


def start_on_small_disk(disk: Path, prepared: str, port: int, *options: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", IN_SMALL_DISK, "sh", str(disk), prepared,
         sys.executable, "-m", "bleeper", "serve", "--db", str(disk / "full.db"), "--port", str(port), "--rate", "0",
         "--no-http", "--log-level", "error", *options],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def fill(path: Path) -> None:
    with path.open("wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


@pytest.mark.parametrize("writer", ["process", "thread"])
async def test_disk_full_refuses_messages_with_452_and_recovers(tmp_path: Path, writer: str) -> None:
    if not small_disk_available():
        pytest.skip("needs unshare --mount (root, or user namespaces) to give the server a small disk")
    prepared = await accounts(tmp_path / "prepared.db")
    disk = tmp_path / "disk"
    disk.mkdir()
    port = free_port()
    server = start_on_small_disk(disk, prepared, port, "--db-writer", writer)
    ballast = Path(f"/proc/{server.pid}/root") / disk.relative_to("/") / "ballast"
    try:
        await asyncio.to_thread(wait_for_port, port)
        alice = await LineClient.connect(port)
        await alice.command("LOGIN alice alice-password")
        bob = await LineClient.connect(port)
        await bob.command("LOGIN bob bob-password")
        assert (await alice.command("TELL bob before")).code == 250
        assert (await bob.message()).text == "before"
        await asyncio.to_thread(fill, ballast)  # the disk is full
        accepted = 0
        for _ in range(500):  # pages SQLite already has fill first
            refused = await alice.command("TELL bob " + "x" * 4000)
            if refused.code != 250:
                break
            accepted += 1
        assert refused.code == 452 and "NOT sent" in refused.text, refused
        assert len([await bob.message() for _ in range(accepted)]) == accepted  # every 250 was delivered
        await bob.command("PING")
        assert not [e for e in bob.events if e.__class__.__name__ == "Message"]  # and nothing more
        ballast.unlink()  # space again
        assert (await alice.command("TELL bob back to normal")).code == 250
        assert (await bob.message()).text == "back to normal"
    finally:
        server.terminate()
        _, errors = await asyncio.to_thread(server.communicate, timeout=30)
    assert server.returncode == 0, errors.decode()


async def test_a_locked_database_refuses_with_451(tmp_path: Path) -> None:
    path = await accounts(tmp_path / "locked.db")
    server = ChatServer(make_config(db=path))
    await server.start()
    holder = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    try:
        alice = await LineClient.connect(port_of(server))
        await alice.command("LOGIN alice alice-password")
        holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
        await alice.send("TELL bob hello")
        refused = await alice.reply(timeout=15)  # the server waits out its 5 s busy timeout first
        assert refused.code == 451 and "NOT sent" in refused.text
        holder.execute("ROLLBACK")
        assert (await alice.command("TELL bob hello again")).code == 250
    finally:
        holder.close()
        await server.stop(grace=0.5)


async def test_a_newer_schema_stops_the_server_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    store = await open_store(str(path))
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE bleeper_schema SET version = 99")
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bleeper", "serve", "--db", str(path), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "schema version 99" in result.stderr and "upgrade Bleeper" in result.stderr


async def test_a_second_server_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "one.db")
    first = ChatServer(make_config(db=path))
    await first.start()
    try:
        second = ChatServer(make_config(db=path))
        try:
            await second.start()
        except Exception as exc:
            assert "is in use by Bleeper server pid" in str(exc) and "--db" in str(exc)
        else:
            await second.stop()
            raise AssertionError("a second server opened the same database")
    finally:
        await first.stop(grace=0.5)
