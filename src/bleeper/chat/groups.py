"""JOIN, LEAVE, WHO and GROUPS: named groups, their members online and the accounts that belong to them."""

from __future__ import annotations

import logging

from bleeper.chat.core import Core, Group, Handler
from bleeper.chat.names import group_problem, name_key
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Groups, Join, Leave, Who
from bleeper.protocol.wire import event, multiline, reply

log = logging.getLogger("bleeper.events")


def join(hub: Core, session: Session, command: Join) -> None:
    problem = group_problem(command.group)
    if problem:
        hub.answer(session, reply(codes.INVALID_NAME, problem))
        return
    key = "#" + name_key(command.group[1:])
    group = hub.groups.get(key)
    if group is None:
        group = hub.groups[key] = Group(command.group)
    if session in group.members:
        hub.answer(session, reply(codes.JOINED, f"{group.name} already joined; {len(group.members)} member(s)"))
        return
    data = event("JOIN", group.name, session.name or "")
    for member in group.members:
        member.send(data)
    joining = hub.users.get(session.key or "", [session]) if session.account else [session]
    for device in joining:
        group.members.add(device)
        if device.groups is None:
            device.groups = set()
        device.groups.add(key)
    if session.account is not None:
        group.accounts.add(session.account)
        hub.backend.add_member(key, group.name, session.account)
    hub.answer(session, reply(codes.JOINED, f"{group.name} joined; {len(group.members)} member(s)"))


def leave(hub: Core, session: Session, command: Leave) -> None:
    key = "#" + name_key(command.group[1:])
    group = hub.groups.get(key)
    if group is None or session not in group.members:
        hub.answer(session, reply(codes.NOT_FOUND, f"you are not in {command.group}"))
        return
    leaving = hub.users.get(session.key or "", [session]) if session.account else [session]
    for device in leaving:
        group.members.discard(device)
        if device.groups is not None:
            device.groups.discard(key)
    if session.account is not None:
        group.accounts.discard(session.account)
        hub.backend.remove_member(key, session.account)
    data = event("LEAVE", group.name, session.name or "")
    for member in group.members:
        member.send(data)
    if not group.members and not group.accounts:
        del hub.groups[key]
    hub.answer(session, reply(codes.LEFT, f"{group.name} left"))


def who(hub: Core, session: Session, command: Who) -> None:
    if command.group is None:
        people = sorted((devices[0] for devices in hub.users.values() if devices), key=by_key)
        items = [who_item(hub, other) for other in people]
        noun = "person" if len(items) == 1 else "people"
        hub.answer(session, multiline(codes.WHO_LIST, items, f"{len(items)} {noun} online"))
        return
    group = hub.groups.get("#" + name_key(command.group[1:]))
    if group is None:
        hub.answer(session, reply(codes.NOT_FOUND, f"no such group: {command.group}; GROUPS lists them"))
        return
    names = sorted({other.name or "" for other in group.members}, key=name_key)
    hub.answer(session, multiline(codes.WHO_LIST, names, f"{len(names)} in {group.name}"))


def who_item(hub: Core, other: Session) -> str:
    item = other.name or ""
    if other.groups:
        names = sorted(hub.groups[key].name for key in other.groups if key in hub.groups)
        item += f" groups={','.join(names)}"
    status = hub.presence.get(other.key or "")
    if status is not None:
        item += f" status={status.state}" + (f" note={status.note}" if status.note else "")
    return item


def groups(hub: Core, session: Session, command: Groups) -> None:
    groups = sorted(hub.groups.items())
    items = [f"{group.name} members={len({m.key for m in group.members})}" for _, group in groups]
    noun = "group" if len(items) == 1 else "groups"
    hub.answer(session, multiline(codes.GROUP_LIST, items, f"{len(items)} {noun}"))


def by_key(session: Session) -> str:
    return session.key or ""


HANDLERS: dict[type, Handler] = {
    Join: join,
    Leave: leave,
    Who: who,
    Groups: groups,
}
