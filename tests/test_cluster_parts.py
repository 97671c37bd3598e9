"""A cluster node's registry and delivery driven directly: signals fed in as another node would send them.

The node is real (cluster/node.py with its bus, lease, registry and delivery) but never connected: what it
publishes waits in the bus's outbox, where the tests read it. Only the connections are stand-ins (a peer that
records what it was sent), as in tests/test_chat_hub.py. Whole clusters, with NATS and PostgreSQL, are in
tests/test_cluster.py; these tests reach the cases a real cluster cannot be made to show on demand (a signal
lost, or late).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from bleeper.chat import Hub, HubLimits, Session
from bleeper.chat.delivery import people
from bleeper.chat.memory import MemoryBackend
from bleeper.chat.names import name_key
from bleeper.chat.records import NewMessage, StoredMessage
from bleeper.cluster import signals
from bleeper.cluster.delivery import ClusterDelivery
from bleeper.cluster.node import ClusterNode
from bleeper.cluster.registry import NameClaims
from bleeper.store import Store, open_store
from tests.services import postgres_database
from tests.test_chat_hub import Wire


def make_node(name: str = "a") -> tuple[Hub, ClusterNode]:
    node = ClusterNode(["nats://127.0.0.1:1"], name)
    hub = Hub(HubLimits(), **node.hub_options())
    return hub, node


def here(hub: Hub, node: ClusterNode, name: str, account: bool = False) -> tuple[Session, Wire]:
    """Someone connected to this node under *name* (its claim settled: the names table is not the subject)."""
    wire = Wire()
    session = hub.connect(wire, "10.0.0.1:1")
    assert session is not None
    session.name, session.key = name, name_key(name)
    if account:
        session.account = session.key
    node.registry.arrive(session)
    wire.lines()
    return session, wire


def published(node: ClusterNode, subject: str) -> list[dict[str, Any]]:
    """What the node has said on *subject* so far (its bus is not connected, so it is all still queued)."""
    return [signals.loads(data) for name, data in node.bus._outbox if name == node.bus.subject(subject)]


def from_b(seq: int, change: list[Any]) -> bytes:
    return signals.dumps({"n": "b", "o": seq, "d": change})


# names: an account logging in elsewhere ------------------------------------------------------------------------


async def test_a_guest_here_goes_when_an_account_of_its_name_arrives_elsewhere_without_the_evict_signal() -> None:
    hub, node = make_node()
    _, wire = here(hub, node, "Bob")
    node.registry.received(from_b(1, ["arrive", "bob", "bob", True]))
    assert wire.closed is not None and "account" in wire.closed


async def test_a_guest_here_goes_when_a_full_list_from_elsewhere_shows_an_account_of_its_name() -> None:
    hub, node = make_node()
    _, wire = here(hub, node, "Bob")
    node.registry.received(signals.dumps({"n": "b", "o": 7, "all": [["bob", "bob", True, [], None]]}))
    assert wire.closed is not None and "account" in wire.closed


async def test_an_account_here_is_not_sent_away_when_it_is_also_logged_in_elsewhere() -> None:
    hub, node = make_node()
    _, wire = here(hub, node, "bob", account=True)
    node.registry.received(from_b(1, ["arrive", "bob", "bob", True]))
    assert wire.closed is None


# delivery: a message that comes twice, and a page that goes to more people -------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store to catch up from (SQLite: the reading is the same SQL shape on PostgreSQL, tested there in
    tests/test_store.py)."""
    opened = await open_store(str(tmp_path / "bleeper.db"))
    yield opened
    await opened.close()


async def started(store: Store) -> tuple[Hub, ClusterNode, ClusterDelivery]:
    hub, node = make_node()
    delivery = node.delivery
    assert delivery is not None
    await delivery.start(store.stored_between, store.newest_id)
    return hub, node, delivery


async def stored_elsewhere(store: Store, text: str, to: tuple[str, ...]) -> StoredMessage:
    """A message another node committed (and whose signal has not come, or not yet)."""
    address = "@" + ",".join(to)
    (message,) = await store.store_messages([NewMessage("carol", "carol", address, address, text,
                                                        1_763_737_925_000, to)])  # fmt: skip
    return message


def signal_from_b(message: StoredMessage, to: tuple[str, ...], escalation: bool = False) -> bytes:
    return signals.message("b", message, "carol", people(to), escalation)


def seen(wire: Wire, text: str) -> int:
    return sum(text in line for line in wire.lines())


async def test_a_signal_that_comes_after_its_message_was_read_from_the_database_is_not_delivered_again(
    store: Store,
) -> None:
    hub, node, delivery = await started(store)
    _, alice = here(hub, node, "alice", account=True)
    message = await stored_elsewhere(store, "one", ("alice", "bob"))
    await delivery.reconcile()  # a second on, its signal still missing: read from the database
    await delivery.reconcile()
    assert seen(alice, "one") == 1 and delivery.filled == 1
    # The signal, late, lists the recipients' numbers in another order than the database did: the message's
    # id alone says it was delivered.
    late = dataclasses.replace(message, seqs=tuple(reversed(message.seqs)))
    assert late.seqs != message.seqs
    node.bus.handlers["msg"](signal_from_b(late, ("alice", "bob")))
    assert seen(alice, "one") == 0


async def test_an_escalation_of_a_message_delivered_before_reaches_its_new_recipient(store: Store) -> None:
    hub, node, _ = await started(store)
    _, alice = here(hub, node, "alice", account=True)
    _, bob = here(hub, node, "bob", account=True)
    page = dataclasses.replace(await stored_elsewhere(store, "help", ("alice",)), urgent=True)
    node.bus.handlers["msg"](signal_from_b(page, ("alice",)))
    assert seen(alice, "help") == 1 and seen(bob, "help") == 0
    # The same page again, to alice's backup: marked as an escalation, it is not taken for a duplicate.
    escalated = dataclasses.replace(page, seqs=(("bob", 1),))
    node.bus.handlers["msg"](signal_from_b(escalated, ("bob",), escalation=True))
    assert seen(bob, "help") == 1 and seen(alice, "help") == 0
    delivered = [(e.actor, e.subject) for e in cast("MemoryBackend", hub.backend).audit_log if e.kind == "delivered"]
    assert delivered == [("alice", str(page.id)), ("bob", str(page.id))], "its ledger says where it reached"
    # and the same signal without the mark is a duplicate
    node.bus.handlers["msg"](signal_from_b(escalated, ("bob",)))
    assert seen(bob, "help") == 0


async def test_an_escalation_made_here_is_delivered_at_once_and_told_to_the_others_as_one(store: Store) -> None:
    hub, node, delivery = await started(store)
    _, bob = here(hub, node, "bob", account=True)
    page = await stored_elsewhere(store, "help", ("alice",))
    await delivery.reconcile()
    await delivery.reconcile()
    escalated = dataclasses.replace(page, urgent=True, resent=True, seqs=(("bob", 1),))
    reached, _ = delivery.message(escalated, "", people(("bob",)))
    assert reached == 1 and seen(bob, "help") == 1
    assert published(node, "msg")[-1]["r"] == 1


# names: checked again after a gap in the node's lease ----------------------------------------------------------


async def test_after_a_lease_gap_each_guest_name_here_is_checked_and_those_taken_meanwhile_are_given_up() -> None:
    """Against PostgreSQL's names table, as in a cluster: thirty names, checked a few at a time."""
    async with postgres_database() as where:
        store = await open_store(where)
        try:
            hub, node = make_node()
            registry = node.registry
            registry.names = cast("NameClaims", store)
            node.lease.incarnation = "before"
            wires = {}
            for number in range(30):
                name = f"guest{number:02}"
                _, wires[name] = here(hub, node, name)
                registry.claims[name] = f"claim-{name}"
                await registry.names.claim_name(name, "a", "before", f"claim-{name}")
            # While this node was cut off: another node took guest05 (its lease looked gone), and guest06's
            # claim was given up by a release that came late.
            assert await registry.names.take_name("guest05", "b", "other", "theirs", "claim-guest05")
            await registry.names.release_name("guest06", "claim-guest06")
            node.lease.incarnation = "after"  # the lease taken anew
            assert await registry.verify() == ["guest05"]
            assert not registry.unconfirmed and "guest05" not in registry.claims
            for name in wires:
                holder = await registry.names.name_holder(name)
                expected = ("b", "other", "theirs") if name == "guest05" else ("a", "after", registry.claims[name])
                assert holder == expected, name
        finally:
            await store.close()
