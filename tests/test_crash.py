"""Kill the server with SIGKILL at random moments under load, restart it, and prove that every acknowledged
message is stored exactly once and reaches each recipient, including one who was offline throughout."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bleeper.protocol.incoming import Message
from bleeper.store import open_store
from tests.helpers import ROOT, LineClient, create_accounts, free_port, wait_for_port
from tests.services import location

SENDERS = ["s0", "s1", "s2", "s3"]
ROUNDS = 4

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with location(request.param, tmp_path) as where:
        await create_accounts(where, *SENDERS, "online", "offline")
        store = await open_store(where)
        await store.add_member("#ward", "#ward", "online")
        await store.add_member("#ward", "#ward", "offline")
        await store.close()
        yield where


def start_server(db: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bleeper", "serve", "--db", db, "--port", str(port), "--rate", "0",
         "--log-level", "warning"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    wait_for_port(port)
    return proc


async def sender(
    name: str, port: int, acked: dict[str, str], unsure: list[tuple[str, str]], counter: list[int]
) -> None:
    """Send until the connection dies. Messages without a 250 are kept to resend with the same id."""
    try:
        client = await LineClient.connect(port)
        if (await client.command(f"LOGIN {name} {name}-password")).code != 202:
            return
        while True:
            if unsure:
                client_id, line = unsure[0]
            else:
                counter[0] += 1
                client_id = f"{name}-{counter[0]}"
                target = "online,offline" if counter[0] % 2 else "#ward"
                line = f"ID {client_id} TELL {target} {client_id}"
                unsure.append((client_id, line))
            reply = await client.command(line)
            assert reply.code == 250, reply
            acked[client_id] = reply.fields[0]
            unsure.pop(0)
    except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError):
        return


def contiguous(seen: set[int]) -> int:
    number = 0
    while number + 1 in seen:
        number += 1
    return number


async def reader(port: int, seen: set[int]) -> None:
    """The online recipient: logs in, catches up with SYNC, then reads until the connection dies."""
    try:
        client = await LineClient.connect(port)
        await client.command("LOGIN online online-password")
        while True:  # catch up from the last number before which nothing is missing
            reply = await client.command(f"SYNC {contiguous(seen)}")
            seen |= {m.seq for m in client.events if isinstance(m, Message)}
            client.events.clear()
            if reply.text.endswith(" 0 more"):
                break
        while True:
            seen.add((await client.message(timeout=30)).seq)
    except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError, AssertionError):
        return


async def reader_catch_up(port: int, seen: set[int]) -> None:
    task = asyncio.ensure_future(reader(port, seen))
    await asyncio.sleep(2.0)  # SYNC until nothing more, then a moment of live reading
    task.cancel()


async def test_sigkill_under_load_loses_and_duplicates_nothing(db: str) -> None:
    rng = random.Random(20261121)
    port = free_port()
    acked: dict[str, str] = {}  # client id -> message id, for every 250 received
    unsure = {name: [] for name in SENDERS}  # type: dict[str, list[tuple[str, str]]]
    counters = {name: [0] for name in SENDERS}
    seen: set[int] = set()
    kills = 0
    for _ in range(ROUNDS):
        proc = start_server(db, port)
        tasks = [asyncio.ensure_future(sender(n, port, acked, unsure[n], counters[n])) for n in SENDERS]
        tasks.append(asyncio.ensure_future(reader(port, seen)))
        await asyncio.sleep(rng.uniform(0.4, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert kills == ROUNDS and len(acked) > 50

    # Last start: resend what is still unsure, then check everything through the server and the store.
    proc = start_server(db, port)
    try:
        for name in SENDERS:
            client = await LineClient.connect(port)
            await client.command(f"LOGIN {name} {name}-password")
            for client_id, line in unsure[name]:
                reply = await client.command(line)
                assert reply.code == 250
                acked[client_id] = reply.fields[0]
            await client.close()
        offline = await LineClient.connect(port)
        first = await offline.command("LOGIN offline offline-password")
        assert first.code == 202
        await asyncio.wait_for(reader_catch_up(port, seen), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)

    store = await open_store(db)
    try:
        for account in ("online", "offline"):
            inbox = await store.inbox(account, 0, limit=1_000_000)
            assert [entry.seq for entry in inbox] == list(range(1, len(inbox) + 1)), "sequence has gaps"
            texts = [entry.message.text for entry in inbox]
            assert len(texts) == len(set(texts)), "a message was stored twice"
            assert set(acked) <= set(texts), f"{len(set(acked) - set(texts))} acknowledged messages missing"
            ids = {entry.message.text: str(entry.message.id) for entry in inbox}
            assert all(ids[client_id] == message_id for client_id, message_id in acked.items())
    finally:
        await store.close()
        # The online reader saw, across crashes and catch-ups, every message of its inbox.
        assert seen == set(range(1, len(inbox) + 1))


async def test_after_a_crash_only_about_the_last_second_is_sent_again(db: str) -> None:
    """The delivered mark is written about once a second: a message received two seconds before a SIGKILL
    is not replayed at the next LOGIN (with marks written every five seconds, most runs replayed it)."""
    port = free_port()
    server = start_server(db, port)
    try:
        online = await LineClient.connect(port)
        assert (await online.command("LOGIN online online-password")).code == 202
        sender = await LineClient.connect(port)
        assert (await sender.command("LOGIN s0 s0-password")).code == 202
        for number in range(3):
            assert (await sender.command(f"TELL online before the crash {number}")).code == 250
            await online.message()
        await asyncio.sleep(2.0)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    server = start_server(db, port)
    try:
        again = await LineClient.connect(port)
        reply = await again.command("LOGIN online online-password")
        assert reply.code == 202 and " 0 waiting sent, 0 more" in reply.text, reply
        assert not [event for event in again.events if isinstance(event, Message)]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
