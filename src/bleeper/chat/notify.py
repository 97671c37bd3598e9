"""Reaching people who have no connection: the hub decides who and why, a :class:`Notifier` does the rest.

A pager that stays silent because its screen is locked is no pager. So when an urgent message, or a message
addressed to people (privately, a sub-group, an on-call role), is stored for an account with no connection
here, and on each alert round of an urgent message for such an account, the hub calls
:meth:`Notifier.offline`. What that does (Web Push today, in ``bleeper.web.push``) is I/O, so it lives
outside the domain; the hub never waits for it, and a failure there never touches a message's delivery,
which the inbox already guarantees. :class:`NoNotifier`, the default, does nothing: a server without push
behaves as if this module did not exist.
"""

from __future__ import annotations

from typing import Literal, Protocol

from bleeper.chat.backend import Answer, Pending

Kind = Literal["urgent", "message", "alert"]


class Notifier(Protocol):
    @property
    def enabled(self) -> bool:
        """Whether this server offers push at all (PUSH is refused with 501 otherwise)."""

    def offline(self, account_key: str, kind: Kind, message_id: int, sender_name: str) -> None:
        """Tell *account_key*'s devices that message *message_id* from *sender_name* waits: never its text,
        nor who else it went to (lock screens show what arrives). Returns at once."""

    def subscribe(self, account_key: str, endpoint: str, p256dh: str, auth: str) -> Pending[None]:
        """Keep a browser's subscription for the account. The answer fails with ValueError when the keys
        cannot be used (the message says why), with another error when it could not be saved."""

    def unsubscribe(self, account_key: str, endpoint: str) -> Pending[bool]:
        """Forget the account's subscription; answers whether there was one."""


class NoNotifier:
    """Push is off: nothing is sent, and PUSH is answered that the server is not set up for it."""

    enabled = False

    def offline(self, account_key: str, kind: Kind, message_id: int, sender_name: str) -> None:
        return None

    def subscribe(self, account_key: str, endpoint: str, p256dh: str, auth: str) -> Pending[None]:
        return Answer.of(error=RuntimeError("Web Push is off"))

    def unsubscribe(self, account_key: str, endpoint: str) -> Pending[bool]:
        return Answer.of(False)
