"""The registry seam: who is connected, under which name, in which groups, and how available.

Features ask the registry, never a dict: "is bob online?", "which of bob's connections are on this server?",
"who is in #icu?". :class:`LocalRegistry` answers for one server, from memory. Cluster mode adds an
implementation that also knows the people and group members on other servers (name claims, presence); the
features stay as they are. Which connections *receive* something is the delivery seam's
(chat/delivery.py), which reads this registry for the connections here.

Names are keys (chat/names.py ``name_key``): ``Alice`` and ``alice`` are one person. A person may have
several connections (an account's devices); they come online with the first and go offline with the last.

Questions are answered at once, from what the registry knows (a cluster's keeps a copy of the others'
claims up to date). Taking a name is the one thing that may have to wait: :meth:`Registry.claim` answers a
:class:`~bleeper.chat.backend.Pending`, which the local registry has answered already, and which a cluster's
answers once every server would agree (an atomic create-only write), so two people can never hold one name.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Protocol

from bleeper.chat.backend import Answer, Pending
from bleeper.chat.presence import Presence, Status
from bleeper.chat.session import Session


class Registry(Protocol):
    """Names, group membership and presence. See the module's docstring."""

    def here(self, key: str) -> Sequence[Session]:
        """The person's connections on this server (empty when none)."""
        ...

    def online(self, key: str) -> bool:
        """Whether the person has a connection anywhere."""
        ...

    def shown(self, key: str) -> str | None:
        """The name as an online person chose to write it; None when they are not online."""
        ...

    def people(self) -> list[tuple[str, str]]:
        """Everyone online, as (key, shown name), in no particular order."""
        ...

    def sessions(self) -> Iterator[Session]:
        """Every named connection on this server."""
        ...

    def count(self) -> int:
        """How many people are online."""
        ...

    def claim(self, session: Session, key: str, account: bool) -> Pending[bool]:
        """May this connection go by *key*? False when someone else holds it. An *account*'s connection
        shares its name with the account's other devices, and a guest holding an account's name gives it up
        (LOGIN drops it). A True answer must be followed by :meth:`arrive` or :meth:`release`."""
        ...

    def release(self, session: Session, key: str) -> None:
        """Give back a claim that was not used (the connection went while it was being made)."""
        ...

    def arrive(self, session: Session) -> bool:
        """Add a connection under its ``key`` and ``name``; True when that person was not online before."""
        ...

    def depart(self, session: Session) -> tuple[bool, list[str]]:
        """Remove a connection: whether it was the person's last, and the groups it was in."""
        ...

    def enter(self, session: Session, group: str) -> None:
        """The connection is in the group (a key starting with ``#``) from now on."""
        ...

    def exit(self, session: Session, group: str) -> None: ...

    def members(self, group: str) -> Collection[Session]:
        """The group's connections on this server."""
        ...

    def member_keys(self, group: str) -> set[str]:
        """The people in the group now, anywhere."""
        ...

    def has_members(self, group: str) -> bool: ...

    def groups_of(self, key: str) -> list[str]:
        """The groups a person is in now (keys)."""
        ...

    def status(self, key: str) -> Status | None:
        """What the person said of their availability; None for the default (available, no note)."""
        ...

    def set_status(self, key: str, state: str, note: str = "") -> Status: ...

    def do_not_disturb(self, recipient: str, sender: str) -> Status | None:
        """The recipient's status when *sender* should be told they are not to be disturbed (once each)."""
        ...


class LocalRegistry:
    """The registry of a server on its own: dictionaries in memory, gone with the process (as connections are)."""

    def __init__(self) -> None:
        self.users: dict[str, list[Session]] = {}  # name key -> its connections (several for an account)
        self.groups: dict[str, set[Session]] = {}  # group key -> its connections
        self.presence = Presence()

    def here(self, key: str) -> Sequence[Session]:
        return self.users.get(key, ())

    def online(self, key: str) -> bool:
        return key in self.users

    def shown(self, key: str) -> str | None:
        devices = self.users.get(key)
        return devices[0].name if devices else None

    def people(self) -> list[tuple[str, str]]:
        return [(key, devices[0].name or key) for key, devices in self.users.items()]

    def sessions(self) -> Iterator[Session]:
        for devices in self.users.values():
            yield from devices

    def count(self) -> int:
        return len(self.users)

    def claim(self, session: Session, key: str, account: bool) -> Pending[bool]:
        return Answer.of(account or key not in self.users)

    def release(self, session: Session, key: str) -> None:
        """Nothing to give back: a local claim is the entry :meth:`arrive` makes."""

    def arrive(self, session: Session) -> bool:
        key = session.key or ""
        devices = self.users.get(key)
        first = not devices
        if devices is None:
            devices = self.users[key] = []
        devices.append(session)
        return first

    def depart(self, session: Session) -> tuple[bool, list[str]]:
        key = session.key or ""
        left = sorted(session.groups or ())
        for group in left:
            self.exit(session, group)
        devices = self.users.get(key, [])
        if session not in devices:
            return False, left
        devices.remove(session)
        if devices:
            return False, left
        self.users.pop(key, None)
        self.presence.forget(key)
        return True, left

    def enter(self, session: Session, group: str) -> None:
        self.groups.setdefault(group, set()).add(session)
        if session.groups is None:
            session.groups = set()
        session.groups.add(group)

    def exit(self, session: Session, group: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.discard(session)
            if not members:
                del self.groups[group]
        if session.groups is not None:
            session.groups.discard(group)

    def members(self, group: str) -> Collection[Session]:
        return self.groups.get(group, ())  # the live set, read-only by its type: copying it would cost fan-out

    def member_keys(self, group: str) -> set[str]:
        return {member.key for member in self.groups.get(group, ()) if member.key is not None}

    def has_members(self, group: str) -> bool:
        return group in self.groups

    def groups_of(self, key: str) -> list[str]:
        devices = self.users.get(key)
        return sorted(devices[0].groups or ()) if devices else []

    def status(self, key: str) -> Status | None:
        return self.presence.get(key)

    def set_status(self, key: str, state: str, note: str = "") -> Status:
        return self.presence.set(key, state, note)

    def do_not_disturb(self, recipient: str, sender: str) -> Status | None:
        return self.presence.do_not_disturb(recipient, sender)
