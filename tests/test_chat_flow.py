"""The driver of ``async def`` handlers (chat/flow.py): no event loop needed, answers awaited in order."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bleeper.chat.backend import Answer
from bleeper.chat.flow import run


def test_a_handler_whose_answers_are_known_finishes_inside_run() -> None:
    steps: list[object] = []

    async def handler() -> None:
        steps.append(await Answer.of(1))
        steps.append(await Answer.of("two"))

    assert run(handler()) is None  # no loop, no suspension: as the in-memory backend answers
    assert steps == [1, "two"]


def test_a_handler_waits_for_each_answer_in_turn() -> None:
    first: Answer[int] = Answer()
    second: Answer[int] = Answer()
    steps: list[object] = []

    async def handler() -> None:
        steps.append(await first)
        steps.append(await second)

    pending = run(handler())
    assert pending is not None and not pending.done() and steps == []
    first.resolve(1)
    assert steps == [1] and not pending.done()
    second.resolve(2)
    assert steps == [1, 2] and pending.done()


def test_a_failed_answer_is_raised_where_it_is_awaited() -> None:
    failing: Answer[int] = Answer()
    caught: list[str] = []

    async def handler() -> None:
        try:
            await failing
        except OSError as exc:
            caught.append(str(exc))

    pending = run(handler())
    failing.resolve(error=OSError("disk full"))
    assert caught == ["disk full"] and pending is not None and pending.done()


def test_a_handler_that_raises_is_logged_and_still_answered(caplog: pytest.LogCaptureFixture) -> None:
    later: Answer[int] = Answer()
    told: list[str] = []

    async def handler() -> None:
        await later
        raise ValueError("a bug")

    with caplog.at_level(logging.ERROR, "bleeper.chat"):
        pending = run(handler(), lambda exc: told.append(str(exc)))
        later.resolve(1)
    assert told == ["a bug"] and pending is not None and pending.done()
    assert "a command handler failed" in caplog.text


async def test_asyncio_futures_are_awaited_the_same_way() -> None:
    """The store answers with asyncio futures: the handler goes on in the future's callback."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def handler() -> None:
        steps.append(await future)
        steps.append(await Answer.of("then"))

    pending = run(handler())
    assert pending is not None
    future.set_result("stored")
    await asyncio.sleep(0)  # asyncio runs a future's callbacks in the next turn
    assert steps == ["stored", "then"] and pending.done()
