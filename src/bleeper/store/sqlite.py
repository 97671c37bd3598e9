"""SQLite backend: the default, one file in the data directory.

All database work runs on one dedicated thread with the standard library's sqlite3, a whole transaction per
hop: the event loop never blocks, and a batch of messages costs one thread switch and one fsync (group
commit), not one per statement. WAL mode lets readers (a backup, ``bleeper user list``) work alongside the
server; ``synchronous=FULL`` makes an acknowledged commit survive power loss, not just a crash.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

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
    Committed,
    Store,
    account_from_row,
    audit_filter,
    message_from_row,
    push_from_row,
    with_seqs,
)
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
    StoreFull,
)
from bleeper.store.sqlite_commit import connect, transaction, write_batch
from bleeper.store.writer import SqliteFailure, WriterProcess

T = TypeVar("T")
log = logging.getLogger("bleeper.store")


class SqliteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bleeper-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock: IO[str] | None = None
        self._writer: WriterProcess | None = None
        self._restarting = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: str, *, migrate: bool = True, exclusive: bool = False, writer: str = "process"
    ) -> SqliteStore:
        """*exclusive*: the server's claim on the file (``<path>.lock``), so a second server, or a restore,
        cannot use it at the same time. Readers such as ``bleeper user`` do not need it. The server's store
        commits messages in a *writer* ``"process"`` of its own (see store/writer.py), or on its ``"thread"``."""
        store = cls(path)
        try:
            if exclusive and path != ":memory:":
                store._lock = await asyncio.to_thread(claim, path)
            await store._run(store._connect, migrate)
            if exclusive and path != ":memory:" and writer == "process":
                store._writer = await WriterProcess.start(path, store._keep_fds())
                store.pipeline_depth = PIPELINE_DEPTH
        except BaseException:
            if store._conn is not None:
                store._conn.close()
            store._release()
            store._executor.shutdown(wait=False)
            raise
        return store

    def _keep_fds(self) -> tuple[int, ...]:
        return (self._lock.fileno(),) if self._lock is not None else ()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the lock
            self._lock = None

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as exc:
            raise translate(exc, self.path) from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    def _connect(self, migrate: bool) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        try:
            if migrate:
                _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._conn is not None:
            await self._run(self._db().close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._release()

    async def schema_version(self) -> int:
        return await self._run(lambda: _version(self._db()))

    # accounts -------------------------------------------------------------------------------------------

    async def create_account(self, key: str, name: str, password_hash: str, admin: bool, created_ms: int) -> Account:
        def create() -> Account:
            db = self._db()
            try:
                db.execute(
                    "INSERT INTO accounts (key, name, password_hash, admin, created_ms) VALUES (?, ?, ?, ?, ?)",
                    (key, name, password_hash, admin, created_ms),
                )
            except sqlite3.IntegrityError:
                raise AccountExists(f"an account named {name} already exists") from None
            return Account(key, name, password_hash, admin, created_ms)

        return await self._run(create)

    async def get_account(self, key: str) -> Account | None:
        def get() -> Account | None:
            row = self._db().execute(SELECT_ACCOUNT + " WHERE key = ?", (key,)).fetchone()
            return account_from_row(row) if row else None

        return await self._run(get)

    async def list_accounts(self) -> list[Account]:
        return await self._run(
            lambda: [account_from_row(r) for r in self._db().execute(SELECT_ACCOUNT + " ORDER BY key")]
        )

    async def delete_account(self, key: str) -> bool:
        def delete() -> bool:
            db = self._db()
            with transaction(db):
                gone = db.execute("DELETE FROM accounts WHERE key = ?", (key,)).rowcount > 0
                db.execute("DELETE FROM memberships WHERE account_key = ?", (key,))
                db.execute("DELETE FROM groups WHERE key NOT IN (SELECT group_key FROM memberships)")
                db.execute("DELETE FROM push_subscriptions WHERE account_key = ?", (key,))  # their phones go quiet
            return gone

        return await self._run(delete)

    async def set_password(self, key: str, password_hash: str) -> bool:
        return await self._run(
            lambda: (
                self._db().execute("UPDATE accounts SET password_hash = ? WHERE key = ?", (password_hash, key)).rowcount
                > 0
            )
        )

    # messages -------------------------------------------------------------------------------------------

    async def store_messages(
        self, batch: Sequence[NewMessage], events: Sequence[AuditEvent] = ()
    ) -> list[StoredMessage]:
        if self._writer is None:
            return await self._run(lambda: write_batch(self._db(), list(batch), list(events)))
        if self._writer.stopped:
            await self._restart_writer()
        try:
            return await self._writer.write(batch, events)
        except SqliteFailure as exc:
            raise self._advice(exc) from None

    def commit(self, messages: Sequence[NewMessage], events: Sequence[AuditEvent], done: Committed) -> None:
        writer = self._writer
        if writer is None or writer.stopped:
            super().commit(messages, events, done)  # the thread, or a writer process to start again first
            return

        def answered(stored: list[StoredMessage] | None, error: BaseException | None) -> None:
            done(stored, self._advice(error) if isinstance(error, SqliteFailure) else error)

        writer.submit(messages, events, answered)

    def _advice(self, failure: SqliteFailure) -> StoreError:
        """The writer process's SQLite error, as the error the thread would have raised."""
        return translate(sqlite3.OperationalError(str(failure)), self.path)

    async def _restart_writer(self) -> None:
        async with self._restarting:
            if self._writer is not None and self._writer.stopped:
                log.error("the SQLite writer process stopped (%s); starting another", self._writer.stopped)
                await self._writer.close()
                self._writer = await WriterProcess.start(self.path, self._keep_fds())

    async def inbox(self, account_key: str, after_seq: int, limit: int = 1000) -> list[InboxEntry]:
        def read() -> list[InboxEntry]:
            rows = (
                self._db()
                .execute(
                    "SELECT i.seq, m.id, m.sender, m.recipient, m.conversation, m.body, m.created_ms, m.client_id, m.urgent"
                    " FROM inbox i JOIN messages m ON m.id = i.message_id"
                    " WHERE i.account_key = ? AND i.seq > ? ORDER BY i.seq LIMIT ?",
                    (account_key, after_seq, limit),
                )
                .fetchall()
            )
            return [InboxEntry(int(row[0]), message_from_row(row[1:])) for row in rows]

        return await self._run(read)

    async def last_seq(self, account_key: str) -> int:
        def read() -> int:
            row = self._db().execute("SELECT last_seq FROM sequences WHERE account_key = ?", (account_key,)).fetchone()
            return int(row[0]) if row else 0

        return await self._run(read)

    async def mark_delivered(self, account_key: str, seq: int) -> None:
        await self._run(
            lambda: self._db().execute(
                "UPDATE accounts SET delivered_seq = ? WHERE key = ? AND delivered_seq < ?", (seq, account_key, seq)
            )
        )

    async def stored_between(self, first: int, upto: int) -> list[tuple[StoredMessage, str | None]]:
        def read() -> list[tuple[StoredMessage, str | None]]:
            db = self._db()
            rows = db.execute(STORED_BETWEEN, (first, upto)).fetchall()
            return with_seqs(rows, db.execute(SEQS_BETWEEN, (first, upto)).fetchall())

        return await self._run(read)

    async def newest_id(self) -> int:
        return await self._run(lambda: int(self._db().execute(NEWEST_ID).fetchone()[0]))

    async def history(self, conversation: str, limit: int = 50) -> list[StoredMessage]:
        def read() -> list[StoredMessage]:
            rows = self._db().execute(HISTORY, (conversation, limit)).fetchall() if limit > 0 else []
            return [message_from_row(row) for row in reversed(rows)]

        return await self._run(read)

    async def recall(self, message_id: int, tombstone: str) -> bool:
        def update() -> bool:
            db = self._db()
            with transaction(db):
                row = db.execute("UPDATE messages SET body = ? WHERE id = ? RETURNING urgent",
                                 (tombstone, message_id)).fetchone()  # fmt: skip
                if row is not None and row[0]:
                    db.execute(CLOSE_RECALLED, (message_id, int(time.time() * 1000)))
            return row is not None

        return await self._run(update)

    async def expire_before(self, cutoff_ms: int, text: str) -> int:
        def update() -> int:
            return int(self._db().execute(EXPIRE, (text, cutoff_ms, text)).rowcount)

        return await self._run(update)

    async def keep(self, kind: str, key: str, value: str | None) -> None:
        def write() -> None:
            if value is None:
                self._db().execute(FORGET, (kind, key))
            else:
                self._db().execute(KEEP, (kind, key, value))

        await self._run(write)

    async def standing(self) -> list[tuple[str, str, str]]:
        def read() -> list[tuple[str, str, str]]:
            rows = self._db().execute("SELECT kind, key, value FROM standing ORDER BY kind, key").fetchall()
            return [(str(kind), str(key), str(value)) for kind, key, value in rows]

        return await self._run(read)

    async def claim_step(self, message_id: int, step: int, interval_ms: int, sent_ms: int) -> tuple[bool, int]:
        """As on PostgreSQL, on this machine's clock: one server owns its SQLite file."""

        def claim() -> tuple[bool, int]:
            db = self._db()
            row = db.execute(
                "INSERT INTO urgent_steps (message_id, step, at_ms) SELECT ?1, ?2 + 1, ?5 WHERE ?2 > 0 OR"
                " ?4 + ?3 <= ?5 ON CONFLICT (message_id) DO UPDATE SET step = excluded.step, at_ms ="
                " excluded.at_ms WHERE urgent_steps.step = ?2 AND urgent_steps.at_ms + ?3 <= excluded.at_ms"
                " RETURNING step",
                (message_id, step, interval_ms, sent_ms, int(time.time() * 1000)),
            ).fetchone()
            if row is not None:
                return True, int(row[0])
            row = db.execute("SELECT step FROM urgent_steps WHERE message_id = ?", (message_id,)).fetchone()
            return False, step if row is None else int(row[0])

        return await self._run(claim)

    async def claim_ack(self, message_id: int, key: str) -> str:
        def claim() -> str:
            db = self._db()
            row = db.execute(
                "INSERT INTO urgent_steps (message_id, step, at_ms, acked_by) VALUES (?1, -1, ?3, ?2)"
                " ON CONFLICT (message_id) DO UPDATE SET step = -1, at_ms = excluded.at_ms, acked_by ="
                " excluded.acked_by WHERE urgent_steps.acked_by IS NULL RETURNING acked_by",
                (message_id, key, int(time.time() * 1000)),
            ).fetchone()
            if row is None:
                row = db.execute("SELECT acked_by FROM urgent_steps WHERE message_id = ?", (message_id,)).fetchone()
            return str(row[0])

        return await self._run(claim)

    async def add_push_subscription(
        self, account_key: str, endpoint: str, p256dh: str, auth: str, created_ms: int, keep: int = PUSH_PER_ACCOUNT
    ) -> None:
        def write() -> None:
            db = self._db()
            with transaction(db):
                db.execute(ADD_PUSH, (account_key, endpoint, p256dh, auth, created_ms))
                db.execute(PRUNE_PUSH, (account_key, account_key, keep))

        await self._run(write)

    async def remove_push_subscription(self, endpoint: str, account_key: str | None = None) -> bool:
        def delete() -> bool:
            if account_key is None:
                return self._db().execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,)).rowcount > 0
            sql = "DELETE FROM push_subscriptions WHERE endpoint = ? AND account_key = ?"
            return self._db().execute(sql, (endpoint, account_key)).rowcount > 0

        return await self._run(delete)

    async def push_subscriptions(self, account_key: str) -> list[PushSubscription]:
        return await self._run(
            lambda: [push_from_row(row) for row in self._db().execute(SELECT_PUSH, (account_key,)).fetchall()]
        )

    async def _message_with_sender(self, message_id: int) -> tuple[StoredMessage, str | None] | None:
        def read() -> tuple[StoredMessage, str | None] | None:
            row = self._db().execute(SELECT_MESSAGE_WITH_SENDER_KEY + " WHERE id = ?", (message_id,)).fetchone()
            return (message_from_row(row[1:]), row[0]) if row else None

        return await self._run(read)

    async def _audit_about(self, subject: str) -> list[AuditEntry]:
        sql = f"{SELECT_AUDIT} WHERE subject = ? ORDER BY id"
        return await self._run(lambda: list(entries_from_rows(self._db().execute(sql, (subject,)))))

    async def audit_head(self) -> tuple[int, str]:
        row = await self._run(lambda: self._db().execute(AUDIT_HEAD).fetchone())
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    async def audit_entries(
        self, after_id: int = 0, limit: int = 1000, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[AuditEntry]:
        where, params = audit_filter(after_id, since_ms, until_ms)
        sql = f"{SELECT_AUDIT}{where} ORDER BY id LIMIT ?"
        return await self._run(lambda: list(entries_from_rows(self._db().execute(sql, (*params, limit)))))

    # groups ---------------------------------------------------------------------------------------------

    async def add_member(self, group_key: str, group_name: str, account_key: str) -> None:
        def add() -> None:
            db = self._db()
            with transaction(db):
                db.execute(
                    "INSERT INTO groups (key, name) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (group_key, group_name)
                )
                db.execute(
                    "INSERT INTO memberships (group_key, account_key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (group_key, account_key),
                )

        await self._run(add)

    async def remove_member(self, group_key: str, account_key: str) -> None:
        def remove() -> None:
            db = self._db()
            with transaction(db):
                db.execute("DELETE FROM memberships WHERE group_key = ? AND account_key = ?", (group_key, account_key))
                db.execute(
                    "DELETE FROM groups WHERE key = ? AND NOT EXISTS (SELECT 1 FROM memberships WHERE group_key = ?)",
                    (group_key, group_key),
                )

        await self._run(remove)

    async def load_groups(self) -> dict[str, tuple[str, set[str]]]:
        def load() -> dict[str, tuple[str, set[str]]]:
            db = self._db()
            groups: dict[str, tuple[str, set[str]]] = {
                key: (name, set()) for key, name in db.execute("SELECT key, name FROM groups")
            }
            for group_key, account_key in db.execute("SELECT group_key, account_key FROM memberships"):
                if group_key in groups:
                    groups[group_key][1].add(account_key)
            return groups

        return await self._run(load)


PIPELINE_DEPTH = 2  # batches sent to the writer process ahead: one committing, the next waiting for it


def claim(path: str, wait: float = 10.0) -> IO[str]:
    """Take ``<path>.lock`` for this process, or explain who has it.

    The writer process shares the lock, so that nobody takes the file while it still writes. A server that
    died leaves it finishing its last commit for a moment: for up to *wait* seconds, a lock whose server is
    gone is waited for rather than refused."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(f"{path}.lock", "a+")  # noqa: SIM115 - held open for the server's lifetime
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            server = re.search(r"pid (\d+)", holder)
            if server is not None and not _running(int(server.group(1))) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            handle.close()
            raise StoreError(f"{path} is in use by {holder}: stop that server, or choose another --db") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"Bleeper server pid {os.getpid()}")
    handle.flush()
    return handle


def _running(pid: int) -> bool:
    """Whether process *pid* exists and has not exited (a zombie waiting for its parent has)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel instead
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def in_use(path: str) -> bool:
    """Whether a server holds the file (see :func:`claim`)."""
    try:
        handle = open(f"{path}.lock")  # noqa: SIM115
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        handle.close()
    return False


def _version(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT version FROM bleeper_schema").fetchone()
    return int(row[0]) if row else 0


def _migrate(db: sqlite3.Connection, upto: int = schema.LATEST) -> None:
    """Bring the database to migration *upto*, refusing databases that are not ours or are newer."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "bleeper_schema" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError("this database has tables but is not a Bleeper database: choose another --db path")
        db.execute("CREATE TABLE bleeper_schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO bleeper_schema (version) VALUES (0)")
    version = _version(db)
    if version > schema.LATEST:
        raise SchemaTooNew(
            f"the database is at schema version {version} but this Bleeper knows only up to {schema.LATEST}: "
            "upgrade Bleeper, or restore a backup made by this version"
        )
    for number in range(version + 1, upto + 1):
        with transaction(db):
            for statement in schema.statements("sqlite", number):
                db.execute(statement)
            db.execute("UPDATE bleeper_schema SET version = ?", (number,))


def translate(exc: sqlite3.Error, path: str) -> StoreError:
    """Turn a sqlite3 error into one that says what to do."""
    text = str(exc)
    if "file is not a database" in text or "malformed" in text:
        return StoreError(
            f"{path} is damaged or not a database ({text}): restore it from a backup, or move it aside to start empty"
        )
    if "locked" in text or "busy" in text:
        return StoreError(f"{path} is locked ({text}): is another Bleeper server using it?")
    if "disk is full" in text or "database or disk is full" in text:
        return StoreFull(f"no space left for {path}: free disk space; messages are refused until then")
    if "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write {path} ({text}): check the path and its permissions")
    return StoreError(f"database error on {path}: {text}")
