"""Values the chat domain exchanges with storage. Defined here, in the domain, so storage depends on chat and
never the other way round.

The per-message records are plain slotted dataclasses, not frozen ones: a frozen dataclass sets each field
through ``object.__setattr__``, which costs almost a microsecond per record on the message path. Treat them as
values all the same."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


class StorageError(Exception):
    """Storage failed; the message was not stored and must not be acknowledged."""


class StorageUnsure(StorageError):
    """Storage stopped in the middle of a commit: the message may or may not be stored. Only a resend with
    the same client id settles it (it is stored once either way)."""


class StorageFull(StorageError):
    """No space left: new messages are refused until an operator frees space."""


@dataclass(frozen=True, slots=True)
class Account:
    key: str
    name: str
    password_hash: str
    admin: bool
    created_ms: int
    delivered_seq: int = 0


@dataclass(slots=True)
class NewMessage:
    """A message to store. ``recipients`` are the account keys that must receive it, online or not."""

    sender: str
    sender_key: str | None
    to: str  # as on the wire: "*", "@a,b" or "#group"
    conversation: str  # what HISTORY looks up: "*", "#<group key>" or "@<sorted participant keys>"
    text: str
    created_ms: int
    recipients: tuple[str, ...] = ()
    client_id: str | None = None
    urgent: bool = False  # must be acknowledged (ACK); alerts again until it is
    # The id of a message already stored that now goes to more *recipients* as it is (an urgent message
    # escalated to a backup or handed over with an on-call role): no new message, only inbox entries, so one
    # page keeps one id everywhere. The other fields repeat the stored message's.
    resend_of: int | None = None


@dataclass(slots=True)
class StoredMessage:
    id: int
    sender: str
    to: str
    conversation: str
    text: str
    created_ms: int
    client_id: str | None = None
    duplicate: bool = False  # the client_id was seen before: this is the earlier message
    seqs: tuple[tuple[str, int], ...] = ()  # (account key, inbox sequence number) for each recipient
    urgent: bool = False
    resent: bool = False  # a message stored before, going to more people (NewMessage.resend_of)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something the audit log must record: who did what to what. *detail* holds no message text, only
    metadata and hashes: the log outlives retention and is read by auditors, not clinicians."""

    at_ms: int
    kind: str  # "login", "login-failed", "message", "admin", ...
    actor: str  # an account key, "guest:<name>", or "cli:<user>" for the admin tools
    subject: str  # what it was done to: a message id, an account, a role...
    detail: tuple[tuple[str, str | int], ...] = ()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One audit entry about a message: delivered, read, ack, escalation..."""

    at_ms: int
    kind: str
    actor: str
    detail: tuple[tuple[str, str | int], ...] = ()


@dataclass(frozen=True, slots=True)
class Ledger:
    """A message and everything recorded about it, for TRACE (and to check who may READ it)."""

    message: StoredMessage
    sender_key: str | None
    entries: tuple[LedgerEntry, ...] = ()


def stored_from(message: NewMessage, msg_id: int, seqs: tuple[tuple[str, int], ...]) -> StoredMessage:
    """What a backend returns for a message it has just stored."""
    return StoredMessage(msg_id, message.sender, message.to, message.conversation, message.text, message.created_ms,
                         message.client_id, False, seqs, message.urgent, message.resend_of is not None)  # fmt: skip


@dataclass(slots=True)
class InboxEntry:
    seq: int
    message: StoredMessage


def content_hash(text: str) -> str:
    """What an audit entry keeps of a text: enough to prove what was said, nothing to read."""
    return hashlib.sha256(text.encode()).hexdigest()
