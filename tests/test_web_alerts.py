"""Alerts that reach a person, and the installable app, in Debian's Chromium driven by Playwright against a
real server: system notifications from a page in the background (and none from one in front), with no
message text unless the server allows it; the urgent tone, flashing title and badged favicon until every
urgent page is acknowledged; the notifications' click and Acknowledge paths; mute; blocked notifications
explained; the service worker, the offline screen, and no patient data in any cache.

A page "in the background" is emulated: an init script makes document.hidden, visibilityState and hasFocus()
say so (headless Chromium keeps every page visible and focused). Sound is observed with a spy on
OscillatorNode.start, notifications through the service worker's getNotifications(), what the browser shows.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, BrowserContext, Page, Worker, expect

from bleeper.server import ChatServer
from tests import test_web_browser
from tests.conftest import Start, starting
from tests.helpers import LineClient, free_port
from tests.test_web_browser import say, url

browser = test_web_browser.browser  # the same fixture: Debian's Chromium, or a skip without it

STATIC = Path(__file__).resolve().parent.parent / "src" / "bleeper" / "web" / "static"

# Before any of the page's scripts: a switch for "in the background", and a count of the oscillators started.
EMULATION = """(() => {
    let hidden = false;
    Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden });
    Object.defineProperty(Document.prototype, "visibilityState", {
        configurable: true, get: () => (hidden ? "hidden" : "visible") });
    const hasFocus = Document.prototype.hasFocus;
    Document.prototype.hasFocus = function () { return !hidden && hasFocus.call(this); };
    window.setPageHidden = (value) => { hidden = value; document.dispatchEvent(new Event("visibilitychange")); };
    window.oscillators = 0;
    const start = AudioScheduledSourceNode.prototype.start;
    OscillatorNode.prototype.start = function (...args) { window.oscillators += 1; return start.apply(this, args); };
    window.permissionAsked = 0;
    const ask = Notification.requestPermission;
    Notification.requestPermission = function (...args) { window.permissionAsked += 1; return ask.apply(this, args); };
})()"""

SHOWN = """async () => {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag,
        requireInteraction: n.requireInteraction, actions: n.actions.map((a) => a.action), data: n.data }));
}"""

CACHED = """async () => {
    const found = [];
    for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
            const body = await (await cache.match(request)).text();
            found.push({ cache: name, url: request.url, body });
        }
    }
    return found;
}"""


async def open_page(browser: Browser, server: ChatServer | str, permission: str = "granted", width: int = 1000) -> Page:
    """A page in a context of its own, with notifications granted, denied, or not asked yet ("default")."""
    context = await browser.new_context(viewport={"width": width, "height": 720})
    address = url(server)
    if permission == "granted":
        await context.grant_permissions(["notifications"], origin=address.rstrip("/"))
    await context.add_init_script(EMULATION)
    page = await context.new_page()
    if permission == "denied":
        await set_permission(page, address, "denied")
    await page.goto(address)
    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    return page


async def set_permission(page: Page, address: str, setting: str) -> None:
    """As if the person changed it in the browser's site settings."""
    cdp = await page.context.new_cdp_session(page)
    context_id = (await cdp.send("Target.getTargetInfo"))["targetInfo"]["browserContextId"]
    permission = {"name": "notifications"}
    where = {"origin": address.rstrip("/"), "browserContextId": context_id}
    await cdp.send("Browser.setPermission", {"permission": permission, "setting": setting, **where})


async def enter(page: Page, name: str, password: str = "") -> None:
    await page.get_by_label("Screen name or account").fill(name)
    if password:
        await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_text("connected")


async def hide(page: Page, hidden: bool = True) -> None:
    await page.evaluate("(value) => window.setPageHidden(value)", hidden)


async def shown(page: Page) -> list[dict[str, Any]]:
    return list(await page.evaluate(SHOWN))


async def wait_shown(page: Page, count: int) -> list[dict[str, Any]]:
    """The notifications on screen, once there are *count* of them (getNotifications is async: polled here)."""
    for _ in range(100):
        found = await shown(page)
        if len(found) == count:
            return found
        await page.wait_for_timeout(100)
    raise AssertionError(f"{count} notifications expected, {len(found)} shown: {found}")


async def worker(context: BrowserContext) -> Worker:
    return context.service_workers[0] if context.service_workers else await context.wait_for_event("serviceworker")


async def click_notification(page: Page, tag: str, action: str = "") -> None:
    """Run the service worker's notificationclick path for a notification on screen. A script cannot make a
    trusted click, so this calls the function the click handler runs (focusing the window is refused there)."""
    sw = await worker(page.context)
    script = """async ([tag, action]) => {
        const [notification] = await registration.getNotifications({ tag });
        await openFromNotification(notification, action);
    }"""
    await sw.evaluate(script, [tag, action])


async def probe(page: Page) -> dict[str, Any]:
    return dict(await page.evaluate("window.bleeper.alerts"))


async def test_a_private_message_notifies_from_the_background_only_and_its_click_opens_it(
    start_server: Start, browser: Browser
) -> None:
    server = await start_server(http=True)
    page = await open_page(browser, server)
    await enter(page, "alice")
    bob = await LineClient.connect(server.addresses[0][1])
    await bob.register("bob")

    await bob.command("TELL alice are you on the ward?")  # the page is in front: it is the alert itself
    await expect(page.locator("#conversation-list").get_by_role("button", name="bob")).to_be_visible()
    assert await shown(page) == [] and (await probe(page))["chimes"] == 0

    await hide(page)
    await bob.command("SAY the coffee machine is fixed")  # everyone: no interruption
    msg_id = (await bob.command("TELL alice creatinine 412 in bay 9")).text.split()[0]
    [notification] = await wait_shown(page, 1)
    assert notification["title"] == "Message from bob"
    assert notification["body"] == "Open Bleeper to read it"  # no text: a lock screen is seen by passers-by
    assert notification["tag"] == f"bleeper-{msg_id}" and notification["requireInteraction"] is False
    assert notification["actions"] == []
    assert (await probe(page))["chimes"] == 1
    await page.wait_for_function("() => window.oscillators === 2")  # the chime's two notes

    await expect(page.locator("#title")).to_have_text("Everyone")
    await click_notification(page, f"bleeper-{msg_id}")
    await expect(page.locator("#title")).to_have_text("bob")  # its conversation is open
    await expect(page.locator("#messages")).to_contain_text("creatinine 412 in bay 9")


async def test_notifications_carry_the_text_only_when_the_server_allows_it(
    start_server: Start, browser: Browser
) -> None:
    server = await start_server(http=True, web_notification_text=True)
    page = await open_page(browser, server)
    await enter(page, "alice")
    await hide(page)
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    await ward.command("URGENT alice K+ 6.9 on bed 5")
    [notification] = await wait_shown(page, 1)
    assert (notification["title"], notification["body"]) == ("Urgent page from ward7", "K+ 6.9 on bed 5")


async def test_an_urgent_page_rings_flashes_and_is_acknowledged_from_its_notification(
    start_server: Start, browser: Browser
) -> None:
    server = await start_server(http=True, urgent_interval=0.5, urgent_attempts=50)
    page = await open_page(browser, server)
    await enter(page, "alice")
    await hide(page)
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    carol = await LineClient.connect(server.addresses[0][1])
    await carol.register("carol")

    first = (await ward.command("URGENT alice VT on monitor bay 2")).text.split()[0]
    [notification] = await wait_shown(page, 1)
    assert notification["title"].startswith("Urgent page from ward7")  # "..., still waiting" after an ALERT
    assert notification["body"] == "Open Bleeper to read and acknowledge it"
    assert notification["requireInteraction"] is True and notification["actions"] == ["ack"]
    assert notification["tag"] == f"bleeper-{first}"
    assert (await probe(page))["toneOn"] is True
    await page.wait_for_function("() => window.oscillators >= 6", timeout=10_000)  # a second pattern, ~2 s later
    await page.wait_for_function("() => document.title === '(1) URGENT - Bleeper'")
    await page.wait_for_function("() => document.title === 'Bleeper'")  # flashing
    icon = page.locator("link[rel~=icon]")
    await expect(icon).to_have_attribute("href", re.compile(r"^data:image/png;base64,"))

    second = (await ward.command("URGENT alice,carol porter to theatre 2")).text.split()[0]
    await page.wait_for_function("() => document.title === '(2) URGENT - Bleeper'")
    alerts = "() => window.bleeper.alerts.notifications.filter((n) => n.title.endsWith('still waiting')).length >= 3"
    await page.wait_for_function(alerts)  # ALERTs came again...
    # ...and replaced theirs: polled, since getNotifications is async and a replacement is close-then-show
    assert {n["tag"] for n in await wait_shown(page, 2)} == {f"bleeper-{first}", f"bleeper-{second}"}

    await click_notification(page, f"bleeper-{first}", "ack")  # its Acknowledge button
    acked = await ward.event("ACKED")
    assert acked.args == (first, "alice")  # type: ignore[union-attr]
    await expect(page.locator("#title")).to_have_text("ward7")  # and its conversation is open
    await page.wait_for_function("() => window.bleeper.alerts.waiting === 1")
    await wait_shown(page, 1)  # the acknowledged one's notification is gone
    assert (await probe(page))["toneOn"] is True  # the other still waits, and rings

    assert (await carol.command(f"ACK {second}")).code == 206  # acknowledged elsewhere: ACKED reaches alice
    await page.wait_for_function("() => window.bleeper.alerts.toneOn === false")
    await expect(icon).to_have_attribute("href", re.compile(r"/static/icons/icon-32\.png$"))
    await wait_shown(page, 0)  # their notifications are gone
    before = await page.evaluate("window.oscillators")
    await page.wait_for_timeout(2500)
    assert await page.evaluate("[document.title, window.oscillators]") == ["Bleeper", before]  # quiet, not flashing


async def test_mute_silences_private_messages_but_never_urgent_pages(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    page = await open_page(browser, server)
    await enter(page, "alice")
    mute = page.get_by_role("button", name="Mute messages")
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await hide(page)
    bob = await LineClient.connect(server.addresses[0][1])
    await bob.register("bob")
    await bob.command("TELL alice lunch at one?")
    await expect(page.locator("#conversation-list").get_by_role("button", name="bob")).to_be_visible()

    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    await ward.command("URGENT alice chest pain bed 4")
    [notification] = await wait_shown(page, 1)  # the urgent one only
    assert notification["title"] == "Urgent page from ward7"
    assert (await probe(page))["chimes"] == 0 and (await probe(page))["toneOn"] is True
    await page.wait_for_function("() => window.oscillators >= 3")

    await hide(page, False)
    await page.get_by_role("button", name="Acknowledge").click()  # from the banner
    await page.wait_for_function("() => window.bleeper.alerts.toneOn === false")
    await expect(page.locator("#urgent")).to_be_hidden()

    await page.reload()  # the setting stays with the browser
    await enter(page, "alice2")
    await expect(page.get_by_role("button", name="Mute messages")).to_have_attribute("aria-pressed", "true")


async def test_blocked_notifications_are_explained(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    page = await open_page(browser, server, permission="default")
    enable = page.get_by_role("button", name="Enable alerts")
    await expect(enable).to_be_hidden()  # never asked before sign-in
    await enter(page, "alice")
    await expect(enable).to_be_visible()
    await expect(page.locator("#alerts-why")).to_have_text(
        "Bleeper replaces your pager: allow notifications so urgent pages reach you when this tab is in the background."
    )
    assert await page.evaluate("window.permissionAsked") == 0
    await enable.click()  # the browser's prompt opens (headless Chromium leaves it open)...
    assert await page.evaluate("window.permissionAsked") == 1
    await set_permission(page, url(server), "denied")  # ...and the person refuses, there or in site settings
    await expect(page.locator("#alerts-blocked")).to_have_text(
        "Alerts blocked: pages will only show in this tab — allow notifications in the browser's site settings"
    )
    await expect(enable).to_be_hidden()

    denied = await open_page(browser, server, permission="denied")  # refused before: said from sign-in on
    await expect(denied.locator("#alerts-blocked")).to_be_hidden()
    await enter(denied, "bob")
    await expect(denied.locator("#alerts-blocked")).to_contain_text("Alerts blocked")
    await expect(denied.get_by_role("button", name="Enable alerts")).to_be_hidden()


async def test_the_service_worker_keeps_the_app_shell_and_no_patient_data(
    start_server: Start, browser: Browser
) -> None:
    server = await start_server(http=True)
    page = await open_page(browser, server)
    await page.reload()
    assert await page.evaluate("navigator.serviceWorker.controller.scriptURL") == url(server) + "sw.js"
    await enter(page, "Quenby")
    other = await LineClient.connect(server.addresses[0][1])
    await other.register("Ottoline")
    secrets = ["Quenby", "Ottoline", "troponin 4000 in cubicle 12", "do not resuscitate discussed", "#zephyrward"]
    await other.command("TELL Quenby troponin 4000 in cubicle 12")
    await other.command("JOIN #zephyrward")
    await page.get_by_label("Group to join").fill("#zephyrward")
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#title")).to_have_text("#zephyrward")
    await say(page, "do not resuscitate discussed")
    await expect(page.locator("#messages")).to_contain_text("do not resuscitate discussed")
    await page.reload()  # and once more through the worker, signed in
    await enter(page, "Quenby")
    await page.wait_for_timeout(500)  # caches are written just after the responses

    entries = await page.evaluate(CACHED)
    assert {entry["cache"] for entry in entries} == {"bleeper-shell-v1"}
    paths = {entry["url"].removeprefix(url(server).rstrip("/")) for entry in entries}
    assert {"/", "/static/app.js", "/static/alerts.js", "/manifest.webmanifest"} <= paths
    assert all(path == "/" or path == "/manifest.webmanifest" or path.startswith("/static/") for path in paths)
    for entry in entries:
        for secret in secrets:
            assert secret.lower() not in entry["body"].lower(), (entry["url"], secret)


async def test_a_push_message_shows_a_notification_without_text(start_server: Start, browser: Browser) -> None:
    """The server's Web Push (not reachable here) is stood in for by Chromium's DevTools, which hands the
    service worker a push event as a push service would."""
    server = await start_server(http=True)
    bleeper = await open_page(browser, server)
    page = await bleeper.context.new_page()
    await bleeper.close()  # no Bleeper page open (closed, not kept in the back-forward cache as a client)
    cdp = await page.context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    await cdp.send("ServiceWorker.enable")
    await page.wait_for_timeout(300)
    [registration] = [r for r in registrations if not r["isDeleted"]]
    payload = '{"kind": "urgent", "id": 41, "from": "ward7"}'
    message = {"origin": url(server).rstrip("/"), "registrationId": registration["registrationId"], "data": payload}
    await cdp.send("ServiceWorker.deliverPushMessage", message)
    sw = await worker(page.context)
    script = "async () => (await registration.getNotifications()).map((n) => [n.title, n.body, n.tag])"
    for _ in range(50):
        found = await sw.evaluate(script)
        if found:
            break
        await page.wait_for_timeout(100)
    assert found == [["Urgent page from ward7", "Open Bleeper to read and acknowledge it", "bleeper-41"]]


async def test_the_offline_screen_waits_for_the_server(browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(port=port, http=True, http_port=http_port) as start:
        server = await start()
        page = await open_page(browser, server)
        await page.reload()  # controlled by the service worker from here on
        await page.get_by_label("Screen name or account").fill("alice")
        await server.stop(grace=0.5)

        await page.get_by_role("button", name="Sign in").click()  # the WebSocket cannot open
        offline = page.locator("#offline")
        await expect(offline).to_contain_text("The Bleeper server cannot be reached. Retrying in 5 s…")
        await expect(page.locator("#signin")).to_be_hidden()
        server = await start()
        await expect(page.locator("#connection")).to_have_text("connected", timeout=15_000)  # signed in by itself
        await expect(page.locator("#me")).to_have_text("alice")

        await server.stop(grace=0.5)  # the second server (the first was stopped above)
        await page.reload()  # the app shell comes from the cache
        await expect(offline).to_contain_text("The Bleeper server cannot be reached. Retrying in")
        await expect(page.locator("#signin")).to_be_hidden()
        await start()
        await page.get_by_role("button", name="Retry now").click()
        await expect(page.get_by_label("Screen name or account")).to_be_visible()
        await expect(offline).to_be_hidden()
        await enter(page, "bob")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_app_can_be_installed(start_server: Start) -> None:
    server = await start_server(http=True)
    async with httpx.AsyncClient(base_url=url(server)) as http:
        manifest = await http.get("/manifest.webmanifest")
        assert manifest.headers["content-type"] == "application/manifest+json"
        app = manifest.json()
        assert (app["name"], app["short_name"], app["start_url"], app["scope"], app["display"]) == (
            "Bleeper", "Bleeper", "/", "/", "standalone")  # fmt: skip
        assert app["theme_color"] and app["background_color"]
        sizes = {(icon["sizes"], icon.get("purpose", "any")) for icon in app["icons"]}
        assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
        for icon in app["icons"]:
            image = await http.get(icon["src"])
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
            side = int(icon["sizes"].split("x")[0])
            assert png_size(image.content) == (side, side)

        sw = await http.get("/sw.js")
        assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
        assert sw.headers["service-worker-allowed"] == "/" and sw.headers["cache-control"] == "no-cache"
        page = (await http.get("/")).text
        assert '<link rel="manifest" href="/manifest.webmanifest">' in page and 'rel="icon"' in page

        # The shell lists every file the page may need offline; each exists.
        shell = set(re.findall(r'^  "(/[^"]*)",$', sw.text, re.M))
        files = {f"/static/{path.relative_to(STATIC)}" for path in STATIC.rglob("*") if path.is_file()}
        served_elsewhere = {"/static/index.html", "/static/sw.js", "/static/manifest.webmanifest"}  # /, /sw.js, ...
        expected = {"/", "/manifest.webmanifest"} | files - served_elsewhere
        assert shell == expected, "add new static files to SHELL in sw.js (and bump its CACHE version)"
        for path in shell:
            assert (await http.get(path)).status_code == 200, path
        for module in ("alerts.js", "install.js", "sw.js"):
            text = (STATIC / module).read_text()
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text  # text only, never markup
