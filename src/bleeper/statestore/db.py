"""The state store's data: keys with text values and versions, in SQLite.

Every write takes the next number of one counter, so a version is never reused, not even by a key deleted and
created again: a client holding version 7 cannot be fooled by a different value that also claims 7. A delete
leaves a tombstone (no value, a new version) so that someone watching the key sees it go. Conditional writes
read and write in one ``BEGIN IMMEDIATE`` transaction, so two writers racing on one version cannot both win.
Writes and listings block, and the service runs them in worker threads (one at a time: a lock). A single
key's read is a primary-key lookup that WAL lets run beside a write without waiting: :meth:`KeyValueDB.get`
uses its own connection and is cheap enough to call on the event loop, which is most of a store's traffic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_KEY = 256  # bytes of UTF-8
MAX_VALUE = 64 * 1024  # bytes of UTF-8

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counter (id, version) VALUES (1, 0)",
)


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str | None  # None: deleted (a tombstone)
    version: int


class Conflict(Exception):
    """A conditional write found another version; carries the current entry (None: never existed)."""

    def __init__(self, current: Entry | None) -> None:
        super().__init__("version conflict")
        self.current = current


class KeyValueDB:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for sql in SCHEMA:
                self._conn.execute(sql)
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0) \
            if path != ":memory:" else self._conn  # fmt: skip

    def close(self) -> None:
        with self._lock:
            if self._reader is not self._conn:
                self._reader.close()
            self._conn.close()

    def get(self, key: str) -> Entry | None:
        """The entry, tombstones included (their value is None); None when the key was never written. Only
        from one thread (the event loop's)."""
        if self._reader is self._conn:  # :memory: has one connection, shared with the writer thread
            with self._lock:
                row = self._conn.execute("SELECT value, version FROM kv WHERE key = ?", (key,)).fetchone()
        else:
            row = self._reader.execute("SELECT value, version FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else Entry(key, row[0], row[1])

    def items(self, prefix: str = "", limit: int = 1000) -> list[Entry]:
        """Live entries whose key starts with *prefix*, in key order."""
        upper = prefix + "\U0010ffff"
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, value, version FROM kv WHERE value IS NOT NULL AND key >= ? AND key < ? ORDER BY key "
                "LIMIT ?",
                (prefix, upper, limit),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM kv WHERE value IS NOT NULL").fetchone()[0])

    def put(
        self,
        key: str,
        value: str | None,
        *,
        if_version: int | None = None,
        if_absent: bool = False,
        when: Callable[[Entry | None], bool] | None = None,
    ) -> tuple[Entry, bool]:
        """Set (or with None delete) a key; returns the new entry, and whether the key had no value before.

        *if_version*: only if the key's current version is this one (Conflict otherwise). *if_absent*: only if
        the key has no live value. *when*: only if it holds for the live entry (None when the key has no value),
        asked inside the transaction. The conditions come first: a delete of a key that has no value, its
        conditions met, raises KeyError.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT value, version FROM kv WHERE key = ?", (key,)).fetchone()
                current = None if row is None else Entry(key, row[0], row[1])
                live = current is not None and current.value is not None
                if if_absent and live:
                    raise Conflict(current)
                if if_version is not None and (not live or current is None or current.version != if_version):
                    raise Conflict(current if live else None)
                if when is not None and not when(current if live else None):
                    raise Conflict(current if live else None)
                if value is None and not live:
                    raise KeyError(key)
                (version,) = conn.execute("UPDATE counter SET version = version + 1 RETURNING version").fetchone()
                conn.execute(
                    "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version",
                    (key, value, version),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return Entry(key, value, version), not live


def _size(text: str) -> int | None:
    """Bytes of UTF-8, or None when the text cannot be UTF-8 (lone surrogates)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def key_problem(key: str) -> str | None:
    size = _size(key)
    if not key:
        return "the key is empty"
    if size is None:
        return "the key is not valid UTF-8"
    if size > MAX_KEY:
        return f"the key is longer than {MAX_KEY} bytes"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        return "the key holds control characters"
    return None


def value_problem(value: str) -> str | None:
    size = _size(value)
    if size is None:
        return "the value is not valid UTF-8"
    if size > MAX_VALUE:
        return f"the value is longer than {MAX_VALUE} bytes (64 KiB)"
    return None
