"""PUSH: an account registers its devices for Web Push (sent by the server's Notifier, chat/notify.py)."""

from __future__ import annotations

import logging

from bleeper.chat.core import Core, Verb, flowing
from bleeper.chat.records import (
    content_hash,
)
from bleeper.chat.session import Session
from bleeper.protocol import codes
from bleeper.protocol.commands import Push, push_service

log = logging.getLogger("bleeper.events")


async def push(hub: Core, session: Session, command: Push) -> None:
    if not hub.notifier.enabled:
        hub.reply(
            session,
            codes.NOT_OFFERED,
            "Web Push is not set up on this server (its operator "
            "sets --push-vapid-key); urgent messages still wait in your inbox",
        )
        return
    account = session.account
    if account is None:
        hub.reply(
            session,
            codes.FORBIDDEN,
            "PUSH needs an account, whose messages are kept while you are away: LOGIN <name> <password>",
        )
        return
    service = push_service(command.endpoint)
    tag = content_hash(command.endpoint)[:16]  # add and remove of one device match; the URL stays secret
    if command.action == "add":
        try:
            await hub.notifier.subscribe(account, command.endpoint, command.p256dh, command.auth)
        except ValueError as exc:
            hub.reply(session, codes.BAD_SYNTAX, f"PUSH: {exc}")
            return
        except Exception as exc:
            log.error("saving a push subscription for %s failed: %s", session.label, exc)
            hub.reply(session, codes.STORAGE_ERROR, "storage error: the subscription was NOT saved; try again")
            return
        hub.audit("push", account, account, action="add", service=service, endpoint_sha256=tag)
        hub.reply(
            session, codes.PUSH_SET, f"added: {service} will alert this device when {session.name} has no connection"
        )
        return
    try:
        found = await hub.notifier.unsubscribe(account, command.endpoint)
    except Exception as exc:
        log.error("removing a push subscription for %s failed: %s", session.label, exc)
        hub.reply(session, codes.STORAGE_ERROR, "storage error: the subscription was NOT removed; try again")
        return
    if found:
        hub.audit("push", account, account, action="remove", service=service, endpoint_sha256=tag)
        hub.reply(session, codes.PUSH_SET, "removed: this device gets no more pushes")
    else:
        hub.reply(session, codes.PUSH_SET, "removed: it was not registered for you")


VERBS = (
    Verb(
        "PUSH",
        Push,
        flowing(push),
        "Web Push to this browser while your account is offline (urgent and private messages)",
    ),
)
