"""The SQLite group commit: one transaction that stores a batch of messages and continues the audit chain.

Plain sqlite3, no event loop: the server's store thread and the writer process (``store/writer.py``) both run
it, and both import it from here, so neither imports the other.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from bleeper.store.audit import GENESIS
from bleeper.store.base import SELECT_MESSAGE, message_from_row
from bleeper.store.batch import AUDIT_COLUMNS, MESSAGE_COLUMNS, Batch
from bleeper.store.model import AuditEvent, NewMessage, StoredMessage


def write_batch(db: sqlite3.Connection, messages: list[NewMessage], events: list[AuditEvent]) -> list[StoredMessage]:
    """One transaction of a few statements whatever the batch size: this is the group commit.

    Every statement step hands the interpreter lock to the event loop and must win it back, which under
    load costs more than the SQL: so what the batch reads comes back as one row (JSON built by SQLite)
    and what it writes goes in as one multi-row statement per table.
    """
    batch = Batch(messages, events)
    with transaction(db):
        batch.settle(_earlier(db, batch.client_ids()))
        if batch.fresh or batch.events or batch.resends:
            recipients = [key for key, _ in batch.recipient_counts()]
            last_ids_json, last_seqs_json, newest, audit_head = db.execute(READ_FOR_BATCH, (
                json.dumps(batch.conversations()), json.dumps(recipients)
            )).fetchone()  # fmt: skip
            # AUTOINCREMENT never reuses an id; with one writer the next ones are ours to hand out.
            ids = range(newest + 1, newest + 1 + len(batch.fresh))
            rows = batch.message_rows(ids, json.loads(last_ids_json))
            _insert_rows(db, f"INSERT INTO messages ({MESSAGE_COLUMNS})", 10, rows)
            _insert_rows(db, "INSERT INTO conversations (key, last_id)", 2, batch.conversation_rows(),
                         " ON CONFLICT (key) DO UPDATE SET last_id = excluded.last_id")  # fmt: skip
            before = json.loads(last_seqs_json)
            last_seqs = {key: before.get(key, 0) + count for key, count in batch.recipient_counts()}
            _insert_rows(db, "INSERT INTO sequences (account_key, last_seq)", 2, sorted(last_seqs.items()),
                         " ON CONFLICT (account_key) DO UPDATE SET last_seq = excluded.last_seq")  # fmt: skip
            _insert_rows(db, "INSERT INTO inbox (account_key, seq, message_id)", 3, batch.inbox_rows(last_seqs))
            last_audit_id, last_hash = json.loads(audit_head) if audit_head else (0, GENESIS)
            entries = batch.audit_rows(last_audit_id, last_hash)
            _insert_rows(db, f"INSERT INTO audit ({AUDIT_COLUMNS})", 8, entries)
        else:
            batch.inbox_rows({})
    return batch.results()


def connect(path: str) -> sqlite3.Connection:
    """A connection set up as every Bleeper connection to the file is: WAL, a full fsync per commit."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=5.0, cached_statements=CACHED_STATEMENTS
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
    except BaseException:
        conn.close()
        raise
    return conn


# Multi-row statements differ by row count; keep them all prepared rather than parse them again.
CACHED_STATEMENTS = 1024
ROWS_PER_STATEMENT = 200  # 9 columns x 200 stays far below SQLite's limit of 32,766 parameters


def _insert_rows(
    db: sqlite3.Connection, insert: str, width: int, rows: Sequence[tuple[object, ...]], tail: str = ""
) -> None:
    """Many rows per statement: executemany steps once per row, and every step hands the GIL to the event
    loop and waits to get it back, which under load cost more than the insert itself."""
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        db.execute(f"{insert} VALUES {', '.join([one] * len(chunk))}{tail}", [value for row in chunk for value in row])


# The newest id of each conversation, the last inbox number of each recipient, the last message id and the
# audit chain's head: one row. Keys arrive as JSON arrays, so the statement text never changes.
READ_FOR_BATCH = (
    "SELECT (SELECT json_group_object(key, last_id) FROM conversations"
    "        WHERE key IN (SELECT value FROM json_each(?))),"
    " (SELECT json_group_object(account_key, last_seq) FROM sequences"
    "  WHERE account_key IN (SELECT value FROM json_each(?))),"
    " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),"
    " (SELECT json_array(id, hash) FROM audit ORDER BY id DESC LIMIT 1)"
)
EARLIER = (
    "SELECT json_group_array(json_array("
    + SELECT_MESSAGE.removeprefix("SELECT ").removesuffix(" FROM messages")
    + ", sender_key)) FROM messages WHERE client_id IS NOT NULL AND (sender_key, client_id) IN"
    " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))"
)


def _earlier(
    db: sqlite3.Connection, idents: list[tuple[str | None, str]]
) -> dict[tuple[str | None, str], StoredMessage]:
    """The messages stored before under these (sender key, client id) pairs, looked up in one statement."""
    found: dict[tuple[str | None, str], StoredMessage] = {}
    keyed = [ident for ident in idents if ident[0] is not None]
    if keyed:
        (text,) = db.execute(EARLIER, (json.dumps(keyed),)).fetchone()
        for *row, sender_key in json.loads(text):
            found[(sender_key, row[6])] = message_from_row(row)  # row[6]: the client id
    for ident in idents:  # a sender without an account: rare, and NULL never matches in IN
        if ident[0] is None:
            row = db.execute(SELECT_MESSAGE + " WHERE sender_key IS NULL AND client_id = ?", (ident[1],)).fetchone()
            if row is not None:
                found[ident] = message_from_row(row)
    return found


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite may already have rolled back (disk full): keep the real error
            self.db.execute("ROLLBACK")
