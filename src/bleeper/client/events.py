"""What a client sees besides replies: the server's events and the client's own connection changes."""

from __future__ import annotations

from dataclasses import dataclass

from bleeper.protocol.incoming import Event, Message


@dataclass(frozen=True, slots=True)
class Connected:
    """The connection is up (the first time, or again after a loss) and, if a name was held, registered and
    back in its groups.

    After a reconnect, ``caught_up`` says what is known of the messages sent meanwhile: for an account, how
    many were delivered now (0: nothing was missed); None for a name without an account, whose messages are
    not kept while it is away. ``gone`` is the server's word when some were removed before they could be
    delivered (retention), and ``lost_groups`` the groups it could not rejoin."""

    server: str
    name: str | None
    again: bool
    caught_up: int | None = None
    gone: str | None = None
    lost_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The connection was lost. ``retrying`` says whether the client will reconnect by itself."""

    reason: str
    retrying: bool


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the server accepted (250): its id, time and how many connections it reached."""

    id: int
    time: str
    reached: int


@dataclass(frozen=True, slots=True)
class Person:
    """One line of WHO: a name and the groups it is in, plus any other ``key=value`` the server sends."""

    name: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def status(self) -> str:
        """available, busy, away or dnd (STATUS)."""
        return dict(self.extra).get("status", "available")

    @property
    def note(self) -> str:
        return dict(self.extra).get("note", "")


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    members: int


ClientEvent = Message | Event | Connected | Disconnected

__all__ = ["ClientEvent", "Connected", "Disconnected", "Event", "GroupInfo", "Message", "Person", "Sent"]
