"""``bleeper relay``: a chat that runs over the state store, done with conditional writes and long polls.

The original exercise passed turns through shared keys and broke in every way shared state can: both sides
waiting for the other at the start, a crashed partner leaving the keys in a mess, polling loops, two writers
racing. Here every decision that two programs could make at once is one conditional write, so exactly one wins,
and every wait is a long poll (``watch``).

**Free mode** (any number of people): each message takes the next free slot of an append-only log,
``relay/<room>/free/<n>``, by creating that key only if it does not exist (``compare_and_set(..., ABSENT)``);
a writer that loses the race tries the next slot. Slots therefore fill with no gaps, and everyone reads them in
the same order. The counter ``relay/<room>/free/head`` (advanced with compare-and-set) only tells newcomers
where the log ends. A message carries its own id, so a write retried after a lost response is recognised
instead of written twice.

**Turns mode** (two people alternate): two seats, ``relay/<room>/turns/seat-a`` and ``seat-b``, are leases
taken with create-only writes and renewed by a heartbeat (a compare-and-set of one's own seat). A partner whose
seat has not changed for a whole lease is gone: the survivor (or a newcomer) removes or takes over the seat
with a compare-and-set on the stale version, which fails if a late heartbeat arrived after all. The key
``relay/<room>/turns/turn`` holds the last message and which seat wrote it; the other seat speaks next, by a
compare-and-set on that version. While nobody has spoken, whoever sends first starts: both may try, one create
wins, so two people who start at the same moment never wait for each other. Staleness is judged by the
observer's own clock over versions, never by comparing clocks of different machines.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from bleeper.protocol.text import clean_text
from bleeper.statestore.proxy import ABSENT, AsyncStateStore, StateStoreError

T = TypeVar("T")
P = ParamSpec("P")
Show = Callable[[str], None]
ROOM = re.compile(r"[A-Za-z0-9._-]{1,64}")
POLL = 10.0  # seconds one long poll waits before asking again (within any server's --max-wait)
SEATS = ("a", "b")


class RelayError(Exception):
    """The relay cannot go on; the message says why and what to do."""


def check_names(room: str, name: str) -> None:
    if not ROOM.fullmatch(room):
        raise RelayError(f"room {room!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if not name or len(name) > 32 or clean_text(name) != name or name != name.strip():
        raise RelayError(f"name {name!r}: use 1-32 characters, no control characters or surrounding spaces")


def _load(value: str | None) -> dict[str, Any] | None:
    """A relay record, or None for anything that is not one (a key someone else wrote by hand)."""
    if value is None:
        return None
    try:
        record = json.loads(value)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Relay:
    """What both modes share: the store, retries while it is unreachable, and how the relay ends."""

    mode = ""

    def __init__(self, store: AsyncStateStore, room: str, name: str, show: Show) -> None:
        check_names(room, name)
        self.store, self.room, self.name, self.show = store, room, name, show
        self.id = uuid.uuid4().hex
        self.on_change: Callable[[], None] = lambda: None
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []
        self._unreachable = False
        self._changed = asyncio.Condition()

    def key(self, *parts: str) -> str:
        return "/".join(("relay", self.room, self.mode, *parts))

    @property
    def prompt(self) -> str:
        return f"{self.name}> "

    async def retry(self, operation: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store operation, waiting out an unreachable store (said once, and when it is back)."""
        delay = 0.5
        while True:
            try:
                result = await operation(*args, **kwargs)
            except StateStoreError as exc:
                if exc.status not in (0, 503):  # unreachable, or stopping: both pass
                    raise
                if not self._unreachable:
                    self.show(f"* {exc.detail}; retrying")
                    self._unreachable = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self._unreachable:
                self.show("* the state store answers again")
                self._unreachable = False
            return result

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure ends the relay, with its reason
                if not self.failed.done():
                    self.failed.set_result(str(exc) or type(exc).__name__)

        self._tasks.append(asyncio.create_task(guarded()))

    async def changed(self) -> None:
        """Wake whoever waits for the state to change, and redraw the prompt."""
        async with self._changed:
            self._changed.notify_all()
        self.on_change()

    async def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def join(self) -> None:
        raise NotImplementedError

    async def send(self, text: str) -> None:
        raise NotImplementedError

    async def finish(self) -> None:
        """Wait until everything sent so far has gone (before leaving at the end of piped input)."""

    async def leave(self) -> None:
        raise NotImplementedError


# -- free mode -----------------------------------------------------------------------------------------------


class FreeRelay(Relay):
    mode = "free"

    def __init__(self, store: AsyncStateStore, room: str, name: str, show: Show, *, history: int = 10) -> None:
        super().__init__(store, room, name, show)
        self.history = max(history, 0)
        self.next = 1  # the next slot to show

    def slot_key(self, number: int) -> str:
        return self.key(f"{number:010d}")

    async def _head(self) -> tuple[int, int]:
        """The log's recorded end and that record's version (0, ABSENT before the first message)."""
        got = await self.retry(self.store.get, self.key("head"))
        if got is None or not got[0].isdigit():
            return 0, got[1] if got else ABSENT
        return int(got[0]), got[1]

    async def join(self) -> None:
        first = await self.store.get(self.key("head"))  # unretried: an unreachable store ends the start
        head = int(first[0]) if first and first[0].isdigit() else 0
        self.next = max(head - self.history + 1, 1)
        self.start(self._follow())
        await self._append("join", "")

    async def send(self, text: str) -> None:
        await self._append("say", text)

    async def leave(self) -> None:
        """Say so in the log, and show everything up to that entry before stopping."""
        if not self.failed.done():
            slot = await self._append("leave", "")
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self.next > slot), POLL)
            except TimeoutError:
                pass
        await self.stop_tasks()

    async def _append(self, kind: str, text: str) -> int:
        """Write one entry into the first free slot; returns the slot."""
        entry_id = uuid.uuid4().hex
        entry = json.dumps({"id": entry_id, "name": self.name, "kind": kind, "text": text, "time": time.time()})
        slot = max((await self._head())[0], self.next - 1) + 1
        while True:
            key = self.slot_key(slot)
            if await self.retry(self.store.compare_and_set, key, entry, ABSENT) is not None:
                break
            taken = await self.retry(self.store.get, key)
            if taken is not None and (_load(taken[0]) or {}).get("id") == entry_id:
                break  # an earlier attempt landed but its answer was lost
            slot += 1
        await self._advance_head(slot)
        return slot

    async def _advance_head(self, slot: int) -> None:
        while True:
            head, version = await self._head()
            if head >= slot:
                return
            if await self.retry(self.store.compare_and_set, self.key("head"), str(slot), version):
                return

    async def _follow(self) -> None:
        while True:
            key = self.slot_key(self.next)
            got = await self.retry(self.store.watch, key, ABSENT, POLL)
            if got is None:
                continue
            entry = _load(got[0])
            if entry is not None:
                self.show(self.describe(entry))
            elif got[0] is not None:
                self.show(f"* slot {self.next} holds something that is not a relay message; skipped")
            self.next += 1
            await self.changed()

    @staticmethod
    def describe(entry: dict[str, Any]) -> str:
        name = clean_text(str(entry.get("name", "?")))
        kind = entry.get("kind")
        if kind == "join":
            return f"* {name} joined"
        if kind == "leave":
            return f"* {name} left"
        return f"{name}: {clean_text(str(entry.get('text', '')))}"


# -- turns mode ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sitter:
    """Who holds a seat, as last seen."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Turn:
    """The last message: its number, the seat and person that wrote it (the other seat speaks next)."""

    n: int
    seat: str
    id: str
    name: str
    text: str
    message_id: str

    def dump(self) -> str:
        return json.dumps({"n": self.n, "seat": self.seat, "id": self.id, "name": self.name, "text": self.text,
                           "message_id": self.message_id})  # fmt: skip

    @staticmethod
    def load(value: str | None) -> Turn | None:
        record = _load(value)
        if record is None or record.get("seat") not in SEATS:
            return None
        return Turn(int(record.get("n", 0)), record["seat"], str(record.get("id", "")),
                    clean_text(str(record.get("name", "?"))), clean_text(str(record.get("text", ""))),
                    str(record.get("message_id", "")))  # fmt: skip


class TurnsRelay(Relay):
    mode = "turns"

    def __init__(self, store: AsyncStateStore, room: str, name: str, show: Show, *, lease: float = 10.0) -> None:
        super().__init__(store, room, name, show)
        self.lease = max(lease, 0.5)
        self.seat = ""
        self._seat_version = ABSENT
        self._beats = 0
        self.partner: Sitter | None = None
        self._partner_version = ABSENT
        self.turn: Turn | None = None
        self._turn_version = ABSENT
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._sending: str | None = None

    @property
    def other(self) -> str:
        return "b" if self.seat == "a" else "a"

    def seat_key(self, seat: str) -> str:
        return self.key(f"seat-{seat}")

    def my_turn(self) -> bool:
        """Nobody has spoken yet (then whoever sends first starts), or the other seat spoke last."""
        return self.turn is None or self.turn.seat != self.seat

    def whose_turn(self) -> str:
        if self.turn is None:
            return "nobody has spoken yet: whoever sends first starts"
        return "your turn" if self.my_turn() else f"{self.partner.name if self.partner else 'the other'}'s turn"

    @property
    def prompt(self) -> str:
        if self.my_turn():
            state = "your turn"
        elif self.partner is None:
            state = "waiting for a partner"
        else:
            state = f"{self.partner.name}'s turn"
        return f"{self.name} ({state})> "

    def _seat_value(self) -> str:
        return json.dumps({"id": self.id, "name": self.name, "beat": self._beats})

    # joining

    async def join(self) -> None:
        await self.store.get(self.seat_key("a"))  # unretried: an unreachable store ends the start
        await self._take_a_seat()
        other = await self.retry(self.store.get, self.seat_key(self.other))
        if other is not None and (sitter := _sitter(other[0])) is not None:
            self.partner, self._partner_version = sitter, other[1]
        got = await self.retry(self.store.get, self.key("turn"))
        if got is not None:
            self.turn, self._turn_version = Turn.load(got[0]), got[1]
        if self.partner is None:
            self.show(f"* you are in room {self.room}; nobody else is here yet. Whoever sends first starts")
        else:
            self.show(f"* you are in room {self.room} with {self.partner.name}")
            if self.turn is not None and self.turn.id == self.partner.id:
                self.show(f"{self.turn.name}: {self.turn.text}")
            self.show(f"* {self.whose_turn()}")
        for work in (self._heartbeat(), self._watch_partner(), self._watch_turn(), self._send_queued()):
            self.start(work)

    async def _take_a_seat(self) -> None:
        value = self._seat_value()
        while True:
            for seat in SEATS:
                version = await self.retry(self.store.compare_and_set, self.seat_key(seat), value, ABSENT)
                if version is not None:
                    self.seat, self._seat_version = seat, version
                    return
            held = [await self.retry(self.store.get, self.seat_key(seat)) for seat in SEATS]
            if any(got is None for got in held):
                continue  # someone left meanwhile: try again
            names = " and ".join((_sitter(got[0]) or Sitter("", "?")).name for got in held if got)
            self.show(f"* room {self.room} has two people ({names}); checking for {self.lease:g} s whether "
                      "both are still there")  # fmt: skip
            seen = await asyncio.gather(*(self.retry(self.store.watch, self.seat_key(seat), got[1], self.lease)
                                          for seat, got in zip(SEATS, held, strict=True) if got is not None))  # fmt: skip
            for seat, got, change in zip(SEATS, held, seen, strict=True):
                if change is None and got is not None:  # no heartbeat for a whole lease: that person is gone
                    version = await self.retry(self.store.compare_and_set, self.seat_key(seat), value, got[1])
                    if version is not None:
                        gone = (_sitter(got[0]) or Sitter("", "someone")).name
                        self.show(f"* {gone} had stopped answering; you take their place")
                        self.seat, self._seat_version = seat, version
                        return
            if all(change is not None and change[0] is not None for change in seen):
                raise RelayError(f"room {self.room} is full: {names} are talking there. Choose another room "
                                 "with --room, or use --mode free for more than two people")  # fmt: skip

    # running

    async def _heartbeat(self) -> None:
        """Renew the seat every third of a lease; losing it means we were taken for gone."""
        while True:
            await asyncio.sleep(self.lease / 3)
            self._beats += 1
            value = self._seat_value()
            key = self.seat_key(self.seat)
            version = await self.retry(self.store.compare_and_set, key, value, self._seat_version)
            if version is None:
                now = await self.retry(self.store.get, key)
                if now is None or now[0] != value:  # not merely our own retried write
                    raise RelayError(f"your seat was given up: no heartbeat reached the store for {self.lease:g} s "
                                     "(was this computer asleep?). Start bleeper relay again to rejoin")  # fmt: skip
                version = now[1]
            self._seat_version = version

    async def _watch_partner(self) -> None:
        key = self.seat_key(self.other)
        while True:
            change = await self.retry(self.store.watch, key, self._partner_version, self.lease)
            if change is None:  # nothing for a whole lease
                if self.partner is not None:
                    gone = self.partner
                    if await self.retry(self.store.compare_and_delete, key, self._partner_version):
                        self.partner = None
                        self.show(f"* {gone.name} stopped answering (no heartbeat for {self.lease:g} s) and is "
                                  "gone; someone else can join this room now")  # fmt: skip
                        await self.changed()
                continue
            value, self._partner_version = change
            sitter = _sitter(value)
            if sitter is None or self.partner is None or sitter.id != self.partner.id:
                if self.partner is not None:
                    self.show(f"* {self.partner.name} left")
                self.partner = sitter
                if sitter is not None:
                    self.show(f"* {sitter.name} joined; {self.whose_turn()}")
                await self.changed()

    async def _watch_turn(self) -> None:
        key = self.key("turn")
        while True:
            change = await self.retry(self.store.watch, key, self._turn_version, POLL)
            if change is None or change[1] <= self._turn_version:
                continue
            value, self._turn_version = change
            turn = Turn.load(value)
            if turn is not None and turn.id != self.id:
                self.show(f"{turn.name}: {turn.text}")
            self.turn = turn
            await self.changed()

    async def send(self, text: str) -> None:
        """Queue a message; it goes as soon as it is this seat's turn."""
        if not self.my_turn() or not self._outbox.empty():
            waiting = self.partner.name if self.partner else "someone to join and reply"
            self.show(f"* queued: waiting for {waiting}")
        self._outbox.put_nowait(text)

    async def finish(self) -> None:
        await self._outbox.join()

    async def _send_queued(self) -> None:
        key = self.key("turn")
        while True:
            text = self._sending = await self._outbox.get()
            message_id = uuid.uuid4().hex
            while True:
                async with self._changed:
                    await self._changed.wait_for(self.my_turn)
                last, version = self.turn, self._turn_version
                turn = Turn((last.n if last else 0) + 1, self.seat, self.id, self.name, text, message_id)
                written = await self.retry(self.store.compare_and_set, key, turn.dump(), version)
                if written is None:  # the turn moved on: see where it is now
                    got = await self.retry(self.store.get, key)
                    now = Turn.load(got[0]) if got else None
                    if now is not None and now.message_id == message_id:  # our retried write had landed
                        written = got[1] if got else None
                    elif got is not None and got[1] > self._turn_version:
                        self.turn, self._turn_version = now, got[1]
                        if now is not None and now.id != self.id:
                            self.show(f"{now.name}: {now.text}")
                if written is not None:
                    if written > self._turn_version:
                        self.turn, self._turn_version = turn, written
                    self.show(f"{self.name}: {text}")
                    await self.changed()
                    break
            self._sending = None
            self._outbox.task_done()

    async def leave(self) -> None:
        """Free the seat, so the partner is told at once rather than after a lease."""
        await self.stop_tasks()
        unsent = [self._sending] if self._sending is not None else []
        while not self._outbox.empty():
            unsent.append(self._outbox.get_nowait())
        for text in unsent:
            self.show(f"* not sent (it was not your turn yet): {text}")
        if not self.seat or self.failed.done():
            return
        key = self.seat_key(self.seat)
        while True:  # by the current version: a heartbeat stopped in flight may have landed
            got = await self.retry(self.store.get, key)
            if got is None or (_sitter(got[0]) or Sitter("", "")).id != self.id:
                return
            if await self.retry(self.store.compare_and_delete, key, got[1]):
                return


def _sitter(value: str | None) -> Sitter | None:
    record = _load(value)
    if record is None or "id" not in record:
        return None
    return Sitter(str(record["id"]), clean_text(str(record.get("name", "?"))))
