"""Delivery in a cluster: this node's connections as on one server, every other node told, and one order
everywhere.

After a message is committed, its node publishes it on the ``msg`` subject (:func:`signals.message`); every
node hands it to its own connections (:class:`~bleeper.chat.delivery.LocalDelivery`). PostgreSQL hands out
message ids under the writers' lock, so ids follow commit order; each node delivers messages strictly in id
order (:class:`InOrder`), its own included. So everyone, on any node, sees a group's messages in the order they
were stored, and an account's inbox numbers arrive in order.

A signal may be lost (the bus went away, a node died between its commit and its signal). A node holding a
message whose predecessor has not come waits :data:`GAP_WAIT` and then reads the missing ids from PostgreSQL;
once a second it also compares the newest id in the database with what it has delivered
(:meth:`ClusterDelivery.reconcile`), which covers a lost signal with nothing after it. An id missing from the
database was never committed (a rolled-back transaction) and is skipped.

Events (``ONLINE``, ``JOIN``, ``DELIVERED``, ``ALERT``, ...) and hang-ups go on the ``event`` subject to
every node. They are not stored; what they report is (presence is re-sent by the
registry, receipts and alerts are in the audit log).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bleeper.chat.delivery import Audience, everyone, group, people
from bleeper.chat.names import name_key
from bleeper.chat.records import StoredMessage
from bleeper.chat.session import Session
from bleeper.cluster import signals
from bleeper.cluster.bus import Bus
from bleeper.protocol.wire import format_ms

if TYPE_CHECKING:
    from bleeper.chat.core import Core
    from bleeper.cluster.registry import ClusterRegistry

log = logging.getLogger("bleeper.cluster")

GAP_WAIT = 0.25  # seconds a node waits for a missing message's signal before reading it from the database
RECENT = 20_000  # ids of messages delivered lately, to recognise one arriving twice

History = Callable[[int, int], Awaitable[list[tuple[StoredMessage, str | None]]]]  # ids [first, upto) stored
Newest = Callable[[], Awaitable[int]]


@dataclass(slots=True)
class Waiting:
    """A stored message waiting for its turn."""

    message: StoredMessage
    audience: Audience
    sender_key: str
    result: tuple[int, list[Session]] | None = None


class ClusterDelivery:
    """The :class:`~bleeper.chat.delivery.Delivery` of a node in a cluster. See the module's docstring.

    *receipts* is told (message, connections reached, sender's key) for each message delivered later than its
    command's handler could see (another node's messages, and this node's that waited their turn): the
    handler does receipts itself for what it delivered at once.
    """

    def __init__(self, core: Core, registry: ClusterRegistry, bus: Bus) -> None:
        self.core = core
        self.local = core.local_delivery()
        self.registry = registry
        self.bus = bus
        self.node = bus.node
        self.next_id = 0  # the next message id to deliver; 0 until started
        self.waiting: dict[int, Waiting] = {}
        self.recent: OrderedDict[int, None] = OrderedDict()  # ids delivered lately (escalations excepted)
        self.receipts: Callable[[StoredMessage, list[Session], str], None] = lambda message, targets, key: None
        self.history: History | None = None
        self.newest: Newest | None = None
        self.filled = 0  # messages read from the database because their signal did not come (for /metrics)
        self._gap: asyncio.TimerHandle | None = None
        self._filling = False
        self._seen = 0  # the newest id in the database at the last reconcile
        self._current: Waiting | None = None
        self._fills: set[asyncio.Future[None]] = set()  # this node's message being delivered while its handler waits
        bus.handle("msg", self._message_signal)
        bus.handle("event", self._event_signal)

    async def start(self, history: History, newest: Newest) -> None:
        """Deliver from the next message stored on: earlier ones are in inboxes and history."""
        self.history = history
        self.newest = newest
        self._seen = await newest()
        self.next_id = self._seen + 1

    @property
    def behind(self) -> int:
        """Messages stored that this node has not delivered yet (as of the last reconcile)."""
        return max(0, self._seen - self.next_id + 1)

    # the Delivery protocol ----------------------------------------------------------------------------------

    def route(self, audience: Audience) -> Audience:
        return self.local.route(audience)

    def message(self, message: StoredMessage, stamp: str, audience: Audience) -> tuple[int, list[Session]]:
        but = audience.but
        sender_key = but.key if but is not None and but.key else name_key(message.sender)
        if message.resent:  # a stored message going to more people (an escalation): no turn to wait
            self.bus.publish("msg", signals.message(self.node, message, sender_key, audience, True))
            return self._now(message, audience)
        self.bus.publish("msg", signals.message(self.node, message, sender_key, audience, False))
        if message.id < self.next_id:  # read from the database already (this loop was slow to hear of its commit)
            return self._once(message, audience)
        waiting = self._current = self.waiting[message.id] = Waiting(message, audience, sender_key)
        try:
            self._drain()
        finally:
            self._current = None
        return waiting.result if waiting.result is not None else (0, [])

    def event(self, audience: Audience, kind: str, *params: str) -> int:
        # Always told to the others, even when this node's copy of them has nobody in the audience: that copy
        # may be a moment behind (someone who has just joined the group, or come online, elsewhere).
        self.bus.publish("event", signals.event(self.node, audience, kind, params))
        return self.local.event(audience, kind, *params)

    def disconnect(self, key: str, reason: str) -> int:
        self.bus.publish("event", signals.event(self.node, people((key,)), "!disconnect", (reason,)))
        return self.local.disconnect(key, reason)

    # in order ------------------------------------------------------------------------------------------------

    def _drain(self) -> None:
        waiting = self.waiting
        while True:
            entry = waiting.pop(self.next_id, None)
            if entry is None:
                break
            self.next_id += 1
            self._deliver(entry)
        if waiting and self._gap is None and not self._filling:
            self._gap = asyncio.get_running_loop().call_later(GAP_WAIT, self._gap_timeout)

    def _deliver(self, entry: Waiting) -> None:
        result = self._once(entry.message, entry.audience)
        if entry is self._current:  # its handler is waiting for the answer, and does the receipts
            entry.result = result
        elif result[1]:
            self.receipts(entry.message, result[1], entry.sender_key)

    def _once(self, message: StoredMessage, audience: Audience) -> tuple[int, list[Session]]:
        """Deliver here, unless this message was delivered already (its signal came after the database was
        read for it)."""
        mark = message.id  # not its numbers: a signal lists them in another order than the database
        recent = self.recent
        if mark in recent:
            return 0, []
        recent[mark] = None
        if len(recent) > RECENT:
            recent.popitem(last=False)
        return self._now(message, audience)

    def _now(self, message: StoredMessage, audience: Audience) -> tuple[int, list[Session]]:
        result = self.local.message(message, format_ms(message.created_ms), audience)
        self.core.deliveries += result[0]
        return result

    def _gap_timeout(self) -> None:
        self._gap = None
        if self.waiting and not self._filling:
            self._fill_soon(min(self.waiting))

    def _fill_soon(self, upto: int) -> None:
        task = asyncio.ensure_future(self.fill(upto))
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)
        task.add_done_callback(_log_failure)

    async def fill(self, upto: int) -> None:
        """Deliver every message stored with an id below *upto* that has not been delivered: read from the
        database. Everything below *upto* is settled (committed or never to be), as *upto* is known stored."""
        if self._filling or self.history is None or upto <= self.next_id:
            return
        self._filling = True
        try:
            first = self.next_id
            found = await self.history(first, upto)
            for message, sender_key in found:
                if message.id >= self.next_id and message.id not in self.waiting:
                    key = sender_key or name_key(message.sender)
                    self.waiting[message.id] = Waiting(message, self._audience_of(message, sender_key), key)
                    self.filled += 1
            while self.next_id < upto:
                entry = self.waiting.pop(self.next_id, None)
                self.next_id += 1
                if entry is not None:
                    self._deliver(entry)
            if found:
                log.info("caught up %d message(s) from the database (ids %d-%d) whose signal did not come",
                         len(found), first, upto - 1, extra={"event": "cluster-catch-up", "count": len(found)})  # fmt: skip
        finally:
            self._filling = False
            self._drain()  # and if reading failed, the gap's timer is armed again

    async def reconcile(self) -> None:
        """Once a second: anything stored a second ago and still not delivered is read from the database."""
        if self.newest is None:
            return
        newest = await self.newest()
        seen, self._seen = self._seen, max(self._seen, newest)
        if self.next_id <= seen:
            await self.fill(seen + 1)

    def _audience_of(self, message: StoredMessage, sender_key: str | None) -> Audience:
        """Who a message read back from the database is for, from its conversation (its signal is lost)."""
        conversation = message.conversation
        if conversation == "*":
            return everyone()
        if conversation.startswith("#"):
            return group(conversation)
        if conversation.startswith("role:"):
            role = self.core.roles.get(conversation[5:])
            keys = [*(role.holders if role is not None else ()), *(account for account, _ in message.seqs)]
        else:
            keys = conversation[1:].split(",")
        if sender_key is None:  # a guest has one connection, the sender's: not sent back to it
            keys = [key for key in keys if key != name_key(message.sender)]
        return people(tuple(dict.fromkeys(keys)))

    # signals from the others ----------------------------------------------------------------------------------

    def _message_signal(self, data: bytes) -> None:
        signal = signals.loads(data)
        if signal.get("n") == self.node or not self.next_id:
            return
        message = signals.stored_of(signal)
        audience = signals.audience_of(signal)
        sender_key = str(signal.get("k") or name_key(message.sender))
        if signal.get("r"):  # an escalation: sent once, by the node that took the step
            reached = self._now(message, audience)[1]
            if reached:  # its ledger says whom it reached here, as the escalating node's says for its own
                self.receipts(message, reached, sender_key)
            return
        if message.id < self.next_id:  # read from the database already, most likely
            result = self._once(message, audience)
            if result[1]:
                self.receipts(message, result[1], sender_key)
            return
        if message.id not in self.waiting:
            self.waiting[message.id] = Waiting(message, audience, sender_key)
            self._drain()

    def _event_signal(self, data: bytes) -> None:
        signal = signals.loads(data)
        if signal.get("n") == self.node:
            return
        audience = signals.audience_of(signal)
        kind = str(signal["k"])
        params = tuple(str(param) for param in signal.get("a", ()))
        if kind == "!disconnect":
            for key in audience.people:
                self.local.disconnect(key, params[0] if params else "disconnected")
            return
        self.local.event(audience, kind, *params)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("catching up from the database failed (tried again within a second): %s", task.exception())
