"""What nodes tell each other, as bytes: a compact JSON object per signal. Pure functions, no I/O.

Subjects (cluster/bus.py prefixes them): ``msg`` a stored message to deliver (:func:`message`), ``event`` an
event for an audience or a hang-up (:func:`event`), ``presence`` a node's people changing or its whole list
(cluster/registry.py), ``state`` on-call roles, backups and group memberships changing.
"""

from __future__ import annotations

import json
from typing import Any

from bleeper.chat.delivery import Audience
from bleeper.chat.records import StoredMessage

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def dumps(data: dict[str, Any]) -> bytes:
    return _encode(data).encode()


def loads(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("a signal is a JSON object")
    return value


def audience_fields(audience: Audience) -> dict[str, Any]:
    """Who, in a form another node can resolve against its own connections (never the sender's session)."""
    fields: dict[str, Any] = {}
    if audience.everyone:
        fields["e"] = 1
    if audience.people:
        fields["p"] = list(audience.people)
    if audience.group is not None:
        fields["g"] = audience.group
    return fields


def audience_of(data: dict[str, Any]) -> Audience:
    return Audience(bool(data.get("e")), tuple(str(key) for key in data.get("p", ())), data.get("g"))


def message(node: str, stored: StoredMessage, sender_key: str, audience: Audience, resend: bool) -> bytes:
    data = {"n": node, "i": stored.id, "s": stored.sender, "k": sender_key, "t": stored.to, "c": stored.conversation,
            "x": stored.text, "m": stored.created_ms, "q": stored.seqs, **audience_fields(audience)}  # fmt: skip
    if stored.client_id is not None:
        data["ci"] = stored.client_id
    if stored.urgent:
        data["u"] = 1
    if resend:
        data["r"] = 1
    return dumps(data)


def stored_of(data: dict[str, Any]) -> StoredMessage:
    seqs = tuple((str(account), int(seq)) for account, seq in data.get("q", ()))
    return StoredMessage(int(data["i"]), str(data["s"]), str(data["t"]), str(data["c"]), str(data["x"]),
                         int(data["m"]), data.get("ci"), False, seqs, bool(data.get("u")))  # fmt: skip


def event(node: str, audience: Audience, kind: str, params: tuple[str, ...]) -> bytes:
    return dumps({"n": node, "k": kind, "a": list(params), **audience_fields(audience)})
