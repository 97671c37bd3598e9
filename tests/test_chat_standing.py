"""Standing state (on-call roles, backups, urgent messages waiting) turned into rows and back: no I/O."""

from __future__ import annotations

from bleeper.chat import Hub, HubLimits
from bleeper.chat.memory import MemoryBackend
from bleeper.chat.standing import read_rows
from tests.test_chat_hub import Clock, join


def rows(backend: MemoryBackend) -> list[tuple[str, str, str]]:
    return [(kind, key, value) for (kind, key), value in sorted(backend.standing.items())]


def test_a_new_hub_restored_from_the_rows_carries_on_where_the_old_one_stopped() -> None:
    clock, backend = Clock(), MemoryBackend()
    hub = Hub(HubLimits(urgent_interval=10, urgent_attempts=3), backend=backend, monotonic=clock)
    ann, _ = join(hub, "ann")
    ward, _ = join(hub, "ward7")
    hub.handle(ann, "ONCALL TAKE @cardio-oncall")
    hub.handle(ann, "BACKUP ward7")
    hub.handle(ward, "URGENT @cardio-oncall VT bay 2")
    clock.now += 10
    hub.alert_urgent()  # the second alert: two of three used
    assert [kind for kind, _, _ in rows(backend)] == ["backup", "holder", "urgent"]

    later = Clock()
    restarted = Hub(HubLimits(urgent_interval=10, urgent_attempts=3), backend=backend, monotonic=later)
    standing = read_rows(rows(backend))
    restarted.restore(standing, {1: "VT bay 2"})
    assert [(role.name, role.holders) for role in restarted.roles.all()] == [("@cardio-oncall", ["ann"])]
    assert restarted.backups == {"ann": "ward7"}
    urgent = restarted.urgent.open[1]
    assert (urgent.text, urgent.waiting, urgent.alerts) == ("VT bay 2", ["ann"], 2)
    later.now += 10
    assert [restarted.urgent.advance(due, later.now) for due in restarted.urgent.due(later.now)] == ["alert"]
    later.now += 10
    assert [restarted.urgent.advance(due, later.now) for due in restarted.urgent.due(later.now)] == ["escalate"]


def test_acknowledged_and_abandoned_state_is_forgotten() -> None:
    backend = MemoryBackend()
    hub = Hub(backend=backend)
    ann, _ = join(hub, "ann")
    ward, _ = join(hub, "ward7")
    hub.handle(ann, "ONCALL TAKE @night")
    hub.handle(ann, "BACKUP ward7")
    hub.handle(ward, "URGENT ann call me")
    hub.handle(ann, "ACK 1")
    hub.handle(ann, "ONCALL LEAVE @night")
    hub.handle(ann, "BACKUP none")
    assert backend.standing == {}


def test_unreadable_rows_are_counted_and_skipped() -> None:
    standing = read_rows([("role", "x", "{not json"), ("urgent", "7", '{"sender": "a"}'), ("mystery", "k", "v"),
                          ("backup", "ann", "ben")])  # fmt: skip
    assert standing.unreadable == 3 and standing.backups == {"ann": "ben"}


def test_an_older_servers_escalation_copy_still_acknowledges_its_original() -> None:
    """Servers before one page kept one id stored a copy with its own id; their rows still work."""
    row = ('{"sender_key": "ward7", "sender": "ward7", "to": "@ann", "waiting": ["ann", "ben"], "sent_ms": 0,'
           ' "alerts": 1, "escalated": ["ben"], "copies": [9]}')  # fmt: skip
    hub = Hub(backend=MemoryBackend())
    hub.restore(read_rows([("urgent", "4", row)]), {4: "VT bay 2"})
    ben, _ = join(hub, "ben")
    hub.handle(ben, "ACK 9")
    assert hub.urgent.open == {} and hub.urgent.find(4) is not None and hub.urgent.find(4).acked_by == "ben"  # type: ignore[union-attr]


def test_a_page_acknowledged_elsewhere_stops_alerting_here() -> None:
    """Another server's ACK whose news was lost: the database's answer to the next step closes the page."""
    from bleeper.chat.urgent import UrgentDesk

    desk = UrgentDesk(10, 3)
    page = desk.add(1, "ward7", "ward7", "@ann", "VT bay 2", ["ann"], 0.0)
    (due,) = desk.due(10.0)
    desk.refused(due, 10.0, -1)
    assert 1 not in desk.open and desk.find(1) is page and desk.due(100.0) == []


def test_a_page_recalled_on_another_server_stops_alerting_here_and_an_ack_here_is_told_so() -> None:
    """Two servers sharing a database (here its stand-in): the recall's news has not reached the second, but
    the database's answer to its next step, and to an ACK, says the page was recalled."""
    clock, backend = Clock(), MemoryBackend()
    limits = HubLimits(urgent_interval=10, urgent_attempts=3)
    first, second = Hub(limits, backend=backend, monotonic=clock), Hub(limits, backend=backend, monotonic=clock)
    ward, ward_wire = join(first, "ward7")
    join(first, "ann")
    first.handle(ward, "URGENT ann VT bay 2")
    second.restore(read_rows(rows(backend)), {1: "VT bay 2"})  # the second knows the page (as a node does)
    ann, ann_wire = join(second, "ann2")
    second.urgent.open[1].waiting.append("ann2")
    ward_wire.lines()
    first.handle(ward, "RECALL 1")
    assert any(line.startswith("2") and "recalled" in line for line in ward_wire.lines())
    second.handle(ann, "ACK 1")
    assert [line for line in ann_wire.lines() if "recalled" in line], "the ACK is told the page was recalled"
    assert 1 not in second.urgent.open


def test_a_page_recalled_on_another_server_takes_no_further_step_here() -> None:
    clock, backend = Clock(), MemoryBackend()
    limits = HubLimits(urgent_interval=10, urgent_attempts=3)
    first, second = Hub(limits, backend=backend, monotonic=clock), Hub(limits, backend=backend, monotonic=clock)
    ward, _ = join(first, "ward7")
    join(first, "ann")
    first.handle(ward, "URGENT ann VT bay 2")
    second.restore(read_rows(rows(backend)), {1: "VT bay 2"})
    first.handle(ward, "RECALL 1")
    clock.now += 10
    second.alert_urgent()
    assert 1 not in second.urgent.open and second.urgent.due(clock.now + 100) == []
    assert not [entry for entry in backend.audit_log if entry.kind == "alert"]


def test_two_servers_taking_one_role_at_once_both_hold_it() -> None:
    """Each TAKE and LEAVE writes its own row: a server that has not yet heard of the other's change cannot
    overwrite it (with one row per role, the later writer's list won and a holder was silently lost)."""
    backend = MemoryBackend()
    first, second = Hub(backend=backend), Hub(backend=backend)
    ann, _ = join(first, "ann")
    ben, _ = join(second, "ben")
    cat, _ = join(second, "cat")
    second.handle(cat, "ONCALL TAKE @night")
    first.handle(ann, "ONCALL TAKE @night")  # neither server has heard of the other's change yet
    second.handle(ben, "ONCALL TAKE @night")
    second.handle(cat, "ONCALL LEAVE @night")
    restarted = Hub(backend=backend)
    restarted.restore(read_rows(rows(backend)), {})
    assert [(role.name, sorted(role.holders)) for role in restarted.roles.all()] == [("@night", ["ann", "ben"])]


def test_a_role_kept_as_one_row_by_an_older_server_is_read_and_rewritten_a_row_per_holder() -> None:
    backend = MemoryBackend()
    backend.standing["role", "night"] = '{"name": "@Night", "holders": ["ann", "ben"]}'
    hub = Hub(backend=backend)
    hub.restore(read_rows(rows(backend)), {})
    assert [(role.name, role.holders) for role in hub.roles.all()] == [("@Night", ["ann", "ben"])]
    assert [(kind, key) for kind, key, _ in rows(backend)] == [("holder", "night ann"), ("holder", "night ben")]
    ann, _ = join(hub, "ann")
    hub.handle(ann, "ONCALL LEAVE @night")
    assert [(role.name, role.holders) for role in Hub(backend=backend).roles.all()] == []
    again = Hub(backend=backend)
    again.restore(read_rows(rows(backend)), {})
    assert [(role.name, role.holders) for role in again.roles.all()] == [("@Night", ["ben"])]
