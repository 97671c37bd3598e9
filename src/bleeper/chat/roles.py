"""On-call roles: ``@cardio-oncall`` stands for whoever holds it tonight."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Role:
    name: str  # as first written, with its "@"
    holders: list[str] = field(default_factory=list)  # name keys, in the order they took it


class Roles:
    def __init__(self) -> None:
        self._by_key: dict[str, Role] = {}

    def get(self, key: str) -> Role | None:
        return self._by_key.get(key)

    def all(self) -> list[Role]:
        return [self._by_key[key] for key in sorted(self._by_key)]

    def take(self, key: str, name: str, holder: str) -> Role:
        role = self._by_key.setdefault(key, Role(name))
        if holder not in role.holders:
            role.holders.append(holder)
        return role

    def leave(self, key: str, holder: str) -> None:
        role = self._by_key.get(key)
        if role is not None and holder in role.holders:
            role.holders.remove(holder)
            if not role.holders:
                del self._by_key[key]  # a role nobody holds is forgotten, like an empty group

    def held_by(self, holder: str) -> list[Role]:
        return [role for role in self.all() if holder in role.holders]
