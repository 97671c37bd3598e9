"""What the hub needs from storage and authentication, answered later.

The hub never waits: it asks, registers a callback on the returned :class:`Pending`, and returns. The server
hands the pending answer to the framework, which holds that connection's next lines until it completes, so
replies stay in order. ``asyncio.Future`` satisfies :class:`Pending`, and so does :class:`Answer`, which is
already there (the in-memory backend, and the unit tests, need no event loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import Any, Generic, Protocol, TypeVar

from bleeper.chat.records import Account, AuditEvent, InboxEntry, Ledger, NewMessage, StoredMessage

log = logging.getLogger("bleeper.chat")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Pending(Protocol[T_co]):
    """An answer that may not be known yet. Awaitable: an ``async def`` handler awaits it (see chat/flow.py)."""

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None: ...

    def done(self) -> bool: ...

    def result(self) -> T_co: ...

    def __await__(self) -> Generator[Any, None, T_co]: ...


class Answer(Generic[T]):
    """A :class:`Pending` that its maker completes with :meth:`resolve`; callbacks run then, in order, without
    an event loop. ``Answer.of(value)`` is an answer already known (the in-memory backend and the unit tests)."""

    __slots__ = ("_callbacks", "_done", "_error", "_value")

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Answer[T]], object]] = []
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    @classmethod
    def of(cls, value: T | None = None, error: BaseException | None = None) -> Answer[T]:
        answer: Answer[T] = cls()
        answer.resolve(value, error)
        return answer

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None:
        if self._done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, T]:
        """Known already: the value at once, without suspending. Otherwise hand this answer to whoever
        drives the coroutine, :func:`bleeper.chat.flow.run`, which resumes it once the answer is resolved
        (an asyncio task cannot: it takes only its own futures)."""
        if not self._done:
            yield self
        return self.result()

    def resolve(self, value: T | None = None, error: BaseException | None = None) -> None:
        self._value, self._error, self._done = value, error, True
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            try:
                fn(self)
            except Exception:
                log.exception("a callback on a pending answer failed")


class Backend(Protocol):
    """Storage as the hub sees it."""

    def store(self, message: NewMessage) -> Pending[StoredMessage]: ...

    def audit(self, event: AuditEvent) -> None:
        """Append to the audit log, in order, soon (with the next commit); messages are recorded by store."""

    def inbox(self, account_key: str, after_seq: int, limit: int) -> Pending[list[InboxEntry]]: ...

    def last_seq(self, account_key: str) -> Pending[int]: ...

    def mark_delivered(self, account_key: str, seq: int) -> None: ...

    def account_gone(self, account_key: str) -> None:
        """The account's last connection here has gone: write its delivery mark soon, not with the others
        (its next LOGIN may be on another server of a cluster, reading the mark from the database)."""

    def history(self, conversation: str, limit: int) -> Pending[list[StoredMessage]]: ...

    def recall(self, message_id: int, tombstone: str) -> Pending[bool]:
        """Replace a stored message's text with *tombstone*. An urgent message is closed for good: its next
        step is refused (-1) and ``claim_ack`` answers ``""`` (recalled), on every server sharing the store."""

    def ledger(self, message_id: int) -> Pending[Ledger | None]:
        """The message and its audit entries so far (recent ones may still wait for their commit)."""

    def account(self, key: str) -> Pending[Account | None]: ...

    def verify_password(self, account: Account, password: str) -> Pending[bool]: ...

    def add_member(self, group_key: str, group_name: str, account_key: str) -> None: ...

    def remove_member(self, group_key: str, account_key: str) -> None: ...

    def claim_step(self, message_id: int, step: int, interval_ms: int, sent_ms: int) -> Pending[tuple[bool, int]]:
        """Take an urgent message's next alert or escalation step (``step + 1``) if it is due and nobody has
        taken it: the answer is whether this server took it, and the step it stands at now (-1 once
        acknowledged). Several servers of a cluster ask; one gets each step (see Store.claim_step)."""
        ...

    def claim_ack(self, message_id: int, key: str) -> Pending[str]:
        """Acknowledge an urgent message as *key* unless someone did first; the answer is who did ("": it was
        recalled)."""
        ...

    def keep(self, kind: str, key: str, value: str | None) -> Pending[None]:
        """Save one row of standing state (see chat/standing.py), in order; None forgets it. The answer
        comes once it is written (failures are logged, not raised)."""
