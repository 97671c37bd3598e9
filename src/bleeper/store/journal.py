"""Group commit: messages submitted while a commit is in flight are written together in the next one.

Each submission gets a future that completes after its transaction commits, so the server acknowledges a
message only once it is durable, while a hundred busy senders share one fsync instead of paying for a
hundred.
"""

from __future__ import annotations

import asyncio
import logging

from bleeper.store.base import Store
from bleeper.store.model import NewMessage, StoredMessage

log = logging.getLogger("bleeper.store")


class Journal:
    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[NewMessage, asyncio.Future[StoredMessage]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0
        self.committed = 0

    def submit(self, message: NewMessage) -> asyncio.Future[StoredMessage]:
        future: asyncio.Future[StoredMessage] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_exception(RuntimeError("the server is shutting down"))
            return future
        self._queue.append((message, future))
        self._wake.set()
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_loop())
        return future

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    stored = await self.store.store_messages([message for message, _ in batch])
                except Exception as exc:
                    log.error("commit of %d message(s) failed: %s", len(batch), exc)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.commits += 1
                self.committed += len(batch)
                for (_, future), result in zip(batch, stored, strict=True):
                    if not future.done():
                        future.set_result(result)
            if self._closing:
                return

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await self._writer
