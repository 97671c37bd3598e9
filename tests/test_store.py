"""One test suite, run against every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bleeper.store import (
    AccountExists,
    NewMessage,
    SchemaTooNew,
    Store,
    StoreError,
    open_store,
    schema,
)
from bleeper.store.postgres import PostgresStore
from bleeper.store.sqlite import SqliteStore
from tests.services import postgres_database

Opener = Callable[[], "asyncio.Future[Store]"]


@asynccontextmanager
async def location(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield str(tmp_path / "data" / "bleeper.db")
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with location(request.param, tmp_path) as found:
        yield found


@pytest.fixture
async def store(where: str) -> AsyncIterator[Store]:
    opened = await open_store(where)
    yield opened
    await opened.close()


def message(sender: str, to: str, text: str, recipients: tuple[str, ...] = (), client_id: str | None = None,
            conversation: str | None = None, at: int = 1_763_737_925_000) -> NewMessage:  # fmt: skip
    return NewMessage(sender, sender.lower(), to, conversation or to, text, at, recipients, client_id)


async def test_accounts(store: Store) -> None:
    alice = await store.create_account("alice", "Alice", "hash1", False, 1)
    assert alice.name == "Alice" and not alice.admin
    await store.create_account("bob", "bob", "hash2", True, 2)
    with pytest.raises(AccountExists):
        await store.create_account("alice", "ALICE", "hash3", False, 3)
    assert [a.key for a in await store.list_accounts()] == ["alice", "bob"]
    assert await store.set_password("alice", "new")
    assert (await store.get_account("alice")).password_hash == "new"  # type: ignore[union-attr]
    assert not await store.set_password("nobody", "x")
    await store.add_member("#icu", "#ICU", "alice")
    assert await store.delete_account("alice")
    assert await store.get_account("alice") is None
    assert not await store.delete_account("alice")
    assert await store.load_groups() == {}  # memberships went with the account


async def test_messages_get_ids_and_gapless_sequences_per_recipient(store: Store) -> None:
    first = await store.store_messages([
        message("carol", "@alice,bob", "one", ("alice", "bob")),
        message("carol", "@alice", "two", ("alice",)),
    ])  # fmt: skip
    second = await store.store_messages([message("carol", "#icu", "three", ("bob", "alice"))])
    ids = [m.id for m in first + second]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert dict(first[0].seqs) == {"alice": 1, "bob": 1}
    assert dict(first[1].seqs) == {"alice": 2}
    assert dict(second[0].seqs) == {"bob": 2, "alice": 3}
    inbox = await store.inbox("alice", 0)
    assert [(e.seq, e.message.text) for e in inbox] == [(1, "one"), (2, "two"), (3, "three")]
    assert [e.message.text for e in await store.inbox("alice", 1)] == ["two", "three"]
    assert [e.seq for e in await store.inbox("alice", 0, limit=2)] == [1, 2]
    assert await store.last_seq("alice") == 3 and await store.last_seq("nobody") == 0
    assert inbox[0].message.created_ms == 1_763_737_925_000 and inbox[0].message.sender == "carol"


async def test_client_id_makes_a_retry_idempotent(store: Store) -> None:
    (first,) = await store.store_messages([message("dave", "@erin", "once", ("erin",), client_id="c-1")])
    again = await store.store_messages([
        message("dave", "@erin", "once", ("erin",), client_id="c-1"),
        message("dave", "@erin", "twice?", ("erin",), client_id="c-1"),
        message("frank", "@erin", "other sender, same id", ("erin",), client_id="c-1"),
    ])  # fmt: skip
    assert [m.duplicate for m in again] == [True, True, False]
    assert again[0].id == again[1].id == first.id and again[0].text == "once"
    assert [e.message.text for e in await store.inbox("erin", 0)] == ["once", "other sender, same id"]


async def test_client_id_without_an_account_is_matched_too(store: Store) -> None:
    guest = NewMessage("guest", None, "@erin", "@erin,guest", "hello", 1, ("erin",), "g-1")
    (first,) = await store.store_messages([guest])
    (again,) = await store.store_messages([guest])
    assert again.duplicate and again.id == first.id
    assert [e.message.text for e in await store.inbox("erin", 0)] == ["hello"]


async def test_a_repeat_within_one_batch_is_stored_once(store: Store) -> None:
    first, second = await store.store_messages([
        message("dave", "@erin", "twice in one commit", ("erin",), client_id="c-9"),
        message("dave", "@erin", "twice in one commit", ("erin",), client_id="c-9"),
    ])  # fmt: skip
    assert (first.duplicate, second.duplicate) == (False, True) and first.id == second.id
    assert [e.message.id for e in await store.inbox("erin", 0)] == [first.id]


async def test_concurrent_batches_keep_sequences_gapless(store: Store) -> None:
    async def writer(number: int) -> None:
        for round_number in range(5):
            await store.store_messages(
                [message(f"w{number}", "#all", f"{number}-{round_number}-{i}", ("reader",)) for i in range(10)]
            )

    await asyncio.gather(*(writer(n) for n in range(8)))
    entries = await store.inbox("reader", 0, limit=10_000)
    assert [e.seq for e in entries] == list(range(1, 401))
    assert len({e.message.id for e in entries}) == 400


async def test_history_is_the_latest_messages_oldest_first(store: Store) -> None:
    await store.store_messages([message("gus", "#icu", f"m{i}", conversation="#icu") for i in range(10)])
    await store.store_messages([message("gus", "*", "elsewhere")])
    assert [m.text for m in await store.history("#icu", limit=3)] == ["m7", "m8", "m9"]
    assert [m.text for m in await store.history("*")] == ["elsewhere"]
    assert await store.history("#nothing") == []


async def test_history_keeps_interleaved_conversations_apart(store: Store) -> None:
    for round_number in range(3):  # several commits, each touching every conversation twice
        await store.store_messages([
            message("gus", to, f"{to}-{round_number}-{i}", conversation=to)
            for i in range(2)
            for to in ("#a", "#b", "@gus,ida")
        ])  # fmt: skip
    expected = [f"#b-{r}-{i}" for r in range(3) for i in range(2)]
    assert [m.text for m in await store.history("#b", limit=100)] == expected
    assert [m.text for m in await store.history("@gus,ida", limit=3)] == [
        "@gus,ida-1-1",
        "@gus,ida-2-0",
        "@gus,ida-2-1",
    ]
    assert await store.history("#a", limit=0) == []


async def test_groups_persist_and_empty_groups_are_forgotten(store: Store) -> None:
    await store.add_member("#icu", "#ICU", "alice")
    await store.add_member("#icu", "#icu", "bob")
    await store.add_member("#icu", "#ICU", "bob")  # twice is harmless
    await store.add_member("#night", "#Night", "bob")
    assert await store.load_groups() == {"#icu": ("#ICU", {"alice", "bob"}), "#night": ("#Night", {"bob"})}
    await store.remove_member("#night", "bob")
    await store.remove_member("#icu", "alice")
    assert await store.load_groups() == {"#icu": ("#ICU", {"bob"})}


async def test_delivered_mark_only_moves_forward(store: Store) -> None:
    await store.create_account("hana", "hana", "h", False, 1)
    await store.mark_delivered("hana", 5)
    await store.mark_delivered("hana", 3)
    assert (await store.get_account("hana")).delivered_seq == 5  # type: ignore[union-attr]


async def test_data_survives_reopening(where: str) -> None:
    store = await open_store(where)
    await store.create_account("ivan", "Ivan", "h", False, 1)
    await store.store_messages([message("x", "@ivan", "kept", ("ivan",))])
    await store.close()
    store = await open_store(where)
    try:
        assert (await store.get_account("ivan")) is not None
        assert [e.message.text for e in await store.inbox("ivan", 0)] == ["kept"]
        assert await store.schema_version() == schema.LATEST
    finally:
        await store.close()


async def test_an_older_schema_is_upgraded_in_place(where: str) -> None:
    insert = (
        "INSERT INTO messages (sender, recipient, conversation, body, created_ms)"
        " VALUES ('gus', '#icu', '#icu', 'old 1', 1), ('gus', '*', '*', 'lobby', 2),"
        " ('gus', '#icu', '#icu', 'old 2', 3), ('gus', '#icu', '#icu', 'old 3', 4)"
    )
    if where.startswith("postgresql"):
        old = await PostgresStore.open(where, migrate=False)
        await old._migrate(upto=2)
        await old._pool.execute(insert)
    else:
        old = await SqliteStore.open(where, migrate=False)
        from bleeper.store.sqlite import _migrate

        await old._run(lambda: _migrate(old._db(), upto=2))
        await old._run(lambda: old._db().execute(insert))
    assert await old.schema_version() == 2
    await old.create_account("judy", "Judy", "h", False, 1)
    await old.close()
    upgraded = await open_store(where)
    try:
        assert await upgraded.schema_version() == schema.LATEST
        assert (await upgraded.get_account("judy")) is not None
        # Migration 3 linked the old messages into their conversations; new ones carry on the chain.
        assert [m.text for m in await upgraded.history("#icu")] == ["old 1", "old 2", "old 3"]
        await upgraded.store_messages([message("gus", "#icu", "new", conversation="#icu")])
        assert [m.text for m in await upgraded.history("#icu", limit=2)] == ["old 3", "new"]
        assert [m.text for m in await upgraded.history("*")] == ["lobby"]
    finally:
        await upgraded.close()


async def test_a_newer_schema_is_refused_with_advice(where: str) -> None:
    store = await open_store(where)
    if isinstance(store, PostgresStore):
        await store._pool.execute("UPDATE bleeper_schema SET version = 99")
    else:
        assert isinstance(store, SqliteStore)
        await store._run(lambda: store._db().execute("UPDATE bleeper_schema SET version = 99"))
    await store.close()
    with pytest.raises(SchemaTooNew, match="upgrade Bleeper"):
        await open_store(where)


async def test_sqlite_damaged_or_foreign_files_are_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="damaged or not a database"):
        await open_store(str(damaged))
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER)")
    with pytest.raises(StoreError, match="not a Bleeper database"):
        await open_store(str(foreign))


async def test_sqlite_locked_database_says_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = await open_store(str(path))
    holder = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked"):
            await store.create_account("kim", "kim", "h", False, 1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await store.close()


async def test_postgres_unreachable_says_what_to_check_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as failure:
        await open_store("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(failure.value) and "nobody:***@" in str(failure.value)
