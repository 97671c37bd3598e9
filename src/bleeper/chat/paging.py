"""Urgent messages after they are sent: ACK, BACKUP, alerting again and escalation to backups. One page
keeps one id: an escalation delivers the same message to one more person.
"""

from __future__ import annotations

from collections.abc import Callable

from bleeper.chat.core import Core, Verb, flowing, known
from bleeper.chat.delivery import people
from bleeper.chat.flow import run
from bleeper.chat.names import name_key
from bleeper.chat.receipts import note_delivered
from bleeper.chat.records import (
    NewMessage,
)
from bleeper.chat.session import Session
from bleeper.chat.standing import BACKUP, urgent_row
from bleeper.chat.urgent import NotWaiting, Urgent
from bleeper.protocol import codes
from bleeper.protocol.commands import Ack, Backup
from bleeper.protocol.wire import format_ms


async def ack(hub: Core, session: Session, command: Ack) -> None:
    """The first acknowledgement closes the page, wherever it is made: the backend settles which was first."""
    key = session.key or ""
    try:
        urgent = hub.urgent.waiting_on(command.message_id, key)
    except KeyError:
        hub.reply(
            session,
            codes.NOT_FOUND,
            f"no urgent message {command.message_id} is waiting; ACK takes the <id> of URGENT <seq> <id> ...",
        )
        return
    except NotWaiting:
        hub.reply(session, codes.FORBIDDEN, f"urgent message {command.message_id} was not sent to you")
        return
    if urgent.acked_by is None:
        first = await known(hub.backend.claim_ack(urgent.id, key))
        if first is None:
            hub.reply(session, codes.STORAGE_ERROR, f"the acknowledgement of {urgent.id} was NOT recorded; ACK again")
            return
        if first == "":  # recalled by its sender on another server, whose news has not come
            hub.urgent.closed_elsewhere(urgent.id)
            hub.reply(
                session, codes.NOT_FOUND, f"urgent message {urgent.id} was recalled by its sender; nothing to ACK"
            )
            return
        if urgent.acked_by is None:
            hub.urgent.ack(urgent, first, hub.monotonic())
            if first == key:
                acknowledged(hub, session, urgent)
                return
    hub.reply(session, codes.ACKNOWLEDGED, f"{urgent.id} already acknowledged by {hub.shown(urgent.acked_by or key)}")


def acknowledged(hub: Core, session: Session, urgent: Urgent) -> None:
    hub.keep(urgent_row(urgent))
    by = hub.shown(urgent.acked_by or "")
    hub.delivery.event(people({urgent.sender_key, *urgent.waiting}, but=session), "ACKED", str(urgent.id), by)
    hub.audit(
        "ack",
        session.actor,
        str(urgent.id),
        alerts=urgent.alerts,
        escalated=",".join(urgent.escalated),
    )
    hub.reply(session, codes.ACKNOWLEDGED, f"{urgent.id} acknowledged; {urgent.sender} is told")


def backup(hub: Core, session: Session, command: Backup) -> None:
    key = session.key or ""
    if command.name is None:
        current = hub.backups.get(key)
        shown = f"your backup is {hub.shown(current)}" if current else "you have no backup: BACKUP <name>"
        hub.reply(session, codes.BACKUP_SET, shown)
        return
    if command.name.lower() == "none":
        if hub.backups.pop(key, None) is not None:
            hub.keep((BACKUP, key, None))
            hub.audit("backup", session.actor, key, backup="")
        hub.reply(session, codes.BACKUP_SET, "no backup: urgent messages to you keep alerting you")
        return
    backup = name_key(command.name)
    if not hub.exists(backup):
        hub.reply(session, codes.NOT_FOUND, f"no such user: {command.name} (WHO lists people)")
        return
    hub.backups[key] = backup
    hub.keep((BACKUP, key, backup))
    hub.audit("backup", session.actor, key, backup=backup)
    hub.reply(
        session,
        codes.BACKUP_SET,
        f"your backup is {hub.shown(backup)}: they get urgent "
        f"messages you have not acknowledged after {hub.limits.urgent_attempts} alerts",
    )


def alert_urgent(hub: Core) -> None:
    """Called every second or so: alert again, or escalate, what nobody has acknowledged in time. Each step
    is claimed first: of several servers sharing the database, one takes it (see chat/urgent.py)."""
    for urgent in hub.urgent.due(hub.monotonic()):
        run(take_step(hub, urgent), _unclaim(hub, urgent))


def _unclaim(hub: Core, urgent: Urgent) -> Callable[[BaseException], None]:
    """After a step failed half-way (logged by run): its next is claimed again shortly."""
    return lambda exc: hub.urgent.refused(urgent, hub.monotonic(), 0)


async def take_step(hub: Core, urgent: Urgent) -> None:
    interval_ms = int(hub.urgent.interval * 1000)
    claimed = await known(hub.backend.claim_step(urgent.id, urgent.steps, interval_ms, urgent.sent_ms))
    taken, step = claimed if claimed is not None else (False, urgent.steps)
    if not taken or step != urgent.steps + 1 or urgent.id not in hub.urgent.open:
        hub.urgent.refused(urgent, hub.monotonic(), step)
        return
    action = hub.urgent.advance(urgent, hub.monotonic())
    hub.keep(urgent_row(urgent))  # where its alerts stand, to resume there after a restart (and for the others)
    if action == "alert":
        hub.audit(
            "alert",
            "server",
            str(urgent.id),
            to=",".join(urgent.waiting),
            round=f"{urgent.alerts}/{hub.urgent.attempts}",
            step=urgent.steps,  # which of its steps: each is taken once, by one server (see chat/urgent.py)
        )
        for key in urgent.waiting:  # lock-screen safe: who and how many, never the text
            waiting = str(hub.urgent.waiting_for(key))
            hub.delivery.event(people((key,)), "ALERT", str(urgent.id), urgent.sender, waiting)
        hub.notify_offline(urgent.waiting, "alert", urgent.id, urgent.sender)
        names = ",".join(hub.shown(key) for key in urgent.waiting)
        alerts = f"{urgent.alerts}/{hub.urgent.attempts}"
        hub.delivery.event(people((urgent.sender_key,)), "ESCALATION", str(urgent.id), "alerted", alerts, names)
    else:
        escalate(hub, urgent)


def escalate(hub: Core, urgent: Urgent) -> None:
    """Send the message on to the backups of those who have not answered; with none, keep alerting."""
    targets = {hub.backups[key]: key for key in urgent.waiting if key in hub.backups}
    targets = {backup: of for backup, of in targets.items() if backup not in urgent.waiting}
    if not targets:
        names = ",".join(hub.shown(key) for key in urgent.waiting)
        hub.delivery.event(people((urgent.sender_key,)), "ESCALATION", str(urgent.id), "no-backup", names)
        return
    urgent.alerts = 1  # the delivery to the backups is the first alert of their round, as the first delivery was
    for backup, of in targets.items():
        run(pass_on(hub, urgent, backup, "escalated", "backup-of", of))


async def pass_on(hub: Core, urgent: Urgent, to: str, step: str, relation: str, of: str) -> None:
    """Deliver an urgent message to one more person, *to*, who may then acknowledge it: escalation to a
    backup, or a handover of an on-call role. It is the same message with the same id (stored for *to*'s
    account as a resend: a new inbox entry, no new message), so URGENT, ALERT, ACK, ACKED and TRACE all
    name one page by one id."""
    shown = hub.shown(to)
    new = NewMessage(
        urgent.sender,
        urgent.sender_key or None,
        urgent.to,
        "",
        urgent.text,
        urgent.sent_ms,
        (to,) if to in hub.accounts else (),
        None,
        True,
        resend_of=urgent.id,
    )

    message = await known(hub.backend.store(new))
    if message is None:  # logged; tried again at the next step, not after a whole round of alerts
        hub.urgent.escalate_next(urgent)
        hub.keep(urgent_row(urgent))
        return
    hub.urgent.escalated(urgent, to)
    hub.keep(urgent_row(urgent))
    hub.audit("escalation", urgent.sender_key, str(urgent.id), to=to, step=step, **{relation.replace("-", "_"): of})
    _, reached = hub.deliver(message, format_ms(message.created_ms), people((to,)))
    escalation = (str(urgent.id), step, shown, relation, hub.shown(of))
    hub.delivery.event(people((urgent.sender_key,)), "ESCALATION", *escalation)
    note_delivered(hub, message, reached, urgent.sender_key)
    hub.notify_offline((to,), "urgent", urgent.id, urgent.sender)


VERBS = (
    Verb("ACK", Ack, flowing(ack), "acknowledge an urgent message"),
    Verb("BACKUP", Backup, backup, "who gets your unacknowledged urgent messages (shows it without a name)"),
)
