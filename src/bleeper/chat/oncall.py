"""ONCALL: who holds which on-call role (TELL and URGENT @role reach the holders, chat/messaging.py), and
handing one over with the urgent messages still waiting for its holder.
"""

from __future__ import annotations

from bleeper.chat.core import Core, Verb
from bleeper.chat.delivery import people
from bleeper.chat.flow import run
from bleeper.chat.names import name_key, name_problem
from bleeper.chat.paging import pass_on
from bleeper.chat.session import Session
from bleeper.chat.standing import holder_row
from bleeper.protocol import codes
from bleeper.protocol.commands import Oncall


def oncall(hub: Core, session: Session, command: Oncall) -> None:
    me = session.key or ""
    actor = session.actor
    if command.action == "list":
        items = [f"{role.name} holders={','.join(hub.shown(h) for h in role.holders)}" for role in hub.roles.all()]
        hub.listing(session, codes.ROLES, items, f"{len(items)} role(s) held")
        return
    problem = name_problem(command.role[1:])
    if problem:
        hub.reply(session, codes.INVALID_NAME, problem.replace("name", "role name", 1))
        return
    key = name_key(command.role[1:])
    role = hub.roles.get(key)
    if command.action == "take":
        role = hub.roles.take(key, command.role, me)
        hub.keep(holder_row(key, role.name, me, int(hub.clock() * 1000)))
        hub.audit("role", actor, role.name, action="take", holder=me)
        others = [hub.shown(h) for h in role.holders if h != me]
        also = f" with {', '.join(others)}" if others else ""
        hub.reply(session, codes.ROLES, f"you hold {role.name}{also}")
        return
    if role is None or me not in role.holders:
        hub.reply(session, codes.FORBIDDEN, f"you do not hold {command.role}")
        return
    pending = [u for u in hub.urgent.open.values() if u.to == role.name and me in u.waiting]
    if command.action == "leave":
        if pending:
            hub.reply(
                session,
                codes.NAME_TAKEN,
                f"{len(pending)} urgent message(s) to {role.name} wait "
                f"for you: ONCALL HANDOVER {role.name} <name> passes them on",
            )
            return
        hub.roles.leave(key, me)
        hub.keep(holder_row(key, role.name, me, None))
        hub.audit("role", actor, role.name, action="leave", holder=me)
        hub.reply(session, codes.ROLES, f"you no longer hold {role.name}")
        return
    to = name_key(command.to)
    if not hub.exists(to):
        hub.reply(session, codes.NOT_FOUND, f"no such user: {command.to} (WHO lists people)")
        return
    hub.roles.take(key, role.name, to)
    hub.roles.leave(key, me)
    hub.keep(holder_row(key, role.name, to, int(hub.clock() * 1000)))
    hub.keep(holder_row(key, role.name, me, None))
    hub.audit("role", actor, role.name, action="handover", holder=to, previous=me, urgent=len(pending))
    hub.delivery.event(people((to,)), "ONCALL", role.name, "from", session.name or me)
    for urgent in pending:
        if to not in urgent.waiting:  # a fellow holder has it already
            run(pass_on(hub, urgent, to, "handed-over", "from", me))
    note = f"; {len(pending)} urgent message(s) passed on, to acknowledge" if pending else ""
    hub.reply(session, codes.ROLES, f"{role.name} handed over to {hub.shown(to)}{note}")


VERBS = (
    Verb(
        "ONCALL",
        Oncall,
        oncall,
        "on-call roles: list them, take one, hand one over; TELL/URGENT @role reach its holders",
    ),
)
