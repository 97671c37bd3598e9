"""The chat hub's :class:`~bleeper.chat.backend.Backend`, answered by a real store on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bleeper.chat.records import Account, AuditEvent, InboxEntry, Ledger, NewMessage, StoredMessage
from bleeper.store.base import Store
from bleeper.store.journal import Journal, Ticket
from bleeper.store.passwords import verify_password

log = logging.getLogger("bleeper.store")
T = TypeVar("T")


class StoreBackend:
    """Messages go through the group-commit journal; delivery marks are coalesced and written once a second;
    password checks run in a worker thread (argon2 is slow on purpose)."""

    def __init__(self, store: Store) -> None:
        self.db = store
        self.journal = Journal(store)
        self._delivered: dict[str, int] = {}  # the highest mark per account, written or not
        self._dirty: set[str] = set()
        self._tasks: set[asyncio.Future[object]] = set()
        self._last_change: asyncio.Future[None] | None = None

    def _later(self, make: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.ensure_future(make())
        self._tasks.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._tasks.discard)
        return future

    def store(self, message: NewMessage) -> Ticket:
        return self.journal.submit(message)

    def audit(self, event: AuditEvent) -> None:
        self.journal.record(event)

    def inbox(self, account_key: str, after_seq: int, limit: int) -> asyncio.Future[list[InboxEntry]]:
        async def read() -> list[InboxEntry]:
            await self.journal.caught_up()  # messages already accepted for storage are part of the answer
            return await self.db.inbox(account_key, after_seq, limit)

        return self._later(read)

    def last_seq(self, account_key: str) -> asyncio.Future[int]:
        return self._later(lambda: self.db.last_seq(account_key))

    def mark_delivered(self, account_key: str, seq: int) -> None:
        if seq > self._delivered.get(account_key, 0):
            self._delivered[account_key] = seq
            self._dirty.add(account_key)

    def account_gone(self, account_key: str) -> None:
        if account_key in self._dirty:
            self._dirty.discard(account_key)
            task = asyncio.ensure_future(self.db.mark_delivered(account_key, self._delivered[account_key]))

            def written(done: asyncio.Future[None]) -> None:
                if done.cancelled() or done.exception() is not None:
                    self._dirty.add(account_key)  # written with the others next time

            task.add_done_callback(written)

    async def flush_marks(self) -> None:
        """Write the marks that moved. One the store could not take stays to be written next time: a mark
        left behind only makes the next LOGIN send a few messages again."""
        dirty, self._dirty = self._dirty, set()
        waiting = list(dirty)
        try:
            while waiting:
                await self.db.mark_delivered(waiting[-1], self._delivered[waiting[-1]])
                waiting.pop()
        finally:
            self._dirty.update(waiting)

    def history(self, conversation: str, limit: int) -> asyncio.Future[list[StoredMessage]]:
        return self._later(lambda: self.db.history(conversation, limit))

    def recall(self, message_id: int, tombstone: str) -> asyncio.Future[bool]:
        return self._later(lambda: self.db.recall(message_id, tombstone))

    def ledger(self, message_id: int) -> asyncio.Future[Ledger | None]:
        async def read() -> Ledger | None:
            await self.journal.settled()  # receipts recorded a moment ago are part of the answer
            return await self.db.ledger(message_id)

        return self._later(read)

    def account(self, key: str) -> asyncio.Future[Account | None]:
        async def fetch() -> Account | None:
            account = await self.db.get_account(key)
            mark = self._delivered.get(key, 0)
            if account is not None and mark > account.delivered_seq:
                account = dataclasses.replace(account, delivered_seq=mark)  # not yet written: ours is newer
            return account

        return self._later(fetch)

    def verify_password(self, account: Account, password: str) -> asyncio.Future[bool]:
        return self._later(lambda: asyncio.to_thread(verify_password, account.password_hash, password))

    def _in_order(self, make: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Membership and standing-state changes are written one after another, in the order they were
        made: on PostgreSQL two at once could commit in either order, and a LEAVE could be undone by the JOIN
        before it. The future completes once the change is written (or failed, logged)."""
        previous = self._last_change

        async def change() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            try:
                await make()
            except Exception as exc:
                log.error("saving a group membership or standing state failed: %s", exc)

        self._last_change = self._later(change)
        return self._last_change

    def add_member(self, group_key: str, group_name: str, account_key: str) -> None:
        self._in_order(lambda: self.db.add_member(group_key, group_name, account_key))

    def remove_member(self, group_key: str, account_key: str) -> None:
        self._in_order(lambda: self.db.remove_member(group_key, account_key))

    def claim_step(
        self, message_id: int, step: int, interval_ms: int, sent_ms: int
    ) -> asyncio.Future[tuple[bool, int]]:
        return self._later(lambda: self.db.claim_step(message_id, step, interval_ms, sent_ms))

    def claim_ack(self, message_id: int, key: str) -> asyncio.Future[str]:
        return self._later(lambda: self.db.claim_ack(message_id, key))

    def keep(self, kind: str, key: str, value: str | None) -> asyncio.Future[None]:
        return self._in_order(lambda: self.db.keep(kind, key, value))

    async def close(self) -> None:
        await self.journal.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush_marks()
