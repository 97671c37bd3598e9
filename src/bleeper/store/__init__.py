"""Persistence behind one interface: SQLite (default) and PostgreSQL."""

from bleeper.store.base import Store
from bleeper.store.model import (
    Account,
    AccountExists,
    InboxEntry,
    NewMessage,
    PushSubscription,
    SchemaTooNew,
    StoredMessage,
    StoreError,
    StoreFull,
)


async def open_store(location: str, *, exclusive: bool = False, writer: str = "process") -> Store:
    """Open (creating or upgrading) the store at *location*: ``postgresql://...``, ``sqlite:///path`` or a
    plain file path. The server opens it *exclusive* (one server per SQLite file), and then SQLite commits
    messages in a *writer* ``"process"`` of its own or on its ``"thread"``."""
    if location.startswith(("postgresql://", "postgres://")):
        from bleeper.store.postgres import PostgresStore

        return await PostgresStore.open(location)
    from bleeper.store.sqlite import SqliteStore

    path = location.removeprefix("sqlite:///") if location.startswith("sqlite:///") else location
    return await SqliteStore.open(path, exclusive=exclusive, writer=writer)


__all__ = [
    "Account",
    "AccountExists",
    "InboxEntry",
    "NewMessage",
    "PushSubscription",
    "SchemaTooNew",
    "Store",
    "StoreError",
    "StoreFull",
    "StoredMessage",
    "open_store",
]
