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
from collections.abc import Callable, Coroutine
from typing import Any

from bleeper.chat.backend import Answer, Pending

log = logging.getLogger("bleeper.chat")

Handler = Coroutine[Any, Any, None]


def run(handler: Handler, failed: Callable[[BaseException], None] | None = None) -> Pending[None] | None:
    """Run *handler* until it finishes or awaits an answer not yet known. Returns None when it finished at
    once, or an answer that completes when it finishes. An exception escaping the handler is a bug: it is
    logged, and *failed* (which sends the command its one reply) is called."""
    finished: Answer[None] | None = None

    def step() -> bool:
        """Go on until the next wait; True when the handler is over."""
        try:
            waiting = handler.send(None)
        except StopIteration:
            return True
        except Exception as exc:
            log.exception("a command handler failed")
            if failed is not None:
                failed(exc)
            return True
        waiting.add_done_callback(resume)
        return False

    def resume(_: object) -> None:
        if step() and finished is not None:
            finished.resolve()

    if step():
        return None
    finished = Answer()
    return finished


__all__ = ["Handler", "run"]
