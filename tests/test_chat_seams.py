"""The chat layer's seams, driven without a network: a second wire protocol (codec), another delivery and
another registry plug in without any change under chat/, and each command is offered by one feature."""

from __future__ import annotations

import json
from collections.abc import Iterable

from bleeper import __version__
from bleeper.chat import Hub, HubLimits, Session
from bleeper.chat.backend import Answer
from bleeper.chat.delivery import Audience, Delivery, LocalDelivery
from bleeper.chat.hub import FEATURES
from bleeper.chat.records import Account, StoredMessage
from bleeper.chat.registry import LocalRegistry
from bleeper.protocol.codec import LINE
from bleeper.protocol.commands import COMMANDS, Command, ParseError, Say, Tell, UserTarget, parse_command
from tests.test_chat_hub import LaterBackend, Wire


class JsonCodec:
    """A made-up second protocol: one JSON object per line. It decodes its own lines into the same commands
    and renders the same replies, events and messages its own way; it counts what it renders."""

    name = "json"

    def __init__(self) -> None:
        self.tails = 0

    def decode(self, line: str) -> Command | ParseError:
        request = json.loads(line)
        if request["do"] == "say":
            return Say(request["text"])
        if request["do"] == "tell":
            return Tell(UserTarget((request["to"],)), request["text"])
        return parse_command(request["do"])

    def reply(self, code: int, text: str) -> bytes:
        return json.dumps({"code": code, "text": text}).encode() + b"\n"

    def listing(self, code: int, items: Iterable[str], summary: str) -> bytes:
        return json.dumps({"code": code, "items": list(items), "text": summary}).encode() + b"\n"

    def event(self, kind: str, *params: str) -> bytes:
        return json.dumps({"event": kind, "params": list(params)}).encode() + b"\n"

    def message_tail(self, msg_id: int, time: str, sender: str, to: str, text: str) -> bytes:
        self.tails += 1
        return json.dumps({"id": msg_id, "from": sender, "to": to, "text": text}).encode()[1:] + b"\n"

    def message_head(self, seq: int) -> bytes:
        return b'{"seq": %d, ' % seq

    def urgent_head(self, seq: int) -> bytes:
        return b'{"urgent": true, "seq": %d, ' % seq


def decoded(wire: Wire) -> list[dict[str, object]]:
    out = [json.loads(line) for line in b"".join(wire.data).decode().splitlines()]
    wire.data.clear()
    return out


def connect(hub: Hub, name: str, codec: object = LINE) -> tuple[Session, Wire]:
    wire = Wire()
    session = hub.connect(wire, "10.0.0.1:1", "10.0.0.1", codec)  # type: ignore[arg-type]
    assert session is not None
    hub.handle_command(session, parse_command(f"NAME {name}"))
    return session, wire


def test_a_second_codec_speaks_to_the_same_conversations_without_any_change_to_chat() -> None:
    hub = Hub(HubLimits(), clock=lambda: 1_763_737_925.5)
    json_codec = JsonCodec()
    alice, alice_wire = connect(hub, "alice", json_codec)
    bob, bob_wire = connect(hub, "bob")
    carol, carol_wire = connect(hub, "carol", json_codec)
    greeting = f"bleeper Bleeper {__version__} ready; type HELP, then NAME <your name>"
    assert decoded(alice_wire)[0] == {"code": 220, "text": greeting}
    bob_wire.lines()
    decoded(carol_wire)

    hub.handle(alice, json.dumps({"do": "say", "text": "hello all"}))  # the codec decodes its own lines
    assert decoded(alice_wire) == [{"code": 250, "text": "1 2025-11-21T15:12:05.500Z reached 2"}]
    assert bob_wire.lines() == ["MSG 1 1 2025-11-21T15:12:05.500Z alice * hello all"]
    assert decoded(carol_wire) == [{"seq": 1, "id": 1, "from": "alice", "to": "*", "text": "hello all"}]
    assert json_codec.tails == 1  # rendered once for the codec, whoever else speaks it

    hub.handle_command(bob, Tell(UserTarget(("carol",)), "and you?"))  # a listener may parse on its own
    assert bob_wire.lines() == ["250 2 2025-11-21T15:12:05.500Z reached 1", "DELIVERED 2 carol"]
    assert decoded(carol_wire) == [{"seq": 2, "id": 2, "from": "bob", "to": "@carol", "text": "and you?"}]

    hub.handle(carol, json.dumps({"do": "WHO"}))
    assert decoded(carol_wire) == [{"code": 212, "items": ["alice", "bob", "carol"], "text": "3 people online"}]
    hub.handle(carol, json.dumps({"do": "FROB"}))
    assert decoded(carol_wire)[0]["code"] == 400
    hub.handle(bob, "QUIT")
    assert decoded(alice_wire) == [{"event": "OFFLINE", "params": ["bob", "quit"]}]


class ElsewhereRegistry(LocalRegistry):
    """A registry that also knows of a person connected to another server, as cluster mode's will."""

    def __init__(self, elsewhere: dict[str, str]) -> None:
        super().__init__()
        self.elsewhere = elsewhere

    def online(self, key: str) -> bool:
        return key in self.elsewhere or super().online(key)

    def shown(self, key: str) -> str | None:
        return super().shown(key) or self.elsewhere.get(key)

    def people(self) -> list[tuple[str, str]]:
        return super().people() + list(self.elsewhere.items())


class ForwardingDelivery:
    """Local delivery plus a record of what would go to other servers, as cluster mode's delivery adds."""

    def __init__(self, local: LocalDelivery) -> None:
        self.local = local
        self.forwarded: list[tuple[str, Audience]] = []

    def route(self, audience: Audience) -> Audience:
        return self.local.route(audience)

    def message(self, message: StoredMessage, stamp: str, audience: Audience) -> tuple[int, list[Session]]:
        self.forwarded.append((f"message {message.id}", audience))
        return self.local.message(message, stamp, audience)

    def event(self, audience: Audience, kind: str, *params: str) -> int:
        self.forwarded.append((kind, audience))
        return self.local.event(audience, kind, *params)

    def disconnect(self, key: str, reason: str) -> int:
        return self.local.disconnect(key, reason)


def forwarding(hub: object) -> Delivery:
    assert isinstance(hub, Hub)
    return ForwardingDelivery(hub.local_delivery())


def test_another_registry_and_delivery_plug_in_and_features_address_people_not_connections() -> None:
    hub = Hub(HubLimits(), registry=ElsewhereRegistry({"zed": "Zed"}), delivery=forwarding)
    delivery = hub.delivery
    assert isinstance(delivery, ForwardingDelivery)
    alice, alice_wire = connect(hub, "alice")
    alice_wire.lines()

    hub.handle(alice, "WHO")
    assert alice_wire.lines() == ["212-alice", "212-Zed", "212 2 people online"]
    _, newcomer_wire = connect(hub, "zed")  # taken on the other server: NAME asked the registry
    assert newcomer_wire.lines()[1].startswith('409 zed2 "zed" is taken')
    hub.handle(alice, "TELL zed are you there?")
    hub.handle(alice, "JOIN #icu")
    hub.handle(alice, "URGENT zed bed 4")
    lines = alice_wire.lines()
    assert lines[0].startswith("250 1 ") and lines[0].endswith(" reached 0")  # nobody here; zed is elsewhere
    assert lines[1] == "203 #icu joined; 1 member(s)"

    kinds = [(what, audience.everyone, audience.people, audience.group) for what, audience in delivery.forwarded]
    assert kinds == [
        ("ONLINE", True, (), None),
        ("message 1", False, ("zed",), None),
        ("JOIN", False, (), "#icu"),
        ("message 2", False, ("zed",), None),
    ]
    assert all(audience.but in (None, alice) for _, audience in delivery.forwarded)


def test_every_command_of_the_grammar_is_offered_by_exactly_one_feature() -> None:
    offered: dict[str, str] = {}
    for feature in FEATURES:
        for verb in feature.VERBS:
            assert verb.name not in offered, f"{verb.name} offered by {offered[verb.name]} and {feature.__name__}"
            offered[verb.name] = feature.__name__
            assert verb.summary, f"{verb.name} has no summary for HELP"
    assert set(offered) == set(COMMANDS)
    hub = Hub()
    assert set(hub.verbs) == set(COMMANDS)


def test_help_joins_the_grammar_with_what_each_feature_says() -> None:
    hub = Hub()
    session, wire = connect(hub, "alice")
    wire.lines()
    hub.handle(session, "HELP urgent")
    assert wire.lines() == [
        "214-URGENT <to> <text>",
        "214-send a message that alerts until someone acknowledges it (ACK), then escalates",
        "214-also: PAGE, BLEEP",
        "214-needs a name first (NAME <your name>)",
        "214-replies: 250 400 404",
        "214 end of help for URGENT",
    ]


class SlowRegistry(LocalRegistry):
    """A registry whose claims are answered later, as a cluster's are once the other servers agree."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Answer[bool]] = []
        self.released: list[str] = []

    def claim(self, session: Session, key: str, account: bool) -> Answer[bool]:
        self.asked.append(Answer())
        return self.asked[-1]

    def release(self, session: Session, key: str) -> None:
        self.released.append(key)


def test_a_name_waits_for_the_registry_to_grant_it_and_says_why_when_it_cannot() -> None:
    registry = SlowRegistry()
    hub = Hub(HubLimits(), registry=registry)
    wire = Wire()
    session = hub.connect(wire, "10.0.0.1:1")
    assert session is not None
    wire.lines()
    assert hub.handle(session, "NAME alice") is not None  # pending: the connection's next lines wait
    assert wire.lines() == [] and session.key is None
    registry.asked[-1].resolve(False)  # somebody elsewhere has it
    assert wire.lines() == ['409 alice2 "alice" is taken; try "alice2"']  # as when it is taken here
    hub.handle(session, "NAME alice")
    registry.asked[-1].resolve(error=ConnectionError("no servers available for connection"))
    assert wire.lines() == [
        '453 "alice" cannot be checked with the other servers just now (a name must be unique across them); nothing '
        "was changed: try again in a moment"
    ]
    hub.handle(session, "NAME alice")
    registry.asked[-1].resolve(True)
    assert wire.lines() == ["201 alice welcome, alice; 0 other(s) online"] and registry.online("alice")

    other_wire = Wire()
    other = hub.connect(other_wire, "10.0.0.2:1")
    assert other is not None
    hub.handle(other, "NAME bob")
    hub.disconnect(other, "connection lost")  # gone while the claim was being made
    registry.asked[-1].resolve(True)
    assert registry.released == ["bob"] and not registry.online("bob")


def test_a_message_goes_to_those_who_were_there_when_it_was_sent_not_when_it_was_stored() -> None:
    """Its inbox rows are decided when the command arrives: a device that logs in while the message is being
    stored gets it from its inbox, numbered, and never live with a number of its own."""
    backend = LaterBackend()
    backend.accounts["carol"] = Account("carol", "carol", "", False, 0)
    backend.passwords["carol"] = "secret"
    hub = Hub(HubLimits(), backend=backend, clock=lambda: 1_763_737_925.5)
    alice, alice_wire = connect(hub, "alice")
    hub.handle(alice, "SAY before carol came")  # to everyone online: nobody else yet
    carol_wire = Wire()
    carol = hub.connect(carol_wire, "10.0.0.3:1")
    assert carol is not None
    hub.handle(carol, "LOGIN carol secret")
    for answer, stored in backend.stores:
        answer.resolve(stored)
    assert alice_wire.lines()[-1] == "250 1 2025-11-21T15:12:05.500Z reached 0"
    assert [line for line in carol_wire.lines() if line.startswith("MSG")] == []
