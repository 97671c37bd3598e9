"""Web Push: an urgent page reaches a phone whose screen is locked and whose browser tab is asleep.

Optional (``--push-vapid-key``), and nothing else depends on it: the hub decides who has no connection
and calls :class:`WebPush` through the :class:`~bleeper.chat.notify.Notifier` seam; this module posts to the
browsers' push services (RFC 8030), encrypted to each browser (RFC 8291, ``aes128gcm``) and signed with the
server's VAPID key (RFC 8292), with pywebpush's async API on one shared aiohttp session. A push says only
what kind of message waits, its id and who sent it, never the text or the other recipients: the push
service and the lock screen are outside the hospital's control. Sends run at most :data:`CONCURRENCY` at a
time, each within :data:`TIMEOUT`; a subscription the push service calls gone (404, 410) is forgotten, and
any other failure is logged and counted (``bleeper_push_sent_total``): the message itself is in the inbox
whatever happens here.

pywebpush (with aiohttp, requests, cryptography) is the ``push`` extra, imported only when push is on or
keys are made, so a site without push installs and loads none of it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bleeper.chat.backend import Answer, Pending
from bleeper.chat.notify import Kind
from bleeper.config import ConfigError
from bleeper.protocol.commands import base64url_bytes, push_service

if TYPE_CHECKING:
    import aiohttp

    from bleeper.store import PushSubscription, Store

log = logging.getLogger("bleeper.push")

# How long a push service keeps trying an unreachable phone: an urgent page is stale within the hour (its
# alerts go on meanwhile, and escalate), a private message is still worth a nudge the next day.
TTL: dict[str, int] = {"urgent": 3600, "alert": 3600, "message": 86400}
URGENCY: dict[str, str] = {"urgent": "high", "alert": "high", "message": "normal"}  # high may wake the phone
CONCURRENCY = 8  # posts in flight at once, to all push services together
TIMEOUT = 10.0  # seconds for one post, connecting included
MAX_WAITING = 1000  # accounts waiting to be pushed to; beyond it a push is dropped (and counted), not queued
RESULTS = ("sent", "gone", "rejected", "failed", "dropped")
INSTALL = "Web Push needs the pywebpush package: pip install 'bleeper[push]' (uv sync installs it for development)"


@dataclass(frozen=True)
class VapidKey:
    """The server's VAPID key: it signs every push, and browsers subscribe with its public half, so a
    stolen subscription is useless to anyone without the private key."""

    signer: Any  # py_vapid.Vapid
    public: str  # base64url of the uncompressed P-256 point: the page's applicationServerKey

    @classmethod
    def load(cls, path: str, contact: str) -> VapidKey:
        """Read and check the key file, and sign a trial claim with *contact*: a key or contact the push
        services would refuse stops the start, with what to do, rather than failing every push later."""
        try:
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
            from py_vapid import Vapid, VapidException
        except ImportError:
            raise ConfigError(INSTALL) from None
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"Web Push: the key file {path} does not exist; make one with "
                              f"'bleeper push keygen {path}'") from None  # fmt: skip
        except OSError as exc:
            raise ConfigError(f"Web Push: cannot read the key file {path} ({exc.strerror}); check its path and "
                              "permissions") from None  # fmt: skip
        try:
            key = load_pem_private_key(data, password=None)
        except TypeError:
            raise ConfigError(f"Web Push: the key in {path} is encrypted; the server needs it unencrypted (keep "
                              "the file readable by the server's user only)") from None  # fmt: skip
        except ValueError:
            raise ConfigError(f"Web Push: {path} holds no PEM private key; make one with 'bleeper push keygen "
                              "FILE'") from None  # fmt: skip
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError(f"Web Push: the key in {path} is not an EC P-256 (prime256v1) key, which VAPID "
                              "requires; make one with 'bleeper push keygen FILE'")  # fmt: skip
        signer = Vapid(private_key=key)
        try:
            signer.sign({"sub": contact, "aud": "https://push.example.org"})
        except VapidException as exc:
            raise ConfigError(f"Web Push: push services would refuse push_contact {contact!r} ({exc}); use "
                              "mailto:user@domain or https://host") from None  # fmt: skip
        return cls(signer, public_key(key))


def public_key(key: Any) -> str:
    """base64url (no padding) of an EC key's uncompressed public point."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class WebPush:
    """The :class:`~bleeper.chat.notify.Notifier` that posts Web Push messages. Lives on the event loop;
    every method returns at once."""

    enabled = True

    def __init__(self, store: Store, key: VapidKey, contact: str, *, services: Sequence[str] = (),
                 concurrency: int = CONCURRENCY, timeout: float = TIMEOUT, max_waiting: int = MAX_WAITING) -> None:  # fmt: skip
        self.store = store
        self.services = tuple(services)  # hosts a subscription's endpoint may name (subdomains included)
        self.key = key
        self.contact = contact
        self.timeout = timeout
        self.max_waiting = max_waiting
        self.results: dict[str, int] = dict.fromkeys(RESULTS, 0)  # for /metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._pushing: set[asyncio.Future[None]] = set()  # one per account being pushed to
        self._saving: set[asyncio.Future[Any]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    # -- the Notifier seam ------------------------------------------------------------------------------

    def offline(self, account_key: str, kind: Kind, message_id: int, sender_name: str) -> None:
        if self._closed:  # stopping: messages still being committed find everyone "offline"; they are not
            self.results["dropped"] += 1
            return
        if len(self._pushing) >= self.max_waiting:
            self.results["dropped"] += 1
            log.warning("push to %s for message %d (%s) dropped: %d accounts already wait for their pushes",
                        account_key, message_id, kind, len(self._pushing))  # fmt: skip
            return
        payload = json.dumps({"kind": kind, "id": message_id, "from": sender_name}, separators=(",", ":"))
        task = asyncio.ensure_future(self._push(account_key, kind, message_id, payload))
        self._pushing.add(task)
        task.add_done_callback(self._pushing.discard)

    def subscribe(self, account_key: str, endpoint: str, p256dh: str, auth: str) -> Pending[None]:
        from cryptography.hazmat.primitives.asymmetric import ec

        host = (urlsplit(endpoint).hostname or "").lower()
        if not any(host == allowed or host.endswith("." + allowed) for allowed in self.services):
            return Answer.of(error=ValueError(f"{push_service(endpoint)} is not a push service this server posts "
                                              "to; its operator lists them with --push-services"))  # fmt: skip
        try:  # the parser checked the form; a key off the curve would fail every push, so refuse it now
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64url_bytes(p256dh) or b"")
        except ValueError:
            return Answer.of(error=ValueError("p256dh is not a point on the P-256 curve: send the subscription's "
                                              "own keys.p256dh"))  # fmt: skip
        now_ms = int(time.time() * 1000)
        return self._save(self.store.add_push_subscription(account_key, endpoint, p256dh, auth, now_ms))

    def unsubscribe(self, account_key: str, endpoint: str) -> Pending[bool]:
        return self._save(self.store.remove_push_subscription(endpoint, account_key))

    def _save(self, work: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.ensure_future(work)
        self._saving.add(future)  # referenced until done: the hub only holds a callback on it
        future.add_done_callback(self._saving.discard)
        return future

    # -- sending ----------------------------------------------------------------------------------------

    async def _push(self, account_key: str, kind: Kind, message_id: int, payload: str) -> None:
        try:
            subscriptions = await self.store.push_subscriptions(account_key)
        except Exception as exc:
            self.results["failed"] += 1
            log.warning("push to %s for message %d (%s) failed: cannot read its subscriptions: %s", account_key,
                        message_id, kind, exc)  # fmt: skip
            return
        await asyncio.gather(*(self._send(sub, kind, message_id, payload) for sub in subscriptions))

    async def _send(self, sub: PushSubscription, kind: Kind, message_id: int, payload: str) -> None:
        from pywebpush import WebPushException, webpush_async

        headers = {"Urgency": URGENCY[kind]}
        if kind != "message":  # a phone that was offline gets the latest word on a page, not every alert
            headers["Topic"] = f"bleeper-page-{message_id}"
        service = push_service(sub.endpoint)  # never the rest of the URL, nor the keys: they are the device's secret
        about = f"push to {sub.account_key} for message {message_id} ({kind}) via {service}"
        async with self._slots:
            try:
                async with asyncio.timeout(self.timeout):
                    await webpush_async(
                        {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                        data=payload,
                        vapid_private_key=self.key.signer,
                        vapid_claims={"sub": self.contact},  # aud (the service's origin) and exp are added
                        ttl=TTL[kind],
                        headers=headers,
                        aiohttp_session=self._client(),
                        timeout=self.timeout,
                    )
            except WebPushException as exc:
                status = exc.status_code
                reason = getattr(exc.response, "reason", "") or ""
                if status in (404, 410):
                    self.results["gone"] += 1
                    log.info("%s: the subscription is gone (%s %s); forgetting it", about, status, reason)
                    await self._forget(sub)
                else:
                    self.results["rejected"] += 1
                    log.warning("%s refused: %s %s", about, status, reason)
            except TimeoutError:
                self.results["failed"] += 1
                log.warning("%s failed: no answer within %g s; is the push service reachable from this server "
                            "(firewall, HTTPS_PROXY)?", about, self.timeout)  # fmt: skip
            except Exception as exc:  # aiohttp's connection errors, and anything else: a push never stops a page
                self.results["failed"] += 1
                log.warning("%s failed: %s: %s", about, type(exc).__name__, exc)
            else:
                self.results["sent"] += 1
                log.debug("%s: sent", about)

    async def _forget(self, sub: PushSubscription) -> None:
        try:
            await self.store.remove_push_subscription(sub.endpoint)
        except Exception as exc:
            log.warning("forgetting a gone push subscription of %s failed: %s", sub.account_key, exc)

    def _client(self) -> aiohttp.ClientSession:
        """One session for every push, so connections to a push service are reused. ``trust_env`` lets a site
        route it through its web proxy (``HTTPS_PROXY``)."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True,
                connector=aiohttp.TCPConnector(limit=self._concurrency),
            )  # fmt: skip
        return self._session

    async def close(self, grace: float = 2.0) -> None:
        """At shutdown: give pushes under way a moment, then stop (their messages are in the inboxes). Nothing
        new is pushed from here on."""
        self._closed = True
        waiting = self._pushing | self._saving
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- bleeper push keygen -------------------------------------------------------------------------------------


def generate_key(path: str) -> str:
    """Write a new VAPID private key (PEM, PKCS#8) to *path*, readable by its owner only, and return its
    public key. FileExistsError rather than replace a key browsers have subscribed with."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        raise ConfigError(INSTALL) from None
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        file.write(pem)
    return public_key(key)
