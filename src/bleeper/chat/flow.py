"""Handlers that read top to bottom: ``async def`` handlers, driven without an event loop.

A command that needs storage (LOGIN checks a password, SYNC reads an inbox, READ reads a ledger) is written as
an ``async def`` that ``await``\\ s the :class:`~bleeper.chat.backend.Backend`'s answers in order, instead of
callbacks nested inside callbacks. :func:`run` steps such a coroutine by hand: each ``await`` of an answer
not yet known hands :func:`run` that :class:`~bleeper.chat.backend.Pending`, and the coroutine goes on in the
answer's own done-callback. So:

- ``chat/`` still imports no asyncio: an :class:`~bleeper.chat.backend.Answer` is awaitable, and so is an
  ``asyncio.Future`` (the store's answers), whose ``__await__`` yields itself just the same;
- an answer already known (the in-memory backend, the unit tests) is awaited without suspending, so a whole
  handler runs to completion inside :func:`run`, and the domain is tested without a loop or a network;
- no task per command: a handler costs a coroutine object, and resumes in the turn its answer arrives, as the
  callbacks did. *Why not asyncio tasks:* a task per line costs a few microseconds and a loop turn before it
  starts, on the path every message takes; and tasks would need asyncio in the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from bleeper.chat.backend import Pending

log = logging.getLogger("bleeper.chat")

Handling = Coroutine[Any, Any, None]  # a handler called, not yet run


def run(handler: Handling, failed: Callable[[BaseException], None] | None = None) -> Pending[None] | None:
    """Run *handler* until it finishes or awaits an answer not yet known. Returns None when it finished at
    once, or a pending answer that completes when it finishes. An exception escaping the handler is a bug: it
    is logged, and *failed* (which sends the command its one reply) is called."""
    flow = _Flow(handler, failed)
    return None if flow.step() else flow


class _Flow:
    """One handler on its way: the callback its awaited answers call, and the answer to whoever waits for
    the handler. One small object per handler rather than closures and cells: every message takes this
    path, and fewer objects for the garbage collector to track measured faster (docs/performance.md)."""

    __slots__ = ("_callbacks", "_done", "_failed", "_handler")

    def __init__(self, handler: Handling, failed: Callable[[BaseException], None] | None) -> None:
        self._handler = handler
        self._failed = failed
        self._done = False
        self._callbacks: list[Callable[[Any], object]] | None = None

    def step(self) -> bool:
        """Go on until the next wait; True when the handler is over."""
        try:
            waiting = self._handler.send(None)
        except StopIteration:
            return self._finish()
        except (GeneratorExit, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a bug, or an awaited future cancelled: the command still gets its reply
            log.exception("a command handler failed")
            if self._failed is not None:
                self._failed(exc)
            return self._finish()
        waiting.add_done_callback(self)
        return False

    def __call__(self, _: object) -> None:
        """An awaited answer is known: resume the handler."""
        self.step()

    def _finish(self) -> bool:
        self._done = True
        self._handler = None  # type: ignore[assignment]  # its frame may hold much; let it go
        callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            try:
                fn(self)
            except Exception:
                log.exception("a callback on a finished handler failed")
        return True

    # Pending, for whoever waits for the handler to finish (the framework, holding the connection's next lines)

    def add_done_callback(self, fn: Callable[[Any], object], /) -> None:
        if self._done:
            fn(self)
        elif self._callbacks is None:
            self._callbacks = [fn]
        else:
            self._callbacks.append(fn)

    def done(self) -> bool:
        return self._done

    def result(self) -> None:
        return None

    def __await__(self) -> Generator[Any, None, None]:
        if not self._done:
            yield self


__all__ = ["Handling", "run"]
