"""One connected client, as the chat domain sees it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from bleeper.chat.ratelimit import TokenBucket
from bleeper.protocol.codec import LINE, Codec


class Peer(Protocol):
    """What the hub needs from a transport: queue bytes without blocking, and hang up."""

    def write(self, data: bytes) -> None: ...

    def close(self, reason: str) -> None: ...


class Session:
    """Per-connection chat state. ``send`` is the peer's ``write``, bound once for the fan-out loop; ``codec``
    is the wire protocol the connection speaks (protocol/codec.py), which renders everything it is sent."""

    __slots__ = (
        "account",
        "address",
        "admin",
        "bucket",
        "closing",
        "codec",
        "groups",
        "held",
        "host",
        "key",
        "last_active",
        "name",
        "peer",
        "ping_sent",
        "send",
        "seq",
        "slots",
        "when_drained",
    )

    def __init__(self, peer: Peer, address: str, bucket: TokenBucket, now: float, codec: Codec = LINE) -> None:
        self.peer = peer
        self.send = peer.write
        self.codec = codec
        self.address = address
        self.host = address  # the peer host, for per-address limits
        self.bucket = bucket
        self.name: str | None = None
        self.key: str | None = None
        self.groups: set[str] | None = None
        self.closing = False
        self.last_active = now
        self.ping_sent: float | None = None
        self.account: str | None = None  # the account key once logged in
        self.admin = False  # logged in to an administrator's account
        self.seq = 0  # messages delivered to this connection (anonymous sessions number their own)
        self.held: list[tuple[int, bytes, bytes]] | None = None  # (seq, head, tail) held while LOGIN replays
        # Replies waiting for storage, in command order: [ready, bytes]. Empty when nothing is in flight.
        self.slots: list[list[Any]] = []  # a list, not a deque: 56 bytes idle, and never more than 64 long
        self.when_drained: Callable[[], None] | None = None

    @property
    def actor(self) -> str:
        """Who did something, as the audit log names them: the account, or ``guest:<name>``."""
        return self.account or f"guest:{self.name}"

    @property
    def label(self) -> str:
        """How the event console names this client."""
        return self.name or f"({self.address})"

    def __repr__(self) -> str:
        return f"<Session {self.label}>"
