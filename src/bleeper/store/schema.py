"""The schema, as numbered migrations. A database records the last one applied and is upgraded in place.

Statements are written once with ``{id}``, ``{int_pk}`` and ``{bool}`` standing for the column types that differ between
SQLite and PostgreSQL.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    [  # 1: accounts, messages, inboxes, groups
        "CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, password_hash TEXT NOT NULL,"
        " admin {bool} NOT NULL DEFAULT FALSE, created_ms BIGINT NOT NULL, delivered_seq BIGINT NOT NULL DEFAULT 0)",
        "CREATE TABLE messages (id {id}, client_id TEXT, sender TEXT NOT NULL, sender_key TEXT,"
        " recipient TEXT NOT NULL, conversation TEXT NOT NULL, body TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE UNIQUE INDEX messages_client ON messages (sender_key, client_id) WHERE client_id IS NOT NULL",
        "CREATE INDEX messages_conversation ON messages (conversation, id)",
        "CREATE TABLE sequences (account_key TEXT PRIMARY KEY, last_seq BIGINT NOT NULL)",
        "CREATE TABLE inbox (account_key TEXT NOT NULL, seq BIGINT NOT NULL, message_id BIGINT NOT NULL,"
        " PRIMARY KEY (account_key, seq))",
        "CREATE TABLE groups (key TEXT PRIMARY KEY, name TEXT NOT NULL)",
        "CREATE TABLE memberships (group_key TEXT NOT NULL, account_key TEXT NOT NULL,"
        " PRIMARY KEY (group_key, account_key))",
    ],
    [  # 2: find a message's recipients without scanning every inbox
        "CREATE INDEX inbox_message ON inbox (message_id)",
    ],
    [  # 3: history by links from each conversation's newest message, not by an index (see store/batch.py)
        "ALTER TABLE messages ADD COLUMN previous_id BIGINT",
        "UPDATE messages SET previous_id = (SELECT max(p.id) FROM messages p"
        " WHERE p.conversation = messages.conversation AND p.id < messages.id)",
        "CREATE TABLE conversations (key TEXT PRIMARY KEY, last_id BIGINT NOT NULL)",
        "INSERT INTO conversations (key, last_id) SELECT conversation, max(id) FROM messages GROUP BY conversation",
        "DROP INDEX messages_conversation",
    ],
    [  # 4: the hash-chained audit log (see store/audit.py)
        "CREATE TABLE audit (id {int_pk}, at_ms BIGINT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,"
        " subject TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
        "CREATE INDEX audit_time ON audit (at_ms)",
    ],
    [  # 5: urgent messages (URGENT): they alert until acknowledged, and replay as URGENT
        "ALTER TABLE messages ADD COLUMN urgent {bool} NOT NULL DEFAULT FALSE",
    ],
    [  # 6: a message's ledger (TRACE) is its audit entries: find them by subject
        "CREATE INDEX audit_subject ON audit (subject)",
    ],
    [  # 7: on-call roles, backups and waiting urgent messages survive a restart (see chat/standing.py)
        "CREATE TABLE standing (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key))",
    ],
    [  # 8: Web Push subscriptions (PUSH ADD): an endpoint is one browser on one device, so it is the key
        "CREATE TABLE push_subscriptions (account_key TEXT NOT NULL, endpoint TEXT PRIMARY KEY,"
        " p256dh TEXT NOT NULL, auth TEXT NOT NULL, created_ms BIGINT NOT NULL)",
        "CREATE INDEX push_subscriptions_account ON push_subscriptions (account_key)",
    ],
    [  # 9: each alert or escalation step of an urgent message, and its acknowledgement, is claimed here once,
        # so that of several servers (a cluster) exactly one takes it: step is the fencing token, at_ms the
        # database's clock when it was taken (see Store.claim_step)
        "CREATE TABLE urgent_steps (message_id BIGINT PRIMARY KEY, step INTEGER NOT NULL, at_ms BIGINT NOT NULL,"
        " acked_by TEXT)",
    ],
    [  # 10: cluster mode: the guest names held by each node, one row per name (see cluster/registry.py)
        "CREATE TABLE names (key TEXT PRIMARY KEY, node TEXT NOT NULL, incarnation TEXT NOT NULL,"
        " claim TEXT NOT NULL, at_ms BIGINT NOT NULL)",
    ],
]

LATEST = len(MIGRATIONS)

DIALECTS = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "int_pk": "INTEGER PRIMARY KEY", "bool": "BOOLEAN"},
    "postgres": {"id": "BIGSERIAL PRIMARY KEY", "int_pk": "BIGINT PRIMARY KEY", "bool": "BOOLEAN"},
}


def statements(dialect: str, version: int) -> list[str]:
    """The statements of migration *version* (1-based) for *dialect*."""
    return [sql.format(**DIALECTS[dialect]) for sql in MIGRATIONS[version - 1]]
