"""A backend that keeps everything in memory and answers at once: for unit tests and throwaway servers."""

from __future__ import annotations

from bleeper.chat.backend import Answer, Pending
from bleeper.chat.records import (
    Account,
    AuditEvent,
    InboxEntry,
    Ledger,
    LedgerEntry,
    NewMessage,
    StoredMessage,
    stored_from,
)


class MemoryBackend:
    def __init__(self, accounts: dict[str, Account] | None = None) -> None:
        self.accounts = dict(accounts or {})
        self.passwords: dict[str, str] = {}  # account key -> plain password, for tests only
        self.messages: list[StoredMessage] = []
        self.inboxes: dict[str, list[InboxEntry]] = {}
        self.groups: dict[str, tuple[str, set[str]]] = {}
        self.delivered: dict[str, int] = {}
        self._by_client_id: dict[tuple[str | None, str], StoredMessage] = {}
        self.audit_log: list[AuditEvent] = []
        self.sender_keys: dict[int, str | None] = {}
        self.standing: dict[tuple[str, str], str] = {}  # (kind, key) -> value: see chat/standing.py
        self.steps: dict[int, tuple[int, str | None]] = {}  # urgent message id -> (step, acknowledged by)

    def store(self, message: NewMessage) -> Pending[StoredMessage]:
        if message.resend_of is not None:
            stored = self.messages[message.resend_of - 1]
            seqs = []
            for key in message.recipients:
                box = self.inboxes.setdefault(key, [])
                box.append(InboxEntry(len(box) + 1, stored))
                seqs.append((key, len(box)))
            return Answer.of(stored_from(message, stored.id, tuple(seqs)))
        if message.client_id is not None:
            earlier = self._by_client_id.get((message.sender_key, message.client_id))
            if earlier is not None:
                return Answer.of(_as_duplicate(earlier))
        msg_id = len(self.messages) + 1
        seqs = []
        for key in message.recipients:
            box = self.inboxes.setdefault(key, [])
            seqs.append((key, len(box) + 1))
        stored = stored_from(message, msg_id, tuple(seqs))
        for key, seq in seqs:
            self.inboxes[key].append(InboxEntry(seq, stored))
        self.messages.append(stored)
        self.sender_keys[msg_id] = message.sender_key
        if message.client_id is not None:
            self._by_client_id[(message.sender_key, message.client_id)] = stored
        return Answer.of(stored)

    def audit(self, event: AuditEvent) -> None:
        self.audit_log.append(event)

    def inbox(self, account_key: str, after_seq: int, limit: int) -> Pending[list[InboxEntry]]:
        return Answer.of([e for e in self.inboxes.get(account_key, []) if e.seq > after_seq][:limit])

    def last_seq(self, account_key: str) -> Pending[int]:
        return Answer.of(len(self.inboxes.get(account_key, [])))

    def mark_delivered(self, account_key: str, seq: int) -> None:
        self.delivered[account_key] = max(seq, self.delivered.get(account_key, 0))

    def account_gone(self, account_key: str) -> None:
        """Marks are kept in memory, nothing to write."""

    def history(self, conversation: str, limit: int) -> Pending[list[StoredMessage]]:
        return Answer.of([m for m in self.messages if m.conversation == conversation][-limit:])

    def recall(self, message_id: int, tombstone: str) -> Pending[bool]:
        if not 0 < message_id <= len(self.messages):
            return Answer.of(False)
        message = self.messages[message_id - 1]
        message.text = tombstone
        if message.urgent:
            self.steps[message_id] = (-1, self.steps.get(message_id, (0, None))[1] or "")
        return Answer.of(True)

    def ledger(self, message_id: int) -> Pending[Ledger | None]:
        if not 0 < message_id <= len(self.messages):
            return Answer.of(None)
        message = self.messages[message_id - 1]
        entries = tuple(LedgerEntry(e.at_ms, e.kind, e.actor, e.detail) for e in self.audit_log
                        if e.subject == str(message_id))  # fmt: skip
        sender_key = self.sender_keys.get(message_id)
        return Answer.of(Ledger(message, sender_key, entries))

    def account(self, key: str) -> Pending[Account | None]:
        return Answer.of(self.accounts.get(key))

    def verify_password(self, account: Account, password: str) -> Pending[bool]:
        return Answer.of(self.passwords.get(account.key) == password)

    def add_member(self, group_key: str, group_name: str, account_key: str) -> None:
        self.groups.setdefault(group_key, (group_name, set()))[1].add(account_key)

    def remove_member(self, group_key: str, account_key: str) -> None:
        if group_key in self.groups:
            members = self.groups[group_key][1]
            members.discard(account_key)
            if not members:
                del self.groups[group_key]

    def claim_step(self, message_id: int, step: int, interval_ms: int, sent_ms: int) -> Pending[tuple[bool, int]]:
        """The database's rule without its clock (tests drive the hub's own): the next step is taken once."""
        now, acked = self.steps.get(message_id, (step, None))
        if acked is not None:
            return Answer.of((False, -1))
        if now != step:
            return Answer.of((False, now))
        self.steps[message_id] = (step + 1, None)
        return Answer.of((True, step + 1))

    def claim_ack(self, message_id: int, key: str) -> Pending[str]:
        _, acked = self.steps.get(message_id, (0, None))
        if acked is None:
            acked = key
            self.steps[message_id] = (-1, key)
        return Answer.of(acked)

    def keep(self, kind: str, key: str, value: str | None) -> Pending[None]:
        if value is None:
            self.standing.pop((kind, key), None)
        else:
            self.standing[kind, key] = value
        return Answer.of()


def _as_duplicate(message: StoredMessage) -> StoredMessage:
    return StoredMessage(message.id, message.sender, message.to, message.conversation, message.text,
                         message.created_ms, message.client_id, True, message.seqs)  # fmt: skip
