"""One test suite, run against every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from bleeper.chat.records import AuditEvent
from bleeper.store import (
    AccountExists,
    NewMessage,
    SchemaTooNew,
    Store,
    StoreError,
    open_store,
    schema,
)
from bleeper.store.adapter import StoreBackend
from bleeper.store.audit import GENESIS, AuditEntry, chain, content_hash, record, verify
from bleeper.store.postgres import PostgresStore
from bleeper.store.sqlite import SqliteStore
from tests.services import location, postgres_database

Opener = Callable[[], "asyncio.Future[Store]"]


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


async def test_messages_are_read_back_by_id_range_with_their_numbers(store: Store) -> None:
    """What a cluster node reads when a message's signal did not come (cluster/delivery.py)."""
    assert await store.newest_id() == 0
    stored = await store.store_messages([
        message("carol", "@alice,bob", "one", ("alice", "bob")),
        message("carol", "*", "two"),
        message("carol", "#icu", "three", ("bob",)),
    ])  # fmt: skip
    first, last = stored[0].id, stored[-1].id
    assert await store.newest_id() == last
    found = await store.stored_between(first + 1, last + 1)
    assert [(m.text, m.seqs, sender_key) for m, sender_key in found] == [
        ("two", (), "carol"), ("three", (("bob", 2),), "carol")
    ]  # fmt: skip
    (one, _), *_ = await store.stored_between(first, first + 1)
    assert dict(one.seqs) == {"alice": 1, "bob": 1} and one.conversation == stored[0].conversation
    assert await store.stored_between(last + 1, last + 10) == []


async def test_postgres_hands_each_guest_name_to_one_claim() -> None:
    """Cluster mode's names table (PostgreSQL only): one holder per name, taken over only from the claim that
    held it, given up only by its own claim."""
    async with postgres_database() as where:
        await _names_table(where)


async def _names_table(where: str) -> None:
    store = await open_store(where)
    try:
        names = cast(Any, store)
        assert await names.claim_name("ann", "a", "i1", "c1") == ("a", "i1", "c1")
        assert await names.claim_name("ann", "b", "i2", "c2") == ("a", "i1", "c1")  # held: the holder comes back
        assert not await names.take_name("ann", "b", "i2", "c2", "stale")
        assert await names.take_name("ann", "b", "i2", "c2", "c1")
        await names.release_name("ann", "c1")  # a late release of the old claim changes nothing
        assert await names.name_holder("ann") == ("b", "i2", "c2")
        await names.release_name("ann", "c2")
        assert await names.name_holder("ann") is None
        claims = await asyncio.gather(*(names.claim_name("bea", f"n{i}", "i", f"c{i}") for i in range(10)))
        assert len(set(claims)) == 1  # ten at once: one wins, and all see the same winner
    finally:
        await store.close()


async def test_each_step_of_an_urgent_message_is_taken_once(store: Store) -> None:
    """Who took a step must be clear even when another server took exactly that step (found by the chaos
    test: the step number alone could not tell them apart)."""
    sent = int(time.time() * 1000) - 10_000
    assert await store.claim_step(7, 0, 1000, sent) == (True, 1)
    assert await store.claim_step(7, 0, 1000, sent) == (False, 1)  # taken by someone else
    assert await store.claim_step(7, 1, 60_000, sent) == (False, 1)  # not due yet by the database's clock
    assert await store.claim_step(8, 0, 60_000, sent) == (False, 0)  # nor the first step of a recent message
    assert await store.claim_ack(7, "ann") == "ann"
    assert await store.claim_ack(7, "bob") == "ann"
    assert await store.claim_step(7, 1, 0, sent) == (False, -1)  # acknowledged: no more steps


async def test_a_recalled_urgent_message_takes_no_more_steps_and_cannot_be_acknowledged(store: Store) -> None:
    """RECALL fences the page where steps are claimed: a server that missed the recall's news (a lost cluster
    signal) is refused its next alert or escalation, and an ACK there learns it was recalled ("")."""
    sent = int(time.time() * 1000) - 10_000
    (page, plain) = await store.store_messages([
        dataclasses.replace(message("carol", "@ann", "help", ("ann",)), urgent=True),
        message("carol", "@ann", "hello", ("ann",)),
    ])  # fmt: skip
    assert await store.claim_step(page.id, 0, 1000, sent) == (True, 1)
    assert await store.recall(page.id, "[recalled]")
    assert await store.claim_step(page.id, 1, 0, sent) == (False, -1)
    assert await store.claim_ack(page.id, "ann") == ""
    assert await store.recall(plain.id, "[recalled]") and not await store.recall(plain.id + 99, "[recalled]")
    assert await store.claim_step(plain.id, 0, 0, sent) == (True, 1)  # (no steps row made for a plain message)
    (unstepped,) = await store.store_messages([dataclasses.replace(message("carol", "@ann", "x", ("ann",)),
                                                                   urgent=True)])  # fmt: skip
    assert await store.recall(unstepped.id, "[recalled]")  # recalled before its first alert
    assert await store.claim_step(unstepped.id, 0, 0, sent) == (False, -1)


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


# -- the audit chain ----------------------------------------------------------------------------------------


async def all_entries(store: Store) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    while page := await store.audit_entries(entries[-1].id if entries else 0, limit=3):
        entries.extend(page)
    return entries


async def stored_entries(where: str) -> list[AuditEntry]:
    """The whole audit log of a store that no server holds open any more."""
    store = await open_store(where)
    try:
        return await all_entries(store)
    finally:
        await store.close()


async def execute(store: Store, sql: str) -> None:
    if isinstance(store, PostgresStore):
        await store._pool.execute(sql)
    else:
        assert isinstance(store, SqliteStore)
        await store._run(lambda: store._db().execute(sql))


async def test_every_message_and_event_is_chained_in_the_audit_log(store: Store) -> None:
    await store.append_audit([AuditEvent(10, "login", "ivan", "ivan", (("address", "127.0.0.1:5000"),))])
    stored = await store.store_messages(
        [message("ivan", "@judy", "patient in bed 4 needs review", ("judy",))],
        [AuditEvent(11, "login-failed", "judy", "judy", (("address", "10.0.0.9:4000"),))],
    )
    await store.store_messages([message("ivan", "@judy", "duplicate?", ("judy",), client_id="x")])
    await store.store_messages([message("ivan", "@judy", "duplicate?", ("judy",), client_id="x")])  # not again
    entries = await all_entries(store)
    assert [(e.id, e.kind, e.actor) for e in entries] == [
        (1, "login", "ivan"), (2, "login-failed", "judy"), (3, "message", "ivan"), (4, "message", "ivan")
    ]  # fmt: skip
    assert entries[2].subject == str(stored[0].id)
    detail = json.loads(entries[2].detail)
    assert detail == {"to": "@judy", "recipients": 1, "sha256": content_hash("patient in bed 4 needs review")}
    assert "bed 4" not in "".join(e.as_json() for e in entries)  # the log never holds message text
    assert entries[0].prev_hash == GENESIS and all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    verdict = verify(entries)
    assert verdict.ok and verdict.count == 4 and verdict.head_id == 4 and verdict.head_hash == entries[-1].hash
    assert [e.id for e in await store.audit_entries(since_ms=11, until_ms=12)] == [2]


async def chain_of_five(store: Store) -> list[AuditEntry]:
    await store.append_audit([AuditEvent(n, "admin", "cli:root", f"thing-{n}") for n in range(1, 6)])
    return await all_entries(store)


async def test_verify_finds_an_altered_entry(store: Store) -> None:
    await chain_of_five(store)
    await execute(store, "UPDATE audit SET subject = 'something else' WHERE id = 3")
    verdict = verify(await all_entries(store))
    assert not verdict.ok and verdict.problem == "entry 3 altered: its contents do not match its hash"
    assert verdict.count == 2


async def test_verify_finds_a_removed_entry(store: Store) -> None:
    await chain_of_five(store)
    await execute(store, "DELETE FROM audit WHERE id = 2")
    assert verify(await all_entries(store)).problem == "entry 2 removed: entry 3 follows entry 1"


async def test_verify_finds_an_inserted_entry_even_with_a_valid_hash(store: Store) -> None:
    entries = await chain_of_five(store)
    # Make room after entry 2 and insert an entry whose own hash is right: the next entry no longer follows.
    await execute(store, "UPDATE audit SET id = id + 100 WHERE id > 2")
    await execute(store, "UPDATE audit SET id = id - 99 WHERE id > 100")
    forged = chain(2, entries[1].hash, [record(AuditEvent(3, "admin", "cli:mallory", "forged"))])[0]
    values = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in forged)
    await execute(
        store, f"INSERT INTO audit (id, at_ms, kind, actor, subject, detail, prev_hash, hash) VALUES ({values})"
    )
    verdict = verify(await all_entries(store))
    assert not verdict.ok and verdict.problem.startswith("entry 4 altered")  # renumbered: its hash covers its id


async def test_a_recorded_head_catches_a_rewritten_or_shortened_log(store: Store) -> None:
    entries = await chain_of_five(store)
    head = (entries[3].id, entries[3].hash)
    assert verify(entries, expect_head=head).ok
    await execute(store, "DELETE FROM audit WHERE id >= 4")  # cut short: the chain itself is still whole
    shortened = await all_entries(store)
    assert verify(shortened).ok
    assert (
        verify(shortened, expect_head=head).problem == "the recorded head, entry 4, is missing: the log was cut short"
    )
    rewritten = chain(3, shortened[-1].hash, [record(AuditEvent(4, "admin", "cli:mallory", "other"))])
    assert "was rewritten" in verify([*shortened, *rewritten], expect_head=head).problem


async def test_standing_state_is_set_replaced_and_forgotten(store: Store) -> None:
    await store.keep("role", "cardio", '{"name": "@cardio", "holders": ["ann"]}')
    await store.keep("backup", "ann", "ben")
    await store.keep("backup", "ann", "carol")
    await store.keep("urgent", "7", "{}")
    await store.keep("urgent", "7", None)
    await store.keep("urgent", "8", None)  # forgetting what is not there is fine
    assert await store.standing() == [
        ("backup", "ann", "carol"),
        ("role", "cardio", '{"name": "@cardio", "holders": ["ann"]}'),
    ]


async def test_caught_up_waits_for_what_was_submitted_before_and_not_after(store: Store) -> None:
    from bleeper.store.journal import Journal

    journal = Journal(store)
    for number in range(5):
        journal.submit(message("bob", "@alice", f"m{number}", ("alice",)))
    waiting = asyncio.ensure_future(journal.caught_up())
    journal.submit(message("bob", "@alice", "later", ("alice",)))  # not part of the wait
    await waiting
    assert [entry.message.text for entry in await store.inbox("alice", 0)][:5] == [f"m{n}" for n in range(5)]
    await journal.close()
    assert len(await store.inbox("alice", 0)) == 6


async def test_audit_entries_from_a_failed_commit_are_written_by_a_later_one(tmp_path: Path) -> None:
    """A commit that fails answers its messages with the error but keeps its audit entries: they go into the
    next commit, after a pause, ahead of messages submitted meanwhile."""
    from bleeper.store import journal as journal_module
    from bleeper.store.journal import Journal

    path = str(tmp_path / "retry.db")
    store = await SqliteStore.open(path)
    await store._run(lambda: store._db().execute("PRAGMA busy_timeout = 100"))  # fail fast while locked
    holder = sqlite3.connect(path, isolation_level=None)
    journal = Journal(store)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another program holds the database
        journal.record(AuditEvent(1, "login", "ann", "ann"))
        refused = journal.submit(message("ann", "@bob", "refused", ("bob",)))
        answered = asyncio.Event()
        refused.add_done_callback(lambda _: answered.set())
        await asyncio.wait_for(answered.wait(), 5)
        with pytest.raises(StoreError, match="locked"):
            refused.result()
        later = journal.submit(message("ann", "@bob", "later", ("bob",)))  # waits out the pause
        holder.execute("ROLLBACK")
        await asyncio.wait_for(journal.settled(), journal_module.RETRY_DELAY + 5)
        assert later.result().id > 0
        kinds = [(entry.kind, entry.subject) for entry in await store.audit_entries()]
        assert kinds == [("login", "ann"), ("message", str(later.result().id))]  # the kept entry first
        assert [entry.message.text for entry in await store.inbox("bob", 0)] == ["later"]
    finally:
        holder.close()
        await journal.close()
        await store.close()


# -- Web Push subscriptions ---------------------------------------------------------------------------------


async def test_push_subscriptions_are_upserted_by_endpoint_listed_and_removed(store: Store) -> None:
    await store.add_push_subscription("ann", "https://push.example/a", "key-a", "auth-a", 1)
    await store.add_push_subscription("ann", "https://push.example/b", "key-b", "auth-b", 2)
    await store.add_push_subscription("ben", "https://push.example/c", "key-c", "auth-c", 3)
    assert [(s.endpoint, s.p256dh, s.auth, s.created_ms) for s in await store.push_subscriptions("ann")] == [
        ("https://push.example/a", "key-a", "auth-a", 1),
        ("https://push.example/b", "key-b", "auth-b", 2),
    ]
    # The same browser again: new keys replace the old; signed in to another account, it moves to that account.
    await store.add_push_subscription("ann", "https://push.example/a", "key-a2", "auth-a2", 4)
    await store.add_push_subscription("ben", "https://push.example/b", "key-b2", "auth-b2", 5)
    assert [(s.endpoint, s.p256dh) for s in await store.push_subscriptions("ann")] == [
        ("https://push.example/a", "key-a2")
    ]
    assert [s.endpoint for s in await store.push_subscriptions("ben")] == [
        "https://push.example/c",
        "https://push.example/b",
    ]
    assert not await store.remove_push_subscription("https://push.example/c", "ann")  # not ann's to remove
    assert await store.remove_push_subscription("https://push.example/c", "ben")
    assert not await store.remove_push_subscription("https://push.example/c", "ben")
    assert await store.remove_push_subscription("https://push.example/b")  # the push service said it is gone
    assert await store.push_subscriptions("ben") == [] and await store.push_subscriptions("nobody") == []


async def test_an_account_keeps_its_newest_push_subscriptions_only(store: Store) -> None:
    for number in range(5):
        await store.add_push_subscription("ann", f"https://push.example/{number}", "k", "a", 10 + number, keep=3)
    await store.add_push_subscription("ben", "https://push.example/ben", "k", "a", 1, keep=3)
    assert [s.endpoint for s in await store.push_subscriptions("ann")] == [
        f"https://push.example/{n}" for n in (2, 3, 4)
    ]
    assert len(await store.push_subscriptions("ben")) == 1  # another account's are not counted


async def test_removing_an_account_removes_its_push_subscriptions(store: Store) -> None:
    await store.create_account("ann", "ann", "h", False, 1)
    await store.add_push_subscription("ann", "https://push.example/a", "k", "a", 1)
    await store.add_push_subscription("ben", "https://push.example/b", "k", "a", 1)
    assert await store.delete_account("ann")
    assert await store.push_subscriptions("ann") == []
    assert len(await store.push_subscriptions("ben")) == 1


class FailsOnce:
    """The store, except that its next mark_delivered fails as a lost database connection does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = True

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def mark_delivered(self, account_key: str, seq: int) -> None:
        if self.failing:
            self.failing = False
            raise ConnectionResetError("connection was closed in the middle of operation")
        await self.store.mark_delivered(account_key, seq)


async def test_a_delivered_mark_the_store_could_not_take_is_written_next_time(store: Store) -> None:
    await store.create_account("hana", "hana", "h", False, 1)
    await store.create_account("ivo", "ivo", "h", False, 1)
    backend = StoreBackend(FailsOnce(store))  # type: ignore[arg-type]
    backend.mark_delivered("hana", 4)
    backend.mark_delivered("ivo", 7)
    with pytest.raises(ConnectionResetError):
        await backend.flush_marks()
    await backend.flush_marks()
    assert [(await store.get_account(key)).delivered_seq for key in ("hana", "ivo")] == [4, 7]  # type: ignore[union-attr]
