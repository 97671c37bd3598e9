"""Storage errors, and the records the store keeps (defined in the chat domain)."""

from __future__ import annotations

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


__all__ = [
    "Account",
    "AccountExists",
    "AuditEvent",
    "InboxEntry",
    "NewMessage",
    "SchemaTooNew",
    "StoreError",
    "StoreFull",
    "StoredMessage",
]
