"""Group commit: messages submitted while a commit is in flight are written together in the next one.

Each submission gets an answer (a ticket) that completes after its transaction commits, so the server
acknowledges a message only once it is durable, while a hundred busy senders share one fsync instead of
paying for a hundred.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from bleeper.chat.backend import Answer
from bleeper.store.base import Store
from bleeper.store.model import AuditEvent, NewMessage, StoredMessage

log = logging.getLogger("bleeper.store")


RETRY_DELAY = 1.0  # seconds before audit entries from a failed commit are tried again
Ticket = Answer[StoredMessage]  # a submission's answer: resolved by the journal after the commit


def _resolve_all(batch: list[tuple[NewMessage, Ticket]], stored: list[StoredMessage]) -> None:
    for (_, ticket), result in zip(batch, stored, strict=True):
        ticket.resolve(result)


class Journal:
    """Runs on callbacks rather than a task: a batch goes to the store at the end of the loop turn in which
    its first message arrived, and a commit's answer reaches the senders in the turn the store answers. Each
    task or future hop on that path would cost a whole loop turn of latency per message, and with every
    sender waiting for its acknowledgement, latency is throughput."""

    def __init__(self, store: Store, max_batch: int = 500) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: list[tuple[NewMessage, Ticket]] = []
        self._events: list[AuditEvent] = []  # audit entries to write with the next commit
        self._idle = asyncio.Event()  # set when everything submitted so far is committed
        self._idle.set()
        self._scheduled = False  # a dispatch is due at the end of this loop turn
        self._paused = False  # after a failed commit that held audit entries: wait before trying again
        self._closing = False
        self._in_flight = 0  # batches handed to the store and not yet answered
        self.commits = 0
        self.committed = 0
        self.last_commit_ms = 0.0  # how long the last commit took: the store's latency, for HEALTH
        self._submitted = 0  # messages submitted so far
        self._finished = 0  # of those, committed or failed (in submission order: batches are first in, first out)
        self._barriers: list[tuple[int, asyncio.Future[None]]] = []

    def submit(self, message: NewMessage) -> Ticket:
        ticket: Ticket = Answer()
        if self._closing:
            ticket.resolve(error=RuntimeError("the server is shutting down"))
            return ticket
        self._queue.append((message, ticket))
        self._submitted += 1
        self._kick()
        return ticket

    def record(self, event: AuditEvent) -> None:
        """Add an entry to the audit chain with the next commit (the journal orders the chain)."""
        if self._closing:
            log.error("audit entry after shutdown began, not recorded: %s", event)
            return
        self._events.append(event)
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Hand batches to the store: one at a time, or up to the store's ``pipeline_depth`` when it commits
        them in order elsewhere (the SQLite writer process), so that its next batch is already waiting when
        a commit ends."""
        self._scheduled = False
        while (self._queue or self._events) and self._in_flight < self.store.pipeline_depth and not self._paused:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            events, self._events = self._events, []
            self._in_flight += 1
            started = time.perf_counter()
            done = functools.partial(self._committed, batch, events, started)
            self.store.commit([message for message, _ in batch], events, done)
        if not self._queue and not self._events and not self._in_flight:
            self._idle.set()

    def _committed(
        self,
        batch: list[tuple[NewMessage, Ticket]],
        events: list[AuditEvent],
        started: float,
        stored: list[StoredMessage] | None,
        error: BaseException | None,
    ) -> None:
        self._in_flight -= 1
        self._finish(len(batch))
        if stored is None:
            log.error("commit of %d message(s) and %d audit entries failed: %s", len(batch), len(events), error)
            if events and not self._closing:
                self._events[:0] = events  # keep them for the next commit: the log must not lose them
                self._paused = True
                asyncio.get_running_loop().call_later(RETRY_DELAY, self._resume)
            for _, ticket in batch:
                ticket.resolve(error=error)
        else:
            self.last_commit_ms = (time.perf_counter() - started) * 1000
            self.commits += 1
            self.committed += len(batch)
            self._dispatch()  # the next batch first, so that it commits while this one is answered
            _resolve_all(batch, stored)
        if not self._queue and not self._events and not self._in_flight:
            self._idle.set()

    def _resume(self) -> None:
        self._paused = False
        self._dispatch()

    @property
    def waiting(self) -> int:
        """Messages and audit entries queued for the next commit."""
        return len(self._queue) + len(self._events)

    def _finish(self, count: int) -> None:
        self._finished += count
        if self._barriers:
            waiting = []
            for target, future in self._barriers:
                if self._finished >= target:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((target, future))
            self._barriers = waiting

    async def caught_up(self) -> None:
        """Return once every message submitted before the call is committed (or failed). Unlike
        :meth:`settled` it does not wait for later ones, so a busy server cannot hold it up for long. A login
        reads the inbox after this: a message sent a moment before the login, still in its commit, must be in
        the replay, or it would arrive after newer ones."""
        target = self._submitted
        if self._finished >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers.append((target, future))
        await future

    async def settled(self) -> None:
        """Return once everything submitted or recorded before the call is committed (or failed)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        if self._queue or self._events or self._in_flight:
            self._kick()
        await self._idle.wait()
