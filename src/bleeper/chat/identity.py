"""NAME and LOGIN: who a connection is. A screen name is free to take unless an account owns it; LOGIN
checks the password (off the loop, through the backend), throttles failures per account and address, then
replays what waited in the inbox (chat/catchup.py).
"""

from __future__ import annotations

import logging

from bleeper.chat.catchup import SYNC_BATCH, release_held, replay
from bleeper.chat.core import Core, Verb, flowing, known
from bleeper.chat.delivery import everyone
from bleeper.chat.names import name_key, name_problem, suggest
from bleeper.chat.records import (
    Account,
)
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Login, Name

log = logging.getLogger("bleeper.events")


async def name(hub: Core, session: Session, command: Name) -> None:
    wanted = command.name
    if session.key is not None:
        await rename(hub, session, wanted)
        return
    if hub.limits.auth == "required":
        hub.reply(session, codes.FORBIDDEN, "this server needs an account: LOGIN <name> <password>")
        return
    key = name_key(wanted)
    if not await free_name(hub, session, wanted, key):
        return
    hub.register(session, wanted, key)
    others = hub.registry.count() - 1
    hub.reply(session, codes.NAME_ACCEPTED, f"{wanted} welcome, {wanted}; {others} other(s) online")


async def rename(hub: Core, session: Session, wanted: str) -> None:
    """A guest changes name (IRC's NICK, or NAME again): the new name is claimed as a first one would be,
    the old one given up, and everyone hears ``RENAMED <old> <new>``. The person stays in their groups. An
    account keeps its name: it is who they are in the audit log and in everyone's inbox."""
    old = session.name or ""
    if wanted == old:
        hub.reply(session, codes.NAME_ACCEPTED, f"{old} you are already {old}")
        return
    if session.account is not None:
        hub.reply(session, codes.FORBIDDEN, f"{old} is an account's name: an account keeps it")
        return
    key = name_key(wanted)
    if key == session.key:  # the same name written differently
        problem = name_problem(wanted)
        if problem:
            hub.reply(session, codes.INVALID_NAME, problem)
            return
        session.name = wanted
    else:
        bound = _bound_to(hub, session.key or "")
        if bound:
            hub.reply(session, codes.FORBIDDEN, f"{old} {bound} under this name: the name stays until that is done")
            return
        if not await free_name(hub, session, wanted, key):
            return
        groups = sorted(session.groups or ())
        status = hub.registry.status(session.key or "")
        hub.registry.depart(session)  # (its groups and status are taken again below, under the new name)
        session.name, session.key = wanted, key
        hub.registry.arrive(session)
        for group in groups:
            hub.registry.enter(session, group)
        if status is not None:
            hub.registry.set_status(key, status.state, status.note)
    hub.delivery.event(everyone(but=session), "RENAMED", old, wanted)
    hub.audit("rename", f"guest:{wanted}", f"guest:{old}")
    hub.reply(session, codes.NAME_ACCEPTED, f"{wanted} you are now {wanted} (were {old})")


async def free_name(hub: Core, session: Session, wanted: str, key: str) -> bool:
    """Whether *wanted* may be this guest's name, and claimed for it; if not, the reply says why."""
    problem = name_problem(wanted)
    if problem:
        hub.reply(session, codes.INVALID_NAME, problem)
        return False
    if hub.exists(key):
        free = suggest(wanted, Taken(hub))
        why = "belongs to an account (LOGIN to use it)" if key in hub.accounts else "is taken"
        hub.reply(session, codes.NAME_TAKEN, f'{free} "{wanted}" {why}; try "{free}"')
        return False
    return await claimed(hub, session, key, wanted, account=False)


def _bound_to(hub: Core, key: str) -> str:
    """What names this person, and would be left to whoever took the name next: an on-call role held,
    being someone's backup, an urgent message waiting for them. Empty when nothing does."""
    roles = [role.name for role in hub.roles.held_by(key)]
    if roles:
        return f"holds {', '.join(roles)}"
    if key in hub.backups.values():
        return "is someone's backup"
    if hub.urgent.waiting_for(key):
        return "has urgent messages to acknowledge"
    if any(urgent.sender_key == key for urgent in hub.urgent.open.values()):
        return "has sent urgent messages that still wait"
    return ""


async def login(hub: Core, session: Session, command: Login) -> None:
    if session.key is not None:
        hub.reply(session, codes.FORBIDDEN, f"you are already {session.name}; QUIT and reconnect to switch")
        return
    key = name_key(command.name)
    now = hub.monotonic()
    for subject in (key, "@" + session.host):
        failures, last = hub.failures.get(subject, (0, 0.0))
        wait = hub.limits.login_lockout - (now - last)
        if failures >= hub.limits.login_failures and wait > 0:
            hub.audit("login-refused", key, key, address=session.address, reason="too many failures")
            hub.reply(session, codes.SLOW_DOWN, f"too many failed logins; wait {int(wait) + 1} s and try again")
            return
    account = await known(hub.backend.account(key))
    if account is None or session.closing:
        login_failed(hub, session, command, "no such account" if account is None else "disconnected")
        return
    hub.accounts[account.key] = account.name
    if not await known(hub.backend.verify_password(account, command.password)):
        login_failed(hub, session, command, "wrong password")
        return
    if session.closing:
        login_failed(hub, session, command, "disconnected")
        return
    hub.failures.pop(key, None)
    await logged_in(hub, session, account)


def login_failed(hub: Core, session: Session, command: Login, reason: str) -> None:
    key = name_key(command.name)
    hub.audit("login-failed", key, key, address=session.address, reason=reason)
    for subject in (key, "@" + session.host):
        failures, _ = hub.failures.get(subject, (0, 0.0))
        hub.failures[subject] = (failures + 1, hub.monotonic())
    log.warning(
        "failed login for %r from %s",
        command.name[:40],
        session.address,
        extra={"event": "login-failed", "peer": session.address},
    )
    hub.reply(session, codes.LOGIN_FAILED, "login failed: unknown account or wrong password")


async def logged_in(hub: Core, session: Session, account: Account) -> None:
    for other in list(hub.registry.here(account.key)):
        if other.account is None:  # someone took the account's name without logging in
            hub.drop(other, f"the name {account.name} belongs to an account that has logged in")
    if not await claimed(hub, session, account.key, account.name, account=True):
        return
    session.account = account.key
    session.admin = account.admin
    session.held = []  # live messages wait until the inbox replay is out, so numbers arrive in order
    hub.register(session, account.name, account.key)
    for group_key, group in hub.groups.items():
        if account.key in group.accounts:
            hub.registry.enter(session, group_key)
    hub.audit("login", account.key, account.key, address=session.address)
    log.info(
        "login %s from %s",
        account.name,
        session.address,
        extra={"event": "login", "who": account.name, "peer": session.address},
    )
    hub.delivered_marks[account.key] = max(hub.delivered_marks.get(account.key, 0), account.delivered_seq)

    waiting = await known(hub.backend.inbox(account.key, account.delivered_seq, SYNC_BATCH)) or []
    upto, sent = replay(hub, session, waiting, account.delivered_seq)
    last = await known(hub.backend.last_seq(account.key)) or 0  # after the inbox: it counts all it holds
    release_held(hub, session, upto)
    more = max(0, last - upto)
    hint = f" (SYNC {upto} for the rest)" if more else ""
    hub.reply(session, codes.LOGGED_IN, f"{account.name} logged in at {upto}; {sent} waiting sent, {more} more{hint}")


async def claimed(hub: Core, session: Session, key: str, wanted: str, *, account: bool) -> bool:
    """Take the name in the registry (at once on one server; a cluster's checks with the others), or say
    why not. The connection may have gone meanwhile: then the name is given back."""
    try:
        granted = await hub.registry.claim(session, key, account)
    except Exception as exc:
        log.warning("claiming the name %r failed: %s", wanted[:40], exc)
        hub.reply(session, codes.NAMES_UNCHECKED, f'"{wanted}" cannot be checked with the other servers just now '
                  "(a name must be unique across them); nothing was changed: try again in a moment")  # fmt: skip
        return False
    if not granted and account:  # an account's own name, held elsewhere for a moment (a cluster's handover)
        hub.reply(session, codes.NAME_TAKEN, f'{wanted} "{wanted}" is in use; try again in a moment')
        return False
    if not granted:
        free = suggest(wanted, Taken(hub))
        hub.reply(session, codes.NAME_TAKEN, f'{free} "{wanted}" is taken; try "{free}"')
        return False
    if session.closing:
        hub.registry.release(session, key)
        return False
    return True


class Taken:
    """Names in use, by people online or by accounts, for suggesting a free one."""

    def __init__(self, hub: Core) -> None:
        self.hub = hub

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.hub.exists(key)


VERBS = (
    Verb("NAME", Name, flowing(name), "choose your screen name", needs_name=False),
    Verb("LOGIN", Login, flowing(login), "sign in to your account", needs_name=False),
)
