"""PostgreSQL backend (asyncpg), for larger sites and, later, several servers sharing one database."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from bleeper.store import schema
from bleeper.store.audit import GENESIS, AuditEntry, entries_from_rows
from bleeper.store.base import (
    ADD_PUSH,
    AUDIT_HEAD,
    CLOSE_RECALLED,
    EXPIRE,
    FORGET,
    HISTORY,
    KEEP,
    NEWEST_ID,
    PRUNE_PUSH,
    PUSH_PER_ACCOUNT,
    SELECT_ACCOUNT,
    SELECT_AUDIT,
    SELECT_MESSAGE_WITH_SENDER_KEY,
    SELECT_PUSH,
    SEQS_BETWEEN,
    STORED_BETWEEN,
    Store,
    account_from_row,
    audit_filter,
    message_from_row,
    push_from_row,
    with_seqs,
)
from bleeper.store.batch import AUDIT_COLUMNS, MESSAGE_COLUMNS, Batch
from bleeper.store.model import (
    Account,
    AccountExists,
    AuditEvent,
    InboxEntry,
    NewMessage,
    PushSubscription,
    SchemaTooNew,
    StoredMessage,
    StoreError,
)

_MIGRATION_LOCK = 0x626C6565  # "blee": one server migrates at a time
_WRITER_LOCK = 0x626C6566  # one transaction stores messages at a time


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to one list per column, the arrays ``unnest`` turns back into rows."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def numbered(sql: str) -> str:
    """``?`` placeholders to asyncpg's ``$1, $2, ...``."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class PostgresStore(Store):
    dialect = "postgres"

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self.url = url
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {_safe(url)}: {exc}. Check the server is running and the URL "
                "(postgresql://user@host:5432/database) is right"
            ) from exc
        store = cls(url, pool)
        if migrate:
            try:
                await store._migrate()
            except BaseException:
                await pool.close()
                raise
        return store

    async def _migrate(self, upto: int = schema.LATEST) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            has_table = await conn.fetchval("SELECT to_regclass('bleeper_schema') IS NOT NULL")
            if not has_table:
                others = await conn.fetchval(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
                )
                if others:
                    raise StoreError("this database has tables but is not a Bleeper database: use an empty database")
                await conn.execute("CREATE TABLE bleeper_schema (version INTEGER NOT NULL)")
                await conn.execute("INSERT INTO bleeper_schema (version) VALUES (0)")
            version = int(await conn.fetchval("SELECT version FROM bleeper_schema"))
            if version > schema.LATEST:
                raise SchemaTooNew(
                    f"the database is at schema version {version} but this Bleeper knows only up to "
                    f"{schema.LATEST}: upgrade Bleeper, or restore a backup made by this version"
                )
            for number in range(version + 1, upto + 1):
                for statement in schema.statements("postgres", number):
                    await conn.execute(statement)
                await conn.execute("UPDATE bleeper_schema SET version = $1", number)

    async def close(self) -> None:
        await self._pool.close()

    async def schema_version(self) -> int:
        return int(await self._pool.fetchval("SELECT version FROM bleeper_schema"))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return list(await self._pool.fetch(numbered(sql), *args))

    # accounts -------------------------------------------------------------------------------------------

    async def create_account(self, key: str, name: str, password_hash: str, admin: bool, created_ms: int) -> Account:
        try:
            await self._pool.execute(
                "INSERT INTO accounts (key, name, password_hash, admin, created_ms) VALUES ($1, $2, $3, $4, $5)",
                key, name, password_hash, admin, created_ms,
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise AccountExists(f"an account named {name} already exists") from None
        return Account(key, name, password_hash, admin, created_ms)

    async def get_account(self, key: str) -> Account | None:
        rows = await self._fetch(SELECT_ACCOUNT + " WHERE key = ?", key)
        return account_from_row(tuple(rows[0])) if rows else None

    async def list_accounts(self) -> list[Account]:
        return [account_from_row(tuple(row)) for row in await self._fetch(SELECT_ACCOUNT + " ORDER BY key")]

    async def delete_account(self, key: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute("DELETE FROM accounts WHERE key = $1", key)
            await conn.execute("DELETE FROM memberships WHERE account_key = $1", key)
            await conn.execute("DELETE FROM groups WHERE key NOT IN (SELECT group_key FROM memberships)")
            await conn.execute("DELETE FROM push_subscriptions WHERE account_key = $1", key)  # their phones go quiet
        return bool(status.endswith(" 1"))

    async def set_password(self, key: str, password_hash: str) -> bool:
        status = await self._pool.execute("UPDATE accounts SET password_hash = $1 WHERE key = $2", password_hash, key)
        return bool(status.endswith(" 1"))

    # messages -------------------------------------------------------------------------------------------

    async def store_messages(
        self, messages: Sequence[NewMessage], events: Sequence[AuditEvent] = ()
    ) -> list[StoredMessage]:
        """Set-based statements over arrays (``unnest``): a batch costs the same few round trips whatever its
        size. A transaction lock makes writers, from any number of servers, take turns, so conversation
        links and inbox sequences are handed out in commit order."""
        batch = Batch(messages, events)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _WRITER_LOCK)
            batch.settle(await self._earlier(conn, batch.client_ids()))
            if batch.fresh:
                conversations = batch.conversations()
                rows = await conn.fetch(
                    "SELECT key, last_id FROM conversations WHERE key = ANY($1::text[])", conversations
                )
                last_ids = {str(row[0]): int(row[1]) for row in rows}
                ids = sorted(
                    await conn.fetchval(
                        "SELECT array_agg(nextval(pg_get_serial_sequence('messages', 'id')))"
                        " FROM generate_series(1, $1)",
                        len(batch.fresh),
                    )
                )
                await conn.execute(
                    f"INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::text[],"
                    " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::boolean[])",
                    *_columns(batch.message_rows(ids, last_ids), 10),
                )
                await conn.execute(
                    "INSERT INTO conversations (key, last_id) SELECT * FROM unnest($1::text[], $2::bigint[])"
                    " ON CONFLICT (key) DO UPDATE SET last_id = excluded.last_id",
                    *_columns(batch.conversation_rows(), 2),
                )
            counts = batch.recipient_counts()
            last_seqs: dict[str, int] = {}
            if counts:
                rows = await conn.fetch(
                    "INSERT INTO sequences (account_key, last_seq) SELECT * FROM unnest($1::text[], $2::bigint[])"
                    " ON CONFLICT (account_key) DO UPDATE SET last_seq = sequences.last_seq + excluded.last_seq"
                    " RETURNING account_key, last_seq",
                    *_columns(counts, 2),
                )
                last_seqs = {row[0]: int(row[1]) for row in rows}
            inbox = batch.inbox_rows(last_seqs)
            if inbox:
                await conn.execute(
                    "INSERT INTO inbox (account_key, seq, message_id)"
                    " SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])",
                    *_columns(inbox, 3),
                )
            if batch.fresh or batch.events:
                head = await conn.fetchrow(AUDIT_HEAD)
                entries = batch.audit_rows(*((int(head[0]), str(head[1])) if head else (0, GENESIS)))
                await conn.execute(
                    f"INSERT INTO audit ({AUDIT_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::bigint[],"
                    " $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])",
                    *_columns(entries, 8),
                )
        return batch.results()

    @staticmethod
    async def _earlier(conn: Any, idents: list[tuple[str | None, str]]) -> dict[tuple[str | None, str], StoredMessage]:
        """The messages already stored under these (sender key, client id) pairs; two queries that can use
        the unique index, as ``IS NOT DISTINCT FROM`` cannot."""
        found: dict[tuple[str | None, str], StoredMessage] = {}
        keyed = [(key, cid) for key, cid in idents if key is not None]
        guests = [cid for key, cid in idents if key is None]
        if keyed:
            rows = await conn.fetch(
                SELECT_MESSAGE_WITH_SENDER_KEY
                + " WHERE (sender_key, client_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
                *_columns(keyed, 2),
            )
            found.update(((row[0], row[7]), message_from_row(tuple(row)[1:])) for row in rows)
        if guests:
            rows = await conn.fetch(
                SELECT_MESSAGE_WITH_SENDER_KEY + " WHERE sender_key IS NULL AND client_id = ANY($1::text[])", guests
            )
            found.update(((None, row[7]), message_from_row(tuple(row)[1:])) for row in rows)
        return found

    async def inbox(self, account_key: str, after_seq: int, limit: int = 1000) -> list[InboxEntry]:
        rows = await self._fetch(
            "SELECT i.seq, m.id, m.sender, m.recipient, m.conversation, m.body, m.created_ms, m.client_id, m.urgent"
            " FROM inbox i JOIN messages m ON m.id = i.message_id"
            " WHERE i.account_key = ? AND i.seq > ? ORDER BY i.seq LIMIT ?",
            account_key, after_seq, limit,
        )  # fmt: skip
        return [InboxEntry(int(row[0]), message_from_row(tuple(row)[1:])) for row in rows]

    async def last_seq(self, account_key: str) -> int:
        value = await self._pool.fetchval("SELECT last_seq FROM sequences WHERE account_key = $1", account_key)
        return int(value or 0)

    async def mark_delivered(self, account_key: str, seq: int) -> None:
        await self._pool.execute(
            "UPDATE accounts SET delivered_seq = $1 WHERE key = $2 AND delivered_seq < $1", seq, account_key
        )

    async def stored_between(self, first: int, upto: int) -> list[tuple[StoredMessage, str | None]]:
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            rows = await conn.fetch(numbered(STORED_BETWEEN), first, upto)
            seqs = await conn.fetch(numbered(SEQS_BETWEEN), first, upto)
        return with_seqs([tuple(row) for row in rows], [tuple(row) for row in seqs])

    async def newest_id(self) -> int:
        return int(await self._pool.fetchval(NEWEST_ID))

    async def history(self, conversation: str, limit: int = 50) -> list[StoredMessage]:
        rows = await self._fetch(HISTORY, conversation, limit) if limit > 0 else []
        return [message_from_row(tuple(row)) for row in reversed(rows)]

    async def recall(self, message_id: int, tombstone: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            urgent = await conn.fetchval("UPDATE messages SET body = $1 WHERE id = $2 RETURNING urgent", tombstone,
                                         message_id)  # fmt: skip
            if urgent:
                await conn.execute(numbered(CLOSE_RECALLED), message_id, int(time.time() * 1000))
            return urgent is not None

    async def expire_before(self, cutoff_ms: int, text: str) -> int:
        status = await self._pool.execute(numbered(EXPIRE), text, cutoff_ms, text)
        return int(status.split()[-1])

    async def keep(self, kind: str, key: str, value: str | None) -> None:
        if value is None:
            await self._pool.execute(numbered(FORGET), kind, key)
        else:
            await self._pool.execute(numbered(KEEP), kind, key, value)

    async def standing(self) -> list[tuple[str, str, str]]:
        rows = await self._pool.fetch("SELECT kind, key, value FROM standing ORDER BY kind, key")
        return [(row["kind"], row["key"], row["value"]) for row in rows]

    async def claim_step(self, message_id: int, step: int, interval_ms: int, sent_ms: int) -> tuple[bool, int]:
        async with self._pool.acquire() as conn:
            taken = await conn.fetchval(
                "INSERT INTO urgent_steps (message_id, step, at_ms) SELECT $1, $2::integer + 1, t.ms FROM"
                " (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) t"
                " WHERE $2::integer > 0 OR $4::bigint + $3::bigint <= t.ms"
                " ON CONFLICT (message_id) DO UPDATE SET step = excluded.step, at_ms = excluded.at_ms"
                " WHERE urgent_steps.step = $2::integer AND urgent_steps.at_ms + $3::bigint <= excluded.at_ms"
                " RETURNING step",
                message_id, step, interval_ms, sent_ms,
            )  # fmt: skip
            if taken is not None:
                return True, int(taken)
            now = await conn.fetchval("SELECT step FROM urgent_steps WHERE message_id = $1", message_id)
            return False, step if now is None else int(now)

    async def claim_ack(self, message_id: int, key: str) -> str:
        async with self._pool.acquire() as conn:
            acked = await conn.fetchval(
                "INSERT INTO urgent_steps (message_id, step, at_ms, acked_by) VALUES ($1, -1,"
                " (extract(epoch FROM clock_timestamp()) * 1000)::bigint, $2) ON CONFLICT (message_id) DO UPDATE"
                " SET step = -1, at_ms = excluded.at_ms, acked_by = excluded.acked_by"
                " WHERE urgent_steps.acked_by IS NULL RETURNING acked_by",
                message_id, key,
            )  # fmt: skip
            if acked is None:
                acked = await conn.fetchval("SELECT acked_by FROM urgent_steps WHERE message_id = $1", message_id)
            return str(acked)

    # cluster mode: guest names (cluster/registry.py's NameClaims) ----------------------------------------------

    async def claim_name(self, key: str, node: str, incarnation: str, claim: str) -> tuple[str, str, str]:
        for _ in range(3):  # a claim released between the two statements: try again
            row = await self._pool.fetchrow(
                "INSERT INTO names (key, node, incarnation, claim, at_ms) VALUES ($1, $2, $3, $4,"
                " (extract(epoch FROM clock_timestamp()) * 1000)::bigint) ON CONFLICT (key) DO NOTHING"
                " RETURNING node, incarnation, claim",
                key, node, incarnation, claim,
            ) or await self._pool.fetchrow("SELECT node, incarnation, claim FROM names WHERE key = $1", key)  # fmt: skip
            if row is not None:
                return str(row[0]), str(row[1]), str(row[2])
        raise StoreError(f"the name {key!r} keeps changing hands; try again")

    async def take_name(self, key: str, node: str, incarnation: str, claim: str, previous: str) -> bool:
        status = await self._pool.execute(
            "UPDATE names SET node = $2, incarnation = $3, claim = $4,"
            " at_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint WHERE key = $1 AND claim = $5",
            key, node, incarnation, claim, previous,
        )  # fmt: skip
        return bool(status.endswith(" 1"))

    async def release_name(self, key: str, claim: str) -> None:
        await self._pool.execute("DELETE FROM names WHERE key = $1 AND claim = $2", key, claim)

    async def name_holder(self, key: str) -> tuple[str, str, str] | None:
        row = await self._pool.fetchrow("SELECT node, incarnation, claim FROM names WHERE key = $1", key)
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    async def add_push_subscription(
        self, account_key: str, endpoint: str, p256dh: str, auth: str, created_ms: int, keep: int = PUSH_PER_ACCOUNT
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(numbered(ADD_PUSH), account_key, endpoint, p256dh, auth, created_ms)
            await conn.execute(numbered(PRUNE_PUSH), account_key, account_key, keep)

    async def remove_push_subscription(self, endpoint: str, account_key: str | None = None) -> bool:
        if account_key is None:
            status = await self._pool.execute("DELETE FROM push_subscriptions WHERE endpoint = $1", endpoint)
        else:
            status = await self._pool.execute(
                "DELETE FROM push_subscriptions WHERE endpoint = $1 AND account_key = $2", endpoint, account_key
            )
        return status != "DELETE 0"

    async def push_subscriptions(self, account_key: str) -> list[PushSubscription]:
        return [push_from_row(tuple(row)) for row in await self._fetch(SELECT_PUSH, account_key)]

    async def _message_with_sender(self, message_id: int) -> tuple[StoredMessage, str | None] | None:
        rows = await self._fetch(SELECT_MESSAGE_WITH_SENDER_KEY + " WHERE id = ?", message_id)
        return (message_from_row(tuple(rows[0])[1:]), rows[0][0]) if rows else None

    async def _audit_about(self, subject: str) -> list[AuditEntry]:
        rows = await self._fetch(f"{SELECT_AUDIT} WHERE subject = ? ORDER BY id", subject)
        return list(entries_from_rows(tuple(row) for row in rows))

    async def audit_head(self) -> tuple[int, str]:
        row = await self._pool.fetchrow(AUDIT_HEAD)
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    async def audit_entries(
        self, after_id: int = 0, limit: int = 1000, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[AuditEntry]:
        where, params = audit_filter(after_id, since_ms, until_ms)
        rows = await self._fetch(f"{SELECT_AUDIT}{where} ORDER BY id LIMIT ?", *params, limit)
        return list(entries_from_rows(tuple(row) for row in rows))

    # groups ---------------------------------------------------------------------------------------------

    async def add_member(self, group_key: str, group_name: str, account_key: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO groups (key, name) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", group_key, group_name
            )
            await conn.execute(
                "INSERT INTO memberships (group_key, account_key) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                group_key, account_key,
            )  # fmt: skip

    async def remove_member(self, group_key: str, account_key: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM memberships WHERE group_key = $1 AND account_key = $2", group_key, account_key
            )
            await conn.execute(
                "DELETE FROM groups WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM memberships WHERE group_key = $1)",
                group_key,
            )

    async def load_groups(self) -> dict[str, tuple[str, set[str]]]:
        groups: dict[str, tuple[str, set[str]]] = {
            row["key"]: (row["name"], set()) for row in await self._pool.fetch("SELECT key, name FROM groups")
        }
        for row in await self._pool.fetch("SELECT group_key, account_key FROM memberships"):
            if row["group_key"] in groups:
                groups[row["group_key"]][1].add(row["account_key"])
        return groups


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)
