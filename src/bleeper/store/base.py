"""The store interface. Every backend passes the same test suite (tests/test_store.py)."""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from bleeper.chat.records import Ledger, LedgerEntry
from bleeper.store.audit import AuditEntry
from bleeper.store.model import Account, AuditEvent, InboxEntry, NewMessage, PushSubscription, StoredMessage

Committed = Callable[[list[StoredMessage] | None, BaseException | None], None]  # see Store.commit
_running: set[asyncio.Task[list[StoredMessage]]] = set()  # commits under way, kept referenced

# Shared SQL, written with ? placeholders (the PostgreSQL backend numbers them).
SELECT_ACCOUNT = "SELECT key, name, password_hash, admin, created_ms, delivered_seq FROM accounts"
# Retention: older messages keep their row (ids, times, who, to) but lose their text; the audit log keeps its hash.
EXPIRE = "UPDATE messages SET body = ? WHERE created_ms < ? AND body <> ?"
KEEP = "INSERT INTO standing (kind, key, value) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value"
FORGET = "DELETE FROM standing WHERE kind = ? AND key = ?"
AUDIT_HEAD = "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1"
# Web Push subscriptions: an endpoint is one browser, so adding it again (new keys, or another account signed in
# on that browser) replaces it; an account keeps its newest few, so stale devices cannot pile up.
ADD_PUSH = (
    "INSERT INTO push_subscriptions (account_key, endpoint, p256dh, auth, created_ms) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (endpoint) DO UPDATE SET account_key = excluded.account_key, p256dh = excluded.p256dh,"
    " auth = excluded.auth, created_ms = excluded.created_ms"
)
PRUNE_PUSH = (
    "DELETE FROM push_subscriptions WHERE account_key = ? AND endpoint NOT IN (SELECT endpoint FROM"
    " push_subscriptions WHERE account_key = ? ORDER BY created_ms DESC, endpoint DESC LIMIT ?)"
)
SELECT_PUSH = (
    "SELECT account_key, endpoint, p256dh, auth, created_ms FROM push_subscriptions WHERE account_key = ?"
    " ORDER BY created_ms, endpoint"
)
PUSH_PER_ACCOUNT = 10  # devices kept per account: adding an eleventh forgets the oldest
SELECT_AUDIT = "SELECT id, at_ms, kind, actor, subject, detail, prev_hash, hash FROM audit"
SELECT_MESSAGE = "SELECT id, sender, recipient, conversation, body, created_ms, client_id, urgent FROM messages"
SELECT_MESSAGE_WITH_SENDER_KEY = "SELECT sender_key, " + SELECT_MESSAGE.removeprefix("SELECT ")
# Messages by id range with their inbox numbers: a cluster node catching up on signals it missed.
STORED_BETWEEN = SELECT_MESSAGE_WITH_SENDER_KEY + " WHERE id >= ? AND id < ? ORDER BY id"
SEQS_BETWEEN = "SELECT message_id, account_key, seq FROM inbox WHERE message_id >= ? AND message_id < ? ORDER BY seq"
NEWEST_ID = "SELECT COALESCE(max(id), 0) FROM messages"
# A recalled urgent message takes no more steps: step -1, as when acknowledged, acknowledged by nobody ("").
CLOSE_RECALLED = (
    "INSERT INTO urgent_steps (message_id, step, at_ms, acked_by) VALUES (?, -1, ?, '') ON CONFLICT (message_id)"
    " DO UPDATE SET step = -1, acked_by = COALESCE(urgent_steps.acked_by, '')"
)
# The latest messages of a conversation, newest first: follow previous_id from the conversation's newest
# message (see store/batch.py for why there is no index to scan instead).
HISTORY = (
    "WITH RECURSIVE chain (id, depth) AS ("
    " SELECT last_id, 1 FROM conversations WHERE key = ?"
    " UNION ALL SELECT m.previous_id, chain.depth + 1 FROM messages m JOIN chain ON m.id = chain.id"
    " WHERE m.previous_id IS NOT NULL AND chain.depth < ?)"
    " SELECT m.id, m.sender, m.recipient, m.conversation, m.body, m.created_ms, m.client_id, m.urgent"
    " FROM messages m JOIN chain ON m.id = chain.id ORDER BY m.id DESC"
)


class Store(ABC):
    """Persistence for accounts, messages, inboxes and groups. Methods never block the event loop."""

    dialect: str
    url: str
    # How many group commits the journal may hand over before the first is answered. More than one only
    # for a store that commits them one after another in the order given (the SQLite writer process).
    pipeline_depth = 1

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    # accounts -------------------------------------------------------------------------------------------

    @abstractmethod
    async def create_account(self, key: str, name: str, password_hash: str, admin: bool, created_ms: int) -> Account:
        """Raises :class:`AccountExists` when the key is taken."""

    @abstractmethod
    async def get_account(self, key: str) -> Account | None: ...

    @abstractmethod
    async def list_accounts(self) -> list[Account]: ...

    @abstractmethod
    async def delete_account(self, key: str) -> bool: ...

    @abstractmethod
    async def set_password(self, key: str, password_hash: str) -> bool: ...

    # messages -------------------------------------------------------------------------------------------

    @abstractmethod
    async def store_messages(
        self, batch: Sequence[NewMessage], events: Sequence[AuditEvent] = ()
    ) -> list[StoredMessage]:
        """Store a batch in one transaction (group commit) and return them with ids and inbox sequence
        numbers. A message whose (sender, client_id) was stored before comes back as that earlier message,
        marked ``duplicate``, and is not stored again. The same transaction appends *events* and an entry
        per stored message to the audit chain."""

    def commit(self, messages: Sequence[NewMessage], events: Sequence[AuditEvent], done: Committed) -> None:
        """:meth:`store_messages` for the journal, which needs no coroutine: *done* is called with the results,
        or with ``None`` and the error. A store that can call it straight from its I/O callback (the SQLite
        writer process) overrides this and saves the journal a task's loop turns per commit."""

        def finished(task: asyncio.Task[list[StoredMessage]]) -> None:
            _running.discard(task)
            try:
                stored = task.result()
            except BaseException as exc:  # cancelled too: the journal must hear of every batch
                done(None, exc)
            else:
                done(stored, None)

        task = asyncio.ensure_future(self.store_messages(messages, events))
        _running.add(task)
        task.add_done_callback(finished)

    async def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append to the audit chain on its own (the admin tools' actions)."""
        await self.store_messages([], events)

    @abstractmethod
    async def recall(self, message_id: int, tombstone: str) -> bool:
        """Overwrite a message's text with *tombstone*; False when there is no such message. A recalled urgent
        message is closed where its steps are claimed (step -1, acknowledged by ``""``): no server alerts or
        escalates it again, even one that missed the news, and an ACK learns it was recalled."""

    @abstractmethod
    async def expire_before(self, cutoff_ms: int, text: str) -> int:
        """Retention: replace the text of messages older than *cutoff_ms* with *text*; how many changed."""

    async def ledger(self, message_id: int) -> Ledger | None:
        """A message (with its sender's account key) and its audit entries, in order."""
        found = await self._message_with_sender(message_id)
        if found is None:
            return None
        message, sender_key = found
        entries = await self._audit_about(str(message_id))
        return Ledger(message, sender_key, tuple(
            LedgerEntry(e.at_ms, e.kind, e.actor, tuple(json.loads(e.detail).items())) for e in entries
        ))  # fmt: skip

    @abstractmethod
    async def _message_with_sender(self, message_id: int) -> tuple[StoredMessage, str | None] | None: ...

    @abstractmethod
    async def _audit_about(self, subject: str) -> list[AuditEntry]: ...

    @abstractmethod
    async def audit_head(self) -> tuple[int, str]:
        """The last entry's id and hash, ``(0, GENESIS)`` for an empty log: record it to check later."""

    @abstractmethod
    async def audit_entries(
        self, after_id: int = 0, limit: int = 1000, since_ms: int | None = None, until_ms: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries with ids above *after_id*, in order, optionally within a time range (ms, inclusive
        since, exclusive until); page through with the last id returned."""

    @abstractmethod
    async def inbox(self, account_key: str, after_seq: int, limit: int = 1000) -> list[InboxEntry]:
        """The account's messages with sequence numbers above *after_seq*, oldest first."""

    @abstractmethod
    async def last_seq(self, account_key: str) -> int: ...

    @abstractmethod
    async def mark_delivered(self, account_key: str, seq: int) -> None:
        """Record that everything up to *seq* reached one of the account's connections (never goes back)."""

    @abstractmethod
    async def stored_between(self, first: int, upto: int) -> list[tuple[StoredMessage, str | None]]:
        """The messages with ids from *first* up to (not including) *upto*, in order, each with its inbox
        numbers and its sender's account key (None for a guest): what a cluster node missed."""

    @abstractmethod
    async def newest_id(self) -> int:
        """The highest message id stored (0 when none)."""

    @abstractmethod
    async def history(self, conversation: str, limit: int = 50) -> list[StoredMessage]:
        """The latest *limit* messages of a conversation, oldest first."""

    # groups ---------------------------------------------------------------------------------------------

    @abstractmethod
    async def add_member(self, group_key: str, group_name: str, account_key: str) -> None: ...

    @abstractmethod
    async def remove_member(self, group_key: str, account_key: str) -> None:
        """Forget the membership; a group left without members is forgotten too."""

    @abstractmethod
    async def load_groups(self) -> dict[str, tuple[str, set[str]]]:
        """Every group: key -> (display name, member account keys)."""

    # standing state -------------------------------------------------------------------------------------

    @abstractmethod
    async def keep(self, kind: str, key: str, value: str | None) -> None:
        """Set one row of standing state (on-call roles, backups, urgent messages waiting); None deletes it."""

    @abstractmethod
    async def standing(self) -> list[tuple[str, str, str]]:
        """Every row of standing state: (kind, key, value)."""

    # urgent messages' steps --------------------------------------------------------------------------------

    @abstractmethod
    async def claim_step(self, message_id: int, step: int, interval_ms: int, sent_ms: int) -> tuple[bool, int]:
        """Take step ``step + 1`` of an urgent message (its next alert or escalation), if nobody has (the
        message's steps still stand at *step*), it is not acknowledged, and it is due by the database's clock
        (*interval_ms* after the last step, or after *sent_ms* for the first). Returns whether this call took
        it, and the step the message stands at now (-1 once acknowledged)."""

    @abstractmethod
    async def claim_ack(self, message_id: int, key: str) -> str:
        """Acknowledge an urgent message as *key*, unless someone did first; returns who acknowledged it."""

    # Web Push subscriptions -----------------------------------------------------------------------------

    @abstractmethod
    async def add_push_subscription(
        self, account_key: str, endpoint: str, p256dh: str, auth: str, created_ms: int, keep: int = PUSH_PER_ACCOUNT
    ) -> None:
        """Save a subscription, replacing any with the same endpoint (whoever's it was), and forget the
        account's oldest beyond *keep*."""

    @abstractmethod
    async def remove_push_subscription(self, endpoint: str, account_key: str | None = None) -> bool:
        """Forget a subscription: the account's own (``PUSH REMOVE``), or whoever's (the push service said
        it is gone). False when there was none."""

    @abstractmethod
    async def push_subscriptions(self, account_key: str) -> list[PushSubscription]:
        """The account's subscriptions, oldest first."""

    async def message(self, message_id: int) -> StoredMessage | None:
        found = await self._message_with_sender(message_id)
        return None if found is None else found[0]


def message_from_row(row: Sequence[object], duplicate: bool = False) -> StoredMessage:
    msg_id, sender, to, conversation, body, created_ms, client_id, urgent = row
    return StoredMessage(
        int(msg_id),  # type: ignore[call-overload]
        str(sender),
        str(to),
        str(conversation),
        str(body),
        int(created_ms),  # type: ignore[call-overload]
        None if client_id is None else str(client_id),
        duplicate,
        urgent=bool(urgent),
    )


def with_seqs(
    rows: Sequence[Sequence[object]], seq_rows: Sequence[Sequence[object]]
) -> list[tuple[StoredMessage, str | None]]:
    """:data:`STORED_BETWEEN` rows with their :data:`SEQS_BETWEEN` rows, as :meth:`Store.stored_between` answers."""
    seqs: dict[int, list[tuple[str, int]]] = {}
    for message_id, account, seq in seq_rows:
        seqs.setdefault(int(message_id), []).append((str(account), int(seq)))  # type: ignore[call-overload]
    found = []
    for row in rows:
        message = message_from_row(row[1:])
        message.seqs = tuple(seqs.get(message.id, ()))
        found.append((message, None if row[0] is None else str(row[0])))
    return found


def push_from_row(row: Sequence[object]) -> PushSubscription:
    account_key, endpoint, p256dh, auth, created_ms = row
    return PushSubscription(str(account_key), str(endpoint), str(p256dh), str(auth), int(created_ms))  # type: ignore[call-overload]


def account_from_row(row: Sequence[object]) -> Account:
    key, name, password_hash, admin, created_ms, delivered_seq = row
    return Account(str(key), str(name), str(password_hash), bool(admin), int(created_ms), int(delivered_seq))  # type: ignore[call-overload]


def audit_filter(after_id: int, since_ms: int | None, until_ms: int | None) -> tuple[str, list[int]]:
    """The WHERE clause (with ? placeholders) of an audit page."""
    clauses, params = ["id > ?"], [after_id]
    if since_ms is not None:
        clauses.append("at_ms >= ?")
        params.append(since_ms)
    if until_ms is not None:
        clauses.append("at_ms < ?")
        params.append(until_ms)
    return " WHERE " + " AND ".join(clauses), params
