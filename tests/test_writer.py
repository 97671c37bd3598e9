"""The SQLite writer process: batches round-trip intact, a writer that dies is replaced without losing or
doubling a message, Ctrl+C does not cut its last commits short, and a killed server leaves none behind."""

from __future__ import annotations

import asyncio
import marshal
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bleeper.chat.records import AuditEvent, NewMessage, StoredMessage
from bleeper.server import ChatServer
from bleeper.store import open_store
from bleeper.store.model import StoreError
from bleeper.store.sqlite import SqliteStore, claim
from bleeper.store.writer import decode_batch, decode_results, encode_batch, encode_results
from tests.conftest import make_config, port_of
from tests.helpers import ROOT, LineClient, create_accounts, free_port, wait_for_port


def test_batches_and_results_round_trip() -> None:
    messages = [
        NewMessage("Ann", "ann", "@bob", "@ann,bob", "héllo\r\n\x00", 1, ("bob",), "c-1", True),
        NewMessage("guest", None, "*", "*", "", 2),
    ]
    events = [AuditEvent(3, "login", "ann", "ann", (("from", "127.0.0.1"), ("n", 2)))]
    frame = encode_batch(messages, events)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert decode_batch(frame[4:]) == (messages, events)
    earlier = StoredMessage(7, "Ann", "@bob", "@ann,bob", "the first text", 0, "c-1", True, (("bob", 1),), True)
    fresh = StoredMessage(9, "guest", "*", "*", "", 2, None, False, (), False)
    answer = encode_results([earlier, fresh])
    status, rows = marshal.loads(answer[4:])
    assert status == "ok" and len(rows[1]) == 2  # a fresh message comes back as its id and sequence numbers
    assert decode_results(rows, messages) == [earlier, fresh]


async def accounts(tmp_path: Path) -> str:
    return await create_accounts(str(tmp_path / "w.db"), "alice", "bob")


async def test_a_writer_that_dies_is_replaced_and_resends_are_stored_once(tmp_path: Path) -> None:
    server = ChatServer(make_config(db=await accounts(tmp_path), rate=0))
    await server.start()
    try:
        store = server.store
        assert isinstance(store, SqliteStore) and store._writer is not None
        first_writer = store._writer.proc.pid
        alice = await LineClient.connect(port_of(server))
        await alice.command("LOGIN alice alice-password")
        ids = [f"c-{n}" for n in range(300)]
        await alice.send(*(f"ID {cid} TELL bob {cid}" for cid in ids[:150]))
        os.kill(first_writer, signal.SIGKILL)  # while those are being committed
        await alice.send(*(f"ID {cid} TELL bob {cid}" for cid in ids[150:]))
        replies = [await alice.reply() for _ in ids]
        unsure = [cid for cid, reply in zip(ids, replies, strict=True) if reply.code != 250]
        for reply in replies:
            assert reply.code == 250 or (reply.code == 451 and "same ID" in reply.text), reply
        for cid in unsure:  # what the client does with a 451: send again, same ID
            assert (await alice.command(f"ID {cid} TELL bob {cid}")).code == 250
        assert store._writer.proc.pid != first_writer and not store._writer.stopped
        inbox = await store.inbox("bob", 0, limit=1000)
        assert sorted(entry.message.text for entry in inbox) == sorted(ids)  # each once, none lost
        assert [entry.seq for entry in inbox] == list(range(1, len(ids) + 1))  # no gap either
    finally:
        await server.stop(grace=0.5)
    assert not psutil.pid_exists(first_writer) or psutil.Process(first_writer).status() == psutil.STATUS_ZOMBIE


def start(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bleeper", "serve", "--db", db, "--port", str(port), "--rate", "0", "--no-http",
         "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    wait_for_port(port)
    return proc


def writer_of(server: subprocess.Popen[bytes]) -> psutil.Process:
    (child,) = psutil.Process(server.pid).children()
    assert "bleeper.store.writer" in child.cmdline()
    return child


async def test_ctrl_c_lets_the_writer_finish_the_last_commits(tmp_path: Path) -> None:
    db = await accounts(tmp_path)
    port = free_port()
    server = await asyncio.to_thread(start, db, port)
    try:
        writer = writer_of(server)
        alice = await LineClient.connect(port)
        await alice.command("LOGIN alice alice-password")
        await alice.send(*(f"ID c-{n} TELL bob m{n}" for n in range(2000)))
        await alice.reply()  # the first is acknowledged: the rest are in flight or queued
        os.killpg(server.pid, signal.SIGINT)  # Ctrl+C in a terminal reaches the whole process group
        acked = 1
        while True:
            try:
                reply = await alice.reply()
            except ConnectionError:
                break
            if reply.code == 250:
                acked += 1
        _, errors = await asyncio.to_thread(server.communicate, timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, errors.decode()
    assert "writer process stopped" not in errors.decode()
    assert not writer.is_running()
    store = await open_store(db)
    try:
        assert len(await store.inbox("bob", 0, limit=5000)) >= acked  # every acknowledged message is stored
    finally:
        await store.close()


async def test_a_killed_server_leaves_no_writer_and_starts_again_at_once(tmp_path: Path) -> None:
    db = await accounts(tmp_path)
    port = free_port()
    server = await asyncio.to_thread(start, db, port)
    writer = writer_of(server)
    alice = await LineClient.connect(port)
    await alice.command("LOGIN alice alice-password")
    await alice.send(*(f"TELL bob m{n}" for n in range(500)))
    await alice.reply()
    server.kill()  # SIGKILL, mid-load
    _, errors = await asyncio.to_thread(server.communicate, timeout=30)  # the writer shares its stderr
    assert b"Traceback" not in errors, errors.decode()  # the writer stopped quietly
    again = await asyncio.to_thread(start, db, port)  # the lock is waited for while the old writer finishes
    try:
        await asyncio.to_thread(writer.wait, 10)  # the old writer is gone (psutil.TimeoutExpired if not)
        alice = await LineClient.connect(port)
        await alice.command("LOGIN alice alice-password")
        assert (await alice.command("TELL bob after the restart")).code == 250
    finally:
        again.terminate()
        await asyncio.to_thread(again.communicate, timeout=30)
    assert again.returncode == 0


@pytest.mark.parametrize("writer", ["process", "thread"])
async def test_both_writers_store_the_same(tmp_path: Path, writer: str) -> None:
    server = ChatServer(make_config(db=await accounts(tmp_path), rate=0, db_writer=writer))
    await server.start()
    try:
        store = server.store
        assert isinstance(store, SqliteStore) and (store._writer is not None) == (writer == "process")
        alice = await LineClient.connect(port_of(server))
        await alice.command("LOGIN alice alice-password")
        await alice.send(*(f"ID c-{n % 50} TELL bob m{n}" for n in range(100)))  # the second 50 are resends
        replies = [await alice.reply() for _ in range(100)]
        assert all(reply.code == 250 for reply in replies)
        assert [reply.fields[0] for reply in replies[50:]] == [reply.fields[0] for reply in replies[:50]]
        assert [entry.message.text for entry in await store.inbox("bob", 0)] == [f"m{n}" for n in range(50)]
    finally:
        await server.stop(grace=0.5)


HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_lock_left_to_a_dead_servers_writer_is_waited_for(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    Path(f"{db}.lock").write_text(f"Bleeper server pid {gone.stdout.strip()}")  # that server has exited
    writer = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, f"{db}.lock", "1"], stdout=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdout.readline() == b"held\n"  # its writer still finishing
    started = time.monotonic()
    handle = claim(db)
    try:
        assert time.monotonic() - started > 0.5  # waited for the writer to let go, then took the file
        assert Path(f"{db}.lock").read_text() == f"Bleeper server pid {os.getpid()}"
    finally:
        handle.close()
        writer.wait()


def test_a_lock_held_by_a_live_server_is_refused_at_once(tmp_path: Path) -> None:
    db = str(tmp_path / "w.db")
    Path(f"{db}.lock").write_text(f"Bleeper server pid {os.getpid()}")  # alive: this test
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, f"{db}.lock", "30"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"in use by Bleeper server pid {os.getpid()}"):
            claim(db)
        assert time.monotonic() - started < 0.5
    finally:
        holder.kill()
        holder.wait()
