"""The web client in a real browser (Debian's Chromium driven by Playwright): pages chatting with each other
and with a TCP client, the name-taken flow, urgent messages acknowledged from the page, markup shown as
text, and reconnection with catch-up."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bleeper.server import ChatServer
from tests.conftest import Start, starting
from tests.helpers import ROOT, LineClient, free_port, login
from tests.services import require_services

CHROMIUM = os.environ.get("BLEEPER_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def have_chromium() -> bool:
    return Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is not None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not have_chromium():
        message = f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt install chromium)"
        if require_services():
            pytest.fail(message + " (BLEEPER_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


def url(server: ChatServer) -> str:
    host, port = server.http_addresses[0]
    return f"http://{host}:{port}/"


async def sign_in(browser: Browser, server: ChatServer, name: str, password: str = "", width: int = 1000) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": 720})
    await page.goto(url(server))
    await page.get_by_label("Screen name or account").fill(name)
    if password:
        await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_text("connected")
    return page


async def say(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.get_by_label("Message", exact=True).press("Enter")


def messages(page: Page) -> object:
    return page.locator("#messages .message")


async def test_two_pages_and_a_tcp_client_share_one_conversation(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    alice = await sign_in(browser, server, "alice")
    bob = await sign_in(browser, server, "bob")
    carol = await LineClient.connect(server.addresses[0][1])
    await carol.register("carol")
    await expect(alice.locator("#people")).to_contain_text("carol")

    await carol.command("STATUS busy in theatre")
    await expect(alice.locator("#people").get_by_role("button", name="carol")).to_contain_text("busy: in theatre")

    await say(alice, "ward round at 9")
    await expect(bob.locator("#messages")).to_contain_text("alice ward round at 9")
    assert (await carol.message()).text == "ward round at 9"
    await carol.command("SAY bay 4 needs a porter")
    await expect(alice.locator("#messages")).to_contain_text("carol bay 4 needs a porter")
    await expect(bob.locator("#messages")).to_contain_text("carol bay 4 needs a porter")

    await bob.locator("#people").get_by_role("button", name="alice").click()  # a private conversation
    await say(bob, "coffee?")
    alice_bob = alice.locator("#conversation-list").get_by_role("button", name="bob")
    await expect(alice_bob).to_contain_text("1")  # an unread count while alice looks elsewhere
    await alice_bob.click()
    await expect(messages(alice).last).to_contain_text("coffee?")
    marks = bob.locator("#messages .marks").last
    await expect(marks).to_have_text("✓✓ read by alice")  # delivered, then read once on alice's screen

    await alice.locator("#people").get_by_role("button", name="carol").click()
    await say(alice, "and you, carol?")
    private = await carol.message()
    assert (private.sender, private.to, private.text) == ("alice", "@carol", "and you, carol?")
    await carol.command("TELL alice yes please")
    await expect(messages(alice).last).to_contain_text("carol yes please")


async def test_a_taken_name_is_explained_with_a_suggestion(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    first = await LineClient.connect(server.addresses[0][1])
    await first.register("alice")
    page = await browser.new_page()
    await page.goto(url(server))
    await page.get_by_label("Screen name or account").fill("Alice")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#signin-error")).to_contain_text("“Alice” is taken. Try “Alice2”")
    await expect(page.get_by_label("Screen name or account")).to_have_value("Alice2")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#me")).to_have_text("Alice2")


async def test_an_urgent_message_is_acknowledged_from_the_page(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True, urgent_interval=0.3, urgent_attempts=5)
    page = await sign_in(browser, server, "alice")
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    msg_id = (await ward.command("URGENT alice VT on monitor bay 2")).text.split()[0]
    banner = page.get_by_role("alert").filter(has_text="URGENT from ward7")
    await expect(banner).to_contain_text("VT on monitor bay 2")
    await expect(page.locator("#notice")).to_contain_text("still waiting for your acknowledgement")  # an ALERT
    await page.get_by_role("button", name="Acknowledge").click()
    acked = await ward.event("ACKED")
    assert acked.args == (msg_id, "alice")  # type: ignore[union-attr]
    await expect(banner).to_be_hidden()
    await page.locator("#conversation-list").get_by_role("button", name="ward7").click()
    await expect(messages(page).last).to_contain_text("URGENT")
    await expect(messages(page).last).to_contain_text("VT on monitor bay 2")


async def test_markup_in_a_message_is_shown_as_text(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    page = await sign_in(browser, server, "alice")
    mallory = await LineClient.connect(server.addresses[0][1])
    await mallory.register("mallory")
    hostile = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2"><b>bold</b>'
    await mallory.command(f"SAY {hostile}")
    await expect(page.locator("#messages .text").last).to_have_text(hostile)
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("#messages script, #messages img, #messages b").count() == 0


async def test_a_restart_is_survived_with_catch_up(db: str, browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(db=db, port=port, http=True, http_port=http_port) as start:
        server = await start()
        page = await sign_in(browser, server, "alice", "alice-password")
        bob, _ = await login(server, "bob")
        await bob.command("TELL alice before the restart")
        await page.locator("#conversation-list").get_by_role("button", name="bob").click()
        await expect(messages(page).last).to_contain_text("before the restart")
        await server.stop(grace=0.5)
        await expect(page.locator("#connection")).to_contain_text("reconnecting")
        await say(page, "written while offline")  # kept, and sent with its ID once the connection is back
        await expect(page.locator("#notice")).to_contain_text("it will be sent when the connection is back")
        server = await start()
        bob, _ = await login(server, "bob")
        await bob.command("TELL alice while you were away")  # stored for alice's account, sent at login or SYNC
        await expect(page.locator("#connection")).to_have_text("connected", timeout=15_000)
        await expect(page.locator("#messages")).to_contain_text("while you were away")
        await say(page, "back now")  # and the page can send again
        assert {(await bob.message()).text, (await bob.message()).text} == {"written while offline", "back now"}
        await expect(page.locator("#messages .text", has_text="written while offline")).to_have_count(1)
        await expect(page.locator("#messages .text", has_text="before the restart")).to_have_count(1)


async def test_phone_width_and_the_screenshot_for_the_readme(
    start_server: Start, browser: Browser, tmp_path: Path
) -> None:
    server = await start_server(http=True)
    alice = await sign_in(browser, server, "alice")
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    await ward.command("JOIN #icu")
    await alice.get_by_label("Group to join").fill("#icu")
    await alice.get_by_role("button", name="Join").click()
    await expect(alice.locator("#title")).to_have_text("#icu")
    await ward.command("TELL #icu bed 3 extubated, doing well")
    await say(alice, "thanks, will review at 10")
    await ward.command("URGENT alice K+ 6.9 on bed 5, please call")
    await expect(alice.get_by_role("alert").filter(has_text="URGENT")).to_be_visible()
    folder = os.environ.get("BLEEPER_SCREENSHOTS")  # docs/images: refresh the README's picture
    await alice.screenshot(path=str(Path(folder or tmp_path) / "web-client.png"))
    assert (ROOT / "docs" / "images" / "web-client.png").is_file()

    phone = await sign_in(browser, server, "bob", width=390)
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    await expect(phone.get_by_label("Message", exact=True)).to_be_visible()
