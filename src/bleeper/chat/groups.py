"""JOIN, LEAVE, WHO and GROUPS: named groups, their members online and the accounts that belong to them."""

from __future__ import annotations

from bleeper.chat.core import Core, Group, Verb
from bleeper.chat.delivery import group
from bleeper.chat.names import group_key, group_problem, name_key
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Groups, Join, Leave, Who


def join(hub: Core, session: Session, command: Join) -> None:
    problem = group_problem(command.group)
    if problem:
        hub.reply(session, codes.INVALID_NAME, problem)
        return
    key = group_key(command.group)
    found = hub.groups.get(key)
    if found is None:
        found = hub.groups[key] = Group(command.group)
    registry = hub.registry
    if session in registry.members(key):
        hub.reply(session, codes.JOINED, f"{found.name} already joined; {len(registry.members(key))} member(s)")
        return
    hub.delivery.event(group(key), "JOIN", found.name, session.name or "")
    joining = registry.here(session.key or "") if session.account else [session]  # all of an account's devices
    for device in list(joining):
        registry.enter(device, key)
    if session.account is not None:
        found.accounts.add(session.account)
        hub.backend.add_member(key, found.name, session.account)
        hub.shared("member", (key, found.name, session.account))
    hub.reply(session, codes.JOINED, f"{found.name} joined; {len(registry.members(key))} member(s)")


def leave(hub: Core, session: Session, command: Leave) -> None:
    key = group_key(command.group)
    found = hub.groups.get(key)
    registry = hub.registry
    if found is None or session not in registry.members(key):
        hub.reply(session, codes.NOT_FOUND, f"you are not in {command.group}")
        return
    leaving = registry.here(session.key or "") if session.account else [session]
    for device in list(leaving):
        registry.exit(device, key)
    if session.account is not None:
        found.accounts.discard(session.account)
        hub.backend.remove_member(key, session.account)
        hub.shared("member", (key, None, session.account))
    hub.delivery.event(group(key), "LEAVE", found.name, session.name or "")
    if not found.accounts and not registry.has_members(key):
        del hub.groups[key]
    hub.reply(session, codes.LEFT, f"{found.name} left")


def who(hub: Core, session: Session, command: Who) -> None:
    if command.group is None:
        people = sorted(hub.registry.people())
        items = [who_item(hub, key, name) for key, name in people]
        noun = "person" if len(items) == 1 else "people"
        hub.listing(session, codes.WHO_LIST, items, f"{len(items)} {noun} online")
        return
    key = group_key(command.group)
    found = hub.groups.get(key)
    if found is None:
        hub.reply(session, codes.NOT_FOUND, f"no such group: {command.group}; GROUPS lists them")
        return
    names = sorted((hub.shown(member) for member in hub.registry.member_keys(key)), key=name_key)
    hub.listing(session, codes.WHO_LIST, names, f"{len(names)} in {found.name}")


def who_item(hub: Core, key: str, name: str) -> str:
    item = name
    groups = [hub.groups[group].name for group in hub.registry.groups_of(key) if group in hub.groups]
    if groups:
        item += f" groups={','.join(sorted(groups))}"
    status = hub.registry.status(key)
    if status is not None:
        item += f" status={status.state}" + (f" note={status.note}" if status.note else "")
    return item


def groups(hub: Core, session: Session, command: Groups) -> None:
    listed = sorted(hub.groups.items())
    items = [f"{found.name} members={len(hub.registry.member_keys(key))}" for key, found in listed]
    noun = "group" if len(items) == 1 else "groups"
    hub.listing(session, codes.GROUP_LIST, items, f"{len(items)} {noun}")


VERBS = (
    Verb("JOIN", Join, join, "join a group, creating it if needed"),
    Verb("LEAVE", Leave, leave, "leave a group"),
    Verb("WHO", Who, who, "list people online, or in a group"),
    Verb("GROUPS", Groups, groups, "list groups and their sizes"),
)
