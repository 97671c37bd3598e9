"""Storage trouble gives a clear answer and loses nothing: nothing is acknowledged that was not stored."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from bleeper.server import ChatServer
from bleeper.store import open_store
from bleeper.store.sqlite import SqliteStore
from tests.conftest import make_config, port_of
from tests.helpers import ROOT, LineClient, create_accounts


async def accounts(path: Path) -> str:
    return await create_accounts(str(path), "alice", "bob")


async def test_disk_full_refuses_messages_with_452_and_recovers(tmp_path: Path) -> None:
    server = ChatServer(make_config(db=await accounts(tmp_path / "full.db")))
    await server.start()
    try:
        alice = await LineClient.connect(port_of(server))
        await alice.command("LOGIN alice alice-password")
        bob = await LineClient.connect(port_of(server))
        await bob.command("LOGIN bob bob-password")
        store = server.store
        assert isinstance(store, SqliteStore)
        pages = await store._run(lambda: store._db().execute("PRAGMA page_count").fetchone()[0])
        await store._run(lambda: store._db().execute(f"PRAGMA max_page_count = {pages}"))  # the disk is full
        accepted = 0
        for _ in range(100):  # the free space left in existing pages fills first
            refused = await alice.command("TELL bob " + "x" * 4000)
            if refused.code != 250:
                break
            accepted += 1
        assert refused.code == 452 and "NOT sent" in refused.text
        assert len([await bob.message() for _ in range(accepted)]) == accepted  # every 250 was delivered
        await bob.command("PING")
        assert not [e for e in bob.events if e.__class__.__name__ == "Message"]  # and nothing more
        await store._run(lambda: store._db().execute("PRAGMA max_page_count = 1073741823"))  # space again
        assert (await alice.command("TELL bob back to normal")).code == 250
        assert (await bob.message()).text == "back to normal"
    finally:
        await server.stop(grace=0.5)


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
