"""Storage errors, and the records the store keeps (defined in the chat domain)."""

from __future__ import annotations

from dataclasses import dataclass

from bleeper.chat.records import (
    Account,
    AuditEvent,
    InboxEntry,
    NewMessage,
    StorageError,
    StorageFull,
    StoredMessage,
)


class StoreError(StorageError):
    """The store cannot do what was asked; the message says what to do next."""


class StoreFull(StoreError, StorageFull):
    """The disk is full: new messages must be refused, not acknowledged."""


class SchemaTooNew(StoreError):
    """The database was written by a newer Bleeper."""


class AccountExists(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """One browser on one device that asked for Web Push (``PUSH ADD``): where to post, and the keys the
    payload is encrypted to. Only the push code reads it; the hub never sees the keys."""

    account_key: str
    endpoint: str
    p256dh: str  # base64url: the browser's P-256 public key
    auth: str  # base64url: its 16-byte authentication secret
    created_ms: int


__all__ = [
    "Account",
    "AccountExists",
    "AuditEvent",
    "InboxEntry",
    "NewMessage",
    "PushSubscription",
    "SchemaTooNew",
    "StoreError",
    "StoreFull",
    "StoredMessage",
]
