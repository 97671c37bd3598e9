"""A cluster node's registry and delivery driven directly: signals fed in as another node would send them.

The node is real (cluster/node.py with its bus, lease, registry and delivery) but never connected: what it
publishes waits in the bus's outbox, where the tests read it. Only the connections are stand-ins (a peer that
records what it was sent), as in tests/test_chat_hub.py. Whole clusters, with NATS and PostgreSQL, are in
tests/test_cluster.py; these tests reach the cases a real cluster cannot be made to show on demand (a signal
lost, or late).
"""

from __future__ import annotations

from typing import Any

from bleeper.chat import Hub, HubLimits, Session
from bleeper.chat.delivery import Audience, everyone
from bleeper.chat.names import name_key
from bleeper.chat.records import StoredMessage
from bleeper.cluster import signals
from bleeper.cluster.delivery import ClusterDelivery
from bleeper.cluster.node import ClusterNode


class Wire:
    """A peer that records what it was sent, and why it was closed."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.closed: str | None = None

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def close(self, reason: str) -> None:
        self.closed = reason

    def lines(self) -> list[str]:
        out = b"".join(self.data).decode().split("\r\n")[:-1]
        self.data.clear()
        return out


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
