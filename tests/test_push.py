"""Web Push, end to end: a real server, real accounts in a real store, and a stand-in push service on
127.0.0.1 that records what it is sent. Each test subscribes the way a browser does (a P-256 key pair and a
16-byte secret), then checks what reached the push service as the browser would: the VAPID signature, the
headers, and the payload decrypted with the browser's own keys."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import http_ece
import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bleeper.config import ConfigError
from bleeper.server import ChatServer
from bleeper.store import open_store
from bleeper.web.push import VapidKey, generate_key
from tests.conftest import Start, make_config
from tests.helpers import ROOT, LineClient, create_accounts, free_port, login

CONTACT = "mailto:bleeper-admin@hospital.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    """A push service of our own on this machine: records every POST, answers 201 (or a status set per path)."""

    requests: list[Recorded] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)
    origin: str = ""
    hold: asyncio.Event | None = None  # when set, answers wait for it: a slow or stuck push service

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.path, {k.lower(): v for k, v in request.headers.items()},
                                      await request.read()))  # fmt: skip
        if self.hold is not None:
            await self.hold.wait()
        return web.Response(status=self.status.get(request.path, 201))

    def url(self, path: str) -> str:
        return self.origin + path

    async def received(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        await eventually(lambda: len(self.requests) >= count, timeout)
        return self.requests

    async def nothing_more(self, count: int, wait: float = 0.6) -> None:
        await asyncio.sleep(wait)
        assert len(self.requests) == count, [r.path for r in self.requests]


@dataclass
class Browser:
    """A subscription as a browser makes it: a P-256 key pair and an authentication secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64(self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                      serialization.PublicFormat.UncompressedPoint))  # fmt: skip

    def add(self) -> str:
        return f"PUSH ADD {self.endpoint} {self.p256dh} {b64(self.auth)}"

    def read(self, request: Recorded) -> dict[str, object]:
        """Decrypt a push the way the browser does, with its private key and secret."""
        assert request.headers["content-encoding"] == "aes128gcm"
        plain = http_ece.decrypt(request.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        payload: dict[str, object] = json.loads(plain)
        return payload


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


def vapid_claims(authorization: str, public: str) -> dict[str, object]:
    """Check a VAPID Authorization header (RFC 8292) as a push service does, and return its claims."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    fields_ = dict(part.split("=", 1) for part in params.split(","))
    assert fields_["k"] == public
    head, claims, signature = fields_["t"].split(".")
    raw = unb64(signature)
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(public))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    verifier.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    assert json.loads(unb64(head))["alg"] == "ES256"
    decoded: dict[str, object] = json.loads(unb64(claims))
    return decoded


@pytest.fixture
async def service() -> AsyncIterator[PushService]:
    recorder = PushService()
    app = web.Application()
    app.router.add_post("/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield recorder
    await runner.cleanup()


@pytest.fixture
def vapid(tmp_path: Path) -> tuple[str, str]:
    """A key made as 'bleeper push keygen' makes it: (path, public key)."""
    path = str(tmp_path / "vapid.pem")
    return path, generate_key(path)


@pytest.fixture
async def accounts(tmp_path: Path) -> str:
    """A SQLite store with alice, bob and carol (both backends are covered by the first test)."""
    return await create_accounts(str(tmp_path / "data" / "bleeper.db"), "alice", "bob", "carol")


Pushing = Callable[..., Awaitable[ChatServer]]
LOCAL = {"push_services": "127.0.0.1"}  # the stand-in push service: only listed services are posted to


@pytest.fixture
def pushing(start_server: Start, accounts: str, vapid: tuple[str, str]) -> Pushing:
    """Start a server with push on, over *accounts*."""

    async def start(**overrides: object) -> ChatServer:
        return await start_server(db=accounts, push_vapid_key=vapid[0], push_contact=CONTACT, **LOCAL, **overrides)

    return start


async def subscribed(server: ChatServer, name: str, *browsers: Browser, stay: bool = False) -> LineClient:
    """*name* logs in, subscribes each browser, and (unless *stay*) leaves: no connection, a locked phone."""
    client, _ = await login(server, name)
    for browser in browsers:
        added = await client.command(browser.add())
        assert added.code == 211 and added.text.startswith("added: "), added
    if not stay:
        assert (await client.command("QUIT")).code == 221
    return client


def message_id(reply_text: str) -> int:
    return int(reply_text.split()[0])


# -- what is pushed, and how ---------------------------------------------------------------------------------


async def test_an_urgent_page_to_an_offline_account_is_pushed_signed_encrypted_and_without_its_text(
    start: Start, service: PushService, vapid: tuple[str, str]
) -> None:
    key, public = vapid
    server = await start(push_vapid_key=key, push_contact=CONTACT, http=True, **LOCAL)
    phone = Browser(service.url("/push/bob-phone"))
    await subscribed(server, "bob", phone)
    alice, _ = await login(server, "alice")
    sent = await alice.command("URGENT bob bed 4 sats 84% on 4L, please review")
    assert sent.code == 250
    (request,) = await service.received(1)
    assert request.path == "/push/bob-phone"
    claims = vapid_claims(request.headers["authorization"], public)
    assert claims["aud"] == service.origin and claims["sub"] == CONTACT
    assert isinstance(claims["exp"], int) and time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert request.headers["urgency"] == "high" and request.headers["ttl"] == "3600"
    payload = phone.read(request)
    assert payload == {"kind": "urgent", "id": message_id(sent.text), "from": "alice"}
    shown = json.dumps(payload) + json.dumps(request.headers)
    assert "sats" not in shown and "bed 4" not in shown and "bob" not in shown  # no text, no recipients

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_addresses[0][1]}") as web_client:
        assert (await web_client.get("/config.json")).json()["pushKey"] == public
        counted = 'bleeper_push_sent_total{result="sent"} 1'
        deadline = time.monotonic() + 5
        while counted not in (await web_client.get("/metrics")).text:
            assert time.monotonic() < deadline, "the push was not counted"
            await asyncio.sleep(0.05)


async def test_private_and_on_call_messages_to_offline_accounts_are_pushed_as_messages(
    pushing: Pushing, service: PushService
) -> None:
    server = await pushing()
    bob_phone, carol_phone = Browser(service.url("/bob")), Browser(service.url("/carol"))
    await subscribed(server, "bob", bob_phone)
    carol, _ = await login(server, "carol")
    assert (await carol.command("ONCALL TAKE @cardio")).code == 209
    assert (await carol.command(carol_phone.add())).code == 211
    assert (await carol.command("QUIT")).code == 221
    alice, _ = await login(server, "alice")
    private = message_id((await alice.command("TELL bob are you free at 10?")).text)
    (request,) = await service.received(1)
    assert bob_phone.read(request) == {"kind": "message", "id": private, "from": "alice"}
    assert request.headers["urgency"] == "normal" and request.headers["ttl"] == "86400"
    assert "topic" not in request.headers  # every message counts, none replaces another
    to_role = message_id((await alice.command("TELL @cardio bed 9 ECG when you can")).text)
    requests = await service.received(2)
    assert requests[1].path == "/carol" and carol_phone.read(requests[1]) == {"kind": "message", "id": to_role,
                                                                               "from": "alice"}  # fmt: skip
    paged = message_id((await alice.command("URGENT @cardio bed 9 VT")).text)
    requests = await service.received(3)
    assert carol_phone.read(requests[2]) == {"kind": "urgent", "id": paged, "from": "alice"}
    both = message_id((await alice.command("TELL bob,carol handover at 8")).text)
    by_path = {request.path: request for request in (await service.received(5))[3:]}
    expected = {"kind": "message", "id": both, "from": "alice"}
    assert bob_phone.read(by_path["/bob"]) == carol_phone.read(by_path["/carol"]) == expected


async def test_nothing_is_pushed_to_a_connected_account_nor_for_group_messages(
    pushing: Pushing, service: PushService
) -> None:
    server = await pushing()
    phone = Browser(service.url("/bob"))
    bob = await subscribed(server, "bob", phone, stay=True)
    assert (await bob.command("JOIN #icu")).code == 203
    alice, _ = await login(server, "alice")
    assert (await alice.command("TELL bob on screen already")).code == 250
    assert (await alice.command("URGENT bob on screen too")).code == 250
    await bob.message()  # it reached bob's connection
    assert (await bob.command("QUIT")).code == 221
    assert (await alice.command("TELL #icu the ward's chatter")).code == 250  # stored for bob, not pushed
    assert (await alice.command("SAY everyone")).code == 250
    after = message_id((await alice.command("TELL bob now you are away")).text)
    (request,) = await service.received(1)
    assert phone.read(request) == {"kind": "message", "id": after, "from": "alice"}
    await service.nothing_more(1)


async def test_each_alert_round_is_pushed_and_an_escalation_pushes_the_backup(
    pushing: Pushing, service: PushService
) -> None:
    server = await pushing(urgent_interval=0.4, urgent_attempts=2)
    bob_phone, carol_phone = Browser(service.url("/bob")), Browser(service.url("/carol"))
    await subscribed(server, "carol", carol_phone)
    bob, _ = await login(server, "bob")
    assert (await bob.command("BACKUP carol")).code == 207
    assert (await bob.command(bob_phone.add())).code == 211
    assert (await bob.command("QUIT")).code == 221
    alice, _ = await login(server, "alice")
    page = message_id((await alice.command("URGENT bob bed 2 arrest")).text)
    # delivery, alert 2 of 2, then escalation to carol: her own delivery, then alerts to both
    await eventually(lambda: len([r for r in service.requests if r.path == "/carol"]) >= 2)
    to_bob = [bob_phone.read(r) for r in service.requests if r.path == "/bob"]
    to_carol = [carol_phone.read(r) for r in service.requests if r.path == "/carol"]
    assert [p["kind"] for p in to_bob[:2]] == ["urgent", "alert"]
    assert [p["kind"] for p in to_carol[:2]] == ["urgent", "alert"]
    assert all(p["id"] == page and p["from"] == "alice" for p in to_bob + to_carol)
    assert {r.headers["topic"] for r in service.requests} == {f"bleeper-page-{page}"}  # the latest replaces older
    assert {r.headers["urgency"] for r in service.requests} == {"high"}

    bob, _ = await login(server, "bob")  # back on screen: the alerts go on, to his connection only
    await bob.event("ALERT")
    before = len([r for r in service.requests if r.path == "/bob"])
    await bob.event("ALERT")
    assert len([r for r in service.requests if r.path == "/bob"]) == before
    assert (await bob.command(f"ACK {page}")).code == 206


async def test_a_gone_subscription_is_forgotten_and_failures_are_logged_without_secrets(
    pushing: Pushing, service: PushService, caplog: pytest.LogCaptureFixture
) -> None:
    server = await pushing()
    gone, broken, fine = Browser(service.url("/gone")), Browser(service.url("/broken")), Browser(service.url("/ok"))
    dead_port = free_port()
    dead = Browser(f"http://127.0.0.1:{dead_port}/nobody-listens")
    service.status.update({"/gone": 410, "/broken": 500})
    await subscribed(server, "bob", gone, broken, fine, dead)
    alice, _ = await login(server, "alice")
    with caplog.at_level(logging.INFO, logger="bleeper.push"):
        assert (await alice.command("TELL bob hello")).code == 250
        await service.received(3)
        assert server.push is not None
        results = server.push.results
        await eventually(lambda: results["gone"] + results["rejected"] + results["sent"] + results["failed"] == 4)
    assert results == {"sent": 1, "gone": 1, "rejected": 1, "failed": 1, "dropped": 0}
    assert server.store is not None
    left = {s.endpoint for s in await server.store.push_subscriptions("bob")}
    assert left == {broken.endpoint, fine.endpoint, dead.endpoint}  # only the one the service called gone
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"via {service.origin}: the subscription is gone (410" in logged
    assert f"via {service.origin} refused: 500" in logged
    assert f"via http://127.0.0.1:{dead_port} failed: ClientConnectorError" in logged
    for secret in ("/gone", "/broken", "/nobody-listens", *(b.p256dh for b in (gone, broken, fine, dead)),
                   *(b64(b.auth) for b in (gone, broken, fine, dead))):  # fmt: skip
        assert secret not in logged


# -- the PUSH command ----------------------------------------------------------------------------------------


async def test_push_is_for_accounts_and_refuses_bad_subscriptions_clearly(
    pushing: Pushing, service: PushService
) -> None:
    server = await pushing()
    phone = Browser(service.url("/bob"))
    anonymous = await LineClient.connect(server.addresses[0][1])
    assert (await anonymous.command(phone.add())).code == 401
    await anonymous.register("visitor")
    refused = await anonymous.command(phone.add())
    assert refused.code == 403 and "LOGIN" in refused.text
    bob, _ = await login(server, "bob")
    for line, says in [
        (f"PUSH ADD http://push.example.org/x {phone.p256dh} {b64(phone.auth)}", "must be an https:// URL"),
        (f"PUSH ADD https://push.example.org/{'x' * 2100} {phone.p256dh} {b64(phone.auth)}", "at most 2048"),
        (f"PUSH ADD https://user:pw@push.example.org/x {phone.p256dh} {b64(phone.auth)}", "user name, password"),
        (f"PUSH ADD {phone.endpoint} {phone.p256dh[:-4]} {b64(phone.auth)}", "p256dh must be base64url of 65"),
        (f"PUSH ADD {phone.endpoint} {phone.p256dh} {b64(os.urandom(12))}", "auth must be base64url of 16"),
        (f"PUSH ADD {phone.endpoint} {phone.p256dh} not*base64", "auth must be base64url"),
        (f"PUSH ADD {phone.endpoint} {b64(bytes([4]) + bytes(64))} {b64(phone.auth)}", "not a point on the P-256"),
        (
            f"PUSH ADD https://intranet.hospital.example/admin {phone.p256dh} {b64(phone.auth)}",
            "https://intranet.hospital.example is not a push service this server posts to; its operator lists them "
            "with --push-services",
        ),  # an account must not aim the server at the hospital's own network
        ("PUSH ADD https://push.example.org/x", "usage: PUSH ADD"),
        ("PUSH LIST", "usage: PUSH ADD"),
    ]:
        answer = await bob.command(line)
        assert answer.code == 400 and says in answer.text, (line[:60], answer)
    assert (await bob.command(phone.add())).text.startswith("added: ")
    assert (await bob.command(phone.add())).code == 211  # again: harmless, the same device
    assert server.store is not None
    assert [s.endpoint for s in await server.store.push_subscriptions("bob")] == [phone.endpoint]
    assert (await bob.command(f"PUSH REMOVE {phone.endpoint}")).text == "removed: this device gets no more pushes"
    assert (await bob.command(f"PUSH REMOVE {phone.endpoint}")).text == "removed: it was not registered for you"
    assert await server.store.push_subscriptions("bob") == []
    help_text = await bob.command("HELP PUSH")
    assert help_text.code == 214 and help_text.items[0].startswith("PUSH ADD <endpoint> <p256dh> <auth>")

    assert server.backend is not None
    await server.backend.journal.settled()
    entries = [e for e in await server.store.audit_entries() if e.kind == "push"]
    assert [(e.actor, json.loads(e.detail)["action"]) for e in entries] == [("bob", "add"), ("bob", "add"),
                                                                              ("bob", "remove")]  # fmt: skip
    detail = json.loads(entries[0].detail)
    assert detail["service"] == service.origin and len(detail["endpoint_sha256"]) == 16
    recorded = "".join(e.detail for e in entries)
    assert "/bob" not in recorded and phone.p256dh not in recorded and b64(phone.auth) not in recorded


async def test_with_push_off_the_server_says_so_and_posts_nothing(
    start_server: Start, accounts: str, service: PushService
) -> None:
    # A subscription left from when push was on: turning push off must silence it.
    store = await open_store(accounts)
    phone = Browser(service.url("/bob"))
    await store.add_push_subscription("bob", phone.endpoint, phone.p256dh, b64(phone.auth), 1)
    await store.close()
    server = await start_server(db=accounts, http=True, urgent_interval=0.2)
    assert server.push is None
    alice, _ = await login(server, "alice")
    refused = await alice.command(phone.add())
    assert refused.code == 501 and "not set up on this server" in refused.text and "--push-vapid-key" in refused.text
    assert (await alice.command("URGENT bob bed 4")).code == 250
    assert (await alice.command("TELL bob hello")).code == 250
    await service.nothing_more(0)  # several alert rounds too
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http_addresses[0][1]}") as web_client:
        assert (await web_client.get("/config.json")).json()["pushKey"] is None
        assert "bleeper_push" not in (await web_client.get("/metrics")).text


# -- keys and settings ---------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    run = [sys.executable, "-m", "bleeper", "push", "keygen", str(path)]
    made = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = made.stdout.splitlines()[2]
    assert len(unb64(public)) == 65 and unb64(public)[0] == 4
    loaded = VapidKey.load(str(path), CONTACT)  # what the server does at start
    assert loaded.public == public
    key = path.read_bytes()
    again = subprocess.run(run, capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert again.returncode == 1 and "not overwritten" in again.stderr and path.read_bytes() == key
    helped = subprocess.run([*run[:-1], "--help"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert helped.returncode == 0 and "FILE" in helped.stdout and "never overwritten" in helped.stdout


def test_the_browsers_push_services_are_allowed_by_default() -> None:
    assert make_config().push_service_list() == [
        "fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"
    ]  # fmt: skip


def test_push_settings_are_checked_at_start_with_what_to_do(tmp_path: Path, vapid: tuple[str, str]) -> None:
    key, _ = vapid
    with pytest.raises(ConfigError, match="push_contact is required"):
        make_config(push_vapid_key=key)
    with pytest.raises(ConfigError, match="neither mailto:user@domain nor https://host"):
        make_config(push_vapid_key=key, push_contact="ops@hospital.example")
    assert make_config(push_vapid_key=key, push_contact="https://bleeper.hospital.example").push_contact
    assert make_config(push_contact=CONTACT).push_vapid_key == ""  # a contact alone leaves push off
    with pytest.raises(ConfigError, match="does not exist; make one with 'bleeper push keygen"):
        ChatServer(make_config(push_vapid_key=str(tmp_path / "missing.pem"), push_contact=CONTACT))
    not_a_key = tmp_path / "notes.pem"
    not_a_key.write_text("bed 4\n")
    with pytest.raises(ConfigError, match="holds no PEM private key"):
        ChatServer(make_config(push_vapid_key=str(not_a_key), push_contact=CONTACT))
    other_curve = tmp_path / "p384.pem"
    other_curve.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    with pytest.raises(ConfigError, match="not an EC P-256"):
        ChatServer(make_config(push_vapid_key=str(other_curve), push_contact=CONTACT))


async def test_a_stopping_server_starts_no_push(pushing: Pushing, service: PushService) -> None:
    """Messages still being committed while the server stops find everyone disconnected; none of them may
    start a push (or open a connection to a push service) after pushing has closed."""
    server = await pushing()
    await subscribed(server, "bob", Browser(service.url("/bob")))
    push = server.push
    assert push is not None
    await server.stop()
    push.offline("bob", "message", 1, "alice")  # what a commit finishing during the stop would ask
    assert push.results["dropped"] == 1 and push._session is None
    await service.nothing_more(0)


async def test_a_subscription_the_store_cannot_write_is_answered_451_and_nothing_is_audited(
    pushing: Pushing, service: PushService, accounts: str
) -> None:
    server = await pushing()
    bob, _ = await login(server, "bob")
    phone = Browser(service.url("/bob"))
    with sqlite3.connect(accounts) as db:  # the store breaks under the running server
        db.execute("ALTER TABLE push_subscriptions RENAME TO push_subscriptions_away")
    added = await bob.command(phone.add())
    assert added.code == 451 and "NOT saved" in added.text
    removed = await bob.command(f"PUSH REMOVE {phone.endpoint}")
    assert removed.code == 451 and "NOT removed" in removed.text
    assert (await bob.command("PING still here")).code == 200  # the connection carries on
    with sqlite3.connect(accounts) as db:
        assert not db.execute("SELECT 1 FROM audit WHERE kind = 'push'").fetchall()


async def test_a_stuck_push_service_costs_a_bounded_wait_and_never_holds_up_the_stop(
    pushing: Pushing, service: PushService
) -> None:
    """Pushes waiting on a slow service are capped (more are dropped and counted), and closing gives those
    under way a moment of grace, then cancels them."""
    server = await pushing()
    await subscribed(server, "bob", Browser(service.url("/bob")))
    await subscribed(server, "carol", Browser(service.url("/carol")))
    push = server.push
    assert push is not None
    push.max_waiting = 1
    service.hold = asyncio.Event()
    try:
        alice, _ = await login(server, "alice")
        assert (await alice.command("TELL bob one")).code == 250
        await service.received(1)  # bob's push is under way, and stuck
        assert (await alice.command("TELL carol two")).code == 250
        assert push.results["dropped"] == 1
        started = time.monotonic()
        await push.close(grace=0.5)  # as the server's stop does, with 2 s of grace
        assert time.monotonic() - started < 1.5
        assert push.results["sent"] == 0 and [r.path for r in service.requests] == ["/bob"]
    finally:
        service.hold.set()
