"""The hub's rules driven directly, with a fake clock: no sockets, no event loop."""

from __future__ import annotations

from bleeper.chat import Hub, HubLimits, Session
from bleeper.chat.backend import Answer
from bleeper.chat.memory import MemoryBackend
from bleeper.chat.records import NewMessage, StoredMessage
from bleeper.protocol.framing import InvalidEncoding, LineTooLong


class Wire:
    """A peer that records what the hub queued for it."""

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


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_hub(**limits: float) -> tuple[Hub, Clock]:
    clock = Clock()
    hub = Hub(HubLimits(**limits), clock=lambda: 1_763_737_925.5, monotonic=clock)  # type: ignore[arg-type]
    return hub, clock


def join(hub: Hub, name: str | None = None, address: str = "10.0.0.1:1") -> tuple[Session, Wire]:
    wire = Wire()
    session = hub.connect(wire, address, address.rsplit(":", 1)[0])
    assert session is not None
    if name:
        hub.handle(session, f"NAME {name}")
    wire.lines()
    return session, wire


def test_message_ids_increase_and_time_comes_from_the_clock() -> None:
    hub, _ = make_hub()
    alice, alice_wire = join(hub, "alice")
    _, bob_wire = join(hub, "bob")
    assert alice_wire.lines() == ["ONLINE bob"]
    hub.handle(alice, "SAY one")
    hub.handle(alice, "TELL bob two")
    assert alice_wire.lines() == [
        "250 1 2025-11-21T15:12:05.500Z reached 1",
        "250 2 2025-11-21T15:12:05.500Z reached 1",
        "DELIVERED 2 bob",
    ]
    assert bob_wire.lines() == [
        "MSG 1 1 2025-11-21T15:12:05.500Z alice * one",
        "MSG 2 2 2025-11-21T15:12:05.500Z alice @bob two",
    ]


def test_broadcast_queues_the_same_bytes_object_for_every_recipient() -> None:
    hub, _ = make_hub()
    alice, _ = join(hub, "alice")
    wires = [join(hub, f"user{i}")[1] for i in range(5)]
    hub.handle(alice, "SAY shared")
    sent = [wire.data[-1] for wire in wires]  # each got its own "MSG <seq>" head, then these same bytes
    assert all(item is sent[0] for item in sent)


def test_keepalive_pings_then_drops_with_a_fake_clock() -> None:
    hub, clock = make_hub(ping_interval=10, ping_timeout=5)
    alice, alice_wire = join(hub, "alice")
    _, quiet_wire = join(hub, "quiet")
    alice_wire.lines()
    clock.now += 9
    hub.keepalive()
    assert quiet_wire.lines() == []
    clock.now += 2
    hub.handle(alice, "PONG")  # alice speaks up; quiet does not
    hub.keepalive()
    assert quiet_wire.lines() == ["PING 1"]
    clock.now += 6
    hub.keepalive()
    assert quiet_wire.lines() == ["CLOSING ping timeout: no answer from the client"]
    assert quiet_wire.closed and not hub.registry.online("quiet")
    assert alice_wire.lines()[-1] == "OFFLINE quiet ping timeout: no answer from the client"
    assert alice_wire.closed is None


def test_rate_limit_refills_over_time() -> None:
    hub, clock = make_hub(rate=2, burst=2)
    session, wire = join(hub)
    for _ in range(3):
        hub.handle(session, "PING")
    assert [line[:3] for line in wire.lines()] == ["200", "200", "429"]
    clock.now += 1.0
    hub.handle(session, "PING")
    assert wire.lines() == ["200 PONG"]


def test_framing_errors_are_answered_and_counted_against_the_rate() -> None:
    hub, _ = make_hub(rate=1, burst=1)
    session, wire = join(hub)
    hub.framing_error(session, LineTooLong(4096))
    hub.framing_error(session, InvalidEncoding("byte 0xff at offset 0"))
    assert wire.lines()[0].startswith("413 ")
    assert wire.closed and wire.closed.startswith("flood")


def test_per_address_count_is_released_on_disconnect() -> None:
    hub, _ = make_hub(max_per_address=1)
    session, _ = join(hub, address="10.0.0.9:1")
    refused = Wire()
    assert hub.connect(refused, "10.0.0.9:2", "10.0.0.9") is None
    assert refused.lines()[0].startswith("421 ") and refused.closed
    hub.disconnect(session, "gone")
    hub.disconnect(session, "gone again")  # idempotent
    assert hub.connect(Wire(), "10.0.0.9:3", "10.0.0.9") is not None


def test_shutdown_tells_everyone_and_forgets_them() -> None:
    hub, _ = make_hub()
    wires = [join(hub, name)[1] for name in ("a1", "b1", "c1")]
    for wire in wires:
        wire.lines()
    hub.shutdown()
    assert all("CLOSING server shutting down" in wire.lines() for wire in wires)
    assert not hub.sessions and not hub.registry.count()


def test_empty_group_disappears_when_its_last_member_disconnects() -> None:
    hub, _ = make_hub()
    alice, _ = join(hub, "alice")
    hub.handle(alice, "JOIN #night")
    assert "#night" in hub.groups
    hub.disconnect(alice, "connection lost")
    assert hub.groups == {}


class LaterBackend(MemoryBackend):
    """Storage whose answers come later, when the test says: as a real store's do."""

    def __init__(self) -> None:
        super().__init__()
        self.stores: list[tuple[Answer[StoredMessage], StoredMessage]] = []
        self.keeps: list[Answer[None]] = []

    def store(self, message: NewMessage) -> Answer[StoredMessage]:
        later: Answer[StoredMessage] = Answer()
        self.stores.append((later, super().store(message).result()))
        return later

    def keep(self, kind: str, key: str, value: str | None) -> Answer[None]:
        super().keep(kind, key, value)
        later: Answer[None] = Answer()
        self.keeps.append(later)
        return later


def test_an_escalation_that_could_not_be_stored_is_tried_again_at_the_next_step() -> None:
    """Not a whole round of alerts later: the backup is who can help now."""
    backend = LaterBackend()
    clock = Clock()
    hub = Hub(HubLimits(urgent_interval=10, urgent_attempts=3), backend=backend, monotonic=clock)
    ward, _ = join(hub, "ward7")
    doc, _ = join(hub, "doc")
    _, carol_wire = join(hub, "carol")
    hub.handle(doc, "BACKUP carol")
    hub.handle(ward, "URGENT doc bed 4")
    for answer, stored in backend.stores:
        answer.resolve(stored)
    backend.stores.clear()
    for _ in range(3):  # two more alerts, then the escalation
        clock.now += 10
        hub.alert_urgent()
    (failing, _), *_ = backend.stores
    failing.resolve(error=OSError("disk full"))
    backend.stores.clear()
    clock.now += 10
    hub.alert_urgent()
    assert len(backend.stores) == 1, "the next step escalates again"
    answer, stored = backend.stores[0]
    answer.resolve(stored)
    assert any(line.startswith("URGENT ") and line.endswith("bed 4") for line in carol_wire.lines())
    assert hub.urgent.open[1].escalated == ["carol"]


def test_an_urgent_message_is_answered_in_order_even_when_keeping_its_alert_state_fails() -> None:
    """The 250 waits for the alert state to be written; should that fail, the connection must not wait for
    ever: the command is answered, and the lines after it too, in order."""
    backend = LaterBackend()
    hub = Hub(HubLimits(), backend=backend, clock=lambda: 1_763_737_925.5)
    ward, ward_wire = join(hub, "ward7")
    join(hub, "doc")
    ward_wire.lines()  # ONLINE doc
    hub.handle(ward, "URGENT doc bed 4")
    hub.handle(ward, "PING x")
    for answer, stored in backend.stores:
        answer.resolve(stored)
    assert ward_wire.lines() == []  # the 250 waits for the alert state, and PONG x waits behind it
    backend.keeps[-1].resolve(error=OSError("disk full"))
    assert hub.handle(ward, "QUIT") is None  # nothing left in flight: the goodbye goes out at once
    lines = ward_wire.lines()
    assert lines[0].startswith("250 1 ") and "urgent" in lines[0], lines
    assert lines[1:] == ["200 PONG x", "DELIVERED 1 doc", "221 goodbye, ward7"]  # as before the split


def test_a_guest_may_change_name_and_everyone_hears_of_it() -> None:
    hub, _ = make_hub()
    alice, alice_wire = join(hub, "alice")
    bob, bob_wire = join(hub, "bob")
    hub.handle(alice, "JOIN #icu")
    hub.handle(bob, "JOIN #icu")
    hub.handle(alice, "STATUS busy")
    alice_wire.lines()
    bob_wire.lines()
    hub.handle(alice, "NAME Alicia")
    assert alice_wire.lines() == ["201 Alicia you are now Alicia (were alice)"]
    assert bob_wire.lines() == ["RENAMED alice Alicia"]
    assert [key for key, _ in hub.registry.people()] == ["alicia", "bob"] or sorted(
        key for key, _ in hub.registry.people()
    ) == ["alicia", "bob"]
    assert "alicia" in hub.registry.member_keys("#icu") and "alice" not in hub.registry.member_keys("#icu")
    hub.handle(bob, "TELL alicia found you")
    assert alice_wire.lines()[0].endswith("bob @Alicia found you")
    hub.handle(bob, "NAME alicia")  # the new name is taken, and the old one free
    assert bob_wire.lines()[-1].startswith("409 ")
    hub.handle(alice, "NAME ALICIA")  # the same name written differently: shown as written
    assert alice_wire.lines() == ["201 ALICIA you are now ALICIA (were Alicia)"]
    assert bob_wire.lines() == ["RENAMED Alicia ALICIA"]
    carol, carol_wire = join(hub, "carol")
    hub.handle(carol, "NAME alice")
    assert carol_wire.lines()[0].startswith("201 alice")


def test_an_account_keeps_its_name() -> None:
    hub, _ = make_hub()
    session, wire = join(hub)
    session.name, session.key, session.account = "Dr.Smith", "dr.smith", "dr.smith"
    hub.registry.arrive(session)
    hub.handle(session, "NAME smithy")
    assert wire.lines() == ["403 Dr.Smith is an account's name: an account keeps it"]


def test_a_guest_holding_a_role_a_page_or_a_backup_keeps_their_name() -> None:
    """Roles, pages waiting and backups name a person by their name: a rename would leave them to whoever
    takes the old name next (found by a review)."""
    hub, _ = make_hub()
    bob, bob_wire = join(hub, "bob")
    ann, ann_wire = join(hub, "ann")
    hub.handle(bob, "ONCALL TAKE @icu")
    bob_wire.lines()
    hub.handle(bob, "NAME robert")
    refused = bob_wire.lines()
    assert refused[0].startswith("403 ") and "@icu" in refused[0]
    hub.handle(bob, "ONCALL LEAVE @icu")
    bob_wire.lines()
    hub.handle(ann, "BACKUP bob")
    hub.handle(bob, "NAME robert")
    refused = bob_wire.lines()
    assert refused[0].startswith("403 ") and "backup" in refused[0]
    hub.handle(ann, "BACKUP none")
    hub.handle(ann, "URGENT bob come now")
    bob_wire.lines()
    hub.handle(bob, "NAME robert")
    refused = bob_wire.lines()
    assert refused[0].startswith("403 ") and "urgent" in refused[0]
    hub.handle(bob, "ACK 1")
    bob_wire.lines()
    hub.handle(bob, "NAME robert")
    assert bob_wire.lines()[0].startswith("201 robert")
    ann_wire.lines()


def test_a_rename_keeps_the_persons_status() -> None:
    hub, _ = make_hub()
    bob, _ = join(hub, "bob")
    hub.handle(bob, "STATUS away lunch")
    hub.handle(bob, "NAME robert")
    status = hub.registry.status("robert")
    assert status is not None and (status.state, status.note) == ("away", "lunch")


def test_everyone_is_not_a_group_name() -> None:
    """IRC's #everyone is everyone online (SAY): a group of that name would be a trap."""
    hub, _ = make_hub()
    bob, bob_wire = join(hub, "bob")
    hub.handle(bob, "JOIN #Everyone")
    assert bob_wire.lines()[0].startswith("422 ")
