"""The web client in a real browser (Debian's Chromium driven by Playwright): pages chatting with each other
and with a TCP client, the name-taken flow, urgent messages acknowledged from the page, markup shown as
text, and reconnection: groups rejoined, catch-up counted honestly, messages written offline sent once, and
messages a crashed server sends again shown once."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from bleeper.server import ChatServer
from tests.conftest import Start, starting
from tests.helpers import ROOT, LineClient, create_accounts, free_port, login, server_process, wait_for_port
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


def url(server: ChatServer | str) -> str:
    if isinstance(server, str):
        return server
    host, port = server.http_addresses[0]
    return f"http://{host}:{port}/"


async def sign_in(
    browser: Browser, server: ChatServer | str, name: str, password: str = "", width: int = 1000, height: int = 720
) -> Page:
    page = await browser.new_page(viewport={"width": width, "height": height})
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


async def join(page: Page, group: str) -> None:
    await page.get_by_label("Group to join").fill(group)
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#title")).to_have_text(group)


async def record_notices(page: Page) -> None:
    """Keep every text the notice line shows in ``window.notices``, so a test can check what was never said."""
    await page.evaluate(
        """() => {
            const notice = document.getElementById("notice");
            window.notices = [];
            new MutationObserver(() => window.notices.push(notice.textContent))
                .observe(notice, { childList: true, characterData: true, subtree: true });
        }"""
    )


async def notices(page: Page) -> list[str]:
    return list(await page.evaluate("window.notices"))


async def first_retry_failed(page: Page) -> None:
    """The page tried once, found no server, and now waits 2 s: time enough to act before it is back."""
    await expect(page.locator("#connection")).to_contain_text("reconnecting in 2 s", timeout=10_000)


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
    await expect(page.locator("#connection")).to_have_text("offline")  # a refused sign-in: not "connecting…"
    await expect(page.locator("#connection")).to_have_class(re.compile(r"\boffline\b"))
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


async def test_phone_width_and_a_screenshot(start_server: Start, browser: Browser, tmp_path: Path) -> None:
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
    # The README's pictures are taken by test_web_layout.py::test_screenshots_for_the_readme.
    await alice.screenshot(path=str(tmp_path / "web-client.png"))
    assert (ROOT / "docs" / "images" / "web-client.png").is_file()

    phone = await sign_in(browser, server, "bob", width=390)
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    # A phone shows one pane at a time, the list of conversations first (test_web_layout.py has the whole flow).
    await phone.locator("#conversation-list").get_by_role("button", name="Everyone").click()
    await expect(phone.get_by_label("Message", exact=True)).to_be_visible()
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_messages_waiting_at_sign_in_are_shown(tmp_path: Path, start_server: Start, browser: Browser) -> None:
    db = await create_accounts(str(tmp_path / "bleeper.db"), "alice", "bob")
    server = await start_server(db=db, http=True)
    bob, _ = await login(server, "bob")
    assert (await bob.command("TELL alice the results are in")).code == 250  # alice is offline: kept for her
    page = await sign_in(browser, server, "alice", "alice-password")
    from_bob = page.locator("#conversation-list").get_by_role("button", name="bob")
    await expect(from_bob).to_contain_text("1")
    await from_bob.click()
    await expect(page.locator("#messages .text", has_text="the results are in")).to_have_count(1)


async def test_a_guest_page_rejoins_its_groups_when_its_connection_drops(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    alice = await sign_in(browser, server, "alice")
    bob = await sign_in(browser, server, "bob")
    for page in (alice, bob):
        await join(page, "#icu")
    await alice.evaluate("window.bleeper.socket.ws.close()")
    await expect(alice.locator("#notice")).to_contain_text("reconnected", timeout=15_000)
    await say(alice, "alice is back on #icu")
    await expect(bob.locator("#messages")).to_contain_text("alice alice is back on #icu")
    await say(bob, "welcome back")  # reaches alice only if her new connection is a member again
    await expect(alice.locator("#messages")).to_contain_text("bob welcome back")


async def test_guest_pages_rejoin_their_groups_after_a_server_restart(browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(port=port, http=True, http_port=http_port) as start:
        server = await start()
        alice = await sign_in(browser, server, "alice")
        bob = await sign_in(browser, server, "bob")
        for page in (alice, bob):
            await join(page, "#icu")
        await server.stop(grace=0.5)  # the new server knows no groups: the pages must join again
        server = await start()
        for page in (alice, bob):
            await expect(page.locator("#notice")).to_contain_text("reconnected", timeout=15_000)
        await say(alice, "still here after the restart")
        await expect(bob.locator("#messages")).to_contain_text("alice still here after the restart")
        await say(bob, "me too")
        await expect(alice.locator("#messages")).to_contain_text("bob me too")
        await expect(alice.locator("#notice")).not_to_contain_text("no such group")


async def test_a_guest_is_not_told_that_nothing_was_missed(browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(port=port, http=True, http_port=http_port) as start:
        server = await start()
        page = await sign_in(browser, server, "alice")
        await record_notices(page)
        await server.stop(grace=0.5)
        await first_retry_failed(page)
        await start()
        ward = await LineClient.connect(port)
        await ward.register("ward7")
        assert (await ward.command("SAY is the crash trolley back?")).code == 250  # before the page is back
        await expect(page.locator("#notice")).to_have_text(
            "reconnected as alice. Messages sent while you were away are not kept for guests: "
            "sign in with an account to receive them.",
            timeout=15_000,
        )
        assert not [text for text in await notices(page) if "nothing was missed" in text]


async def test_an_account_is_told_how_many_messages_it_missed(db: str, browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(db=db, port=port, http=True, http_port=http_port) as start:
        server = await start()
        page = await sign_in(browser, server, "alice", "alice-password")
        await record_notices(page)
        bob, _ = await login(server, "bob")
        await bob.command("TELL alice before the restart")
        await page.locator("#conversation-list").get_by_role("button", name="bob").click()
        await expect(messages(page).last).to_contain_text("before the restart")
        await server.stop(grace=0.5)
        await first_retry_failed(page)
        server = await start()
        bob, _ = await login(server, "bob")
        assert (await bob.command("TELL alice sent while you were away")).code == 250
        await expect(page.locator("#notice")).to_have_text(
            "reconnected; 1 message sent while you were away is shown", timeout=15_000
        )
        await expect(page.locator("#messages .text", has_text="sent while you were away")).to_have_count(1)
        await expect(page.locator("#messages .text", has_text="before the restart")).to_have_count(1)
        assert not [text for text in await notices(page) if "nothing was missed" in text]


async def test_an_account_page_that_missed_nothing_says_so(db: str, browser: Browser) -> None:
    """Messages another device had before this page signed in are not news to it when it reconnects."""
    async with starting(db=db, http=True) as start:
        server = await start()
        phone, _ = await login(server, "alice")
        bob, _ = await login(server, "bob")
        for number in range(2):
            await bob.command(f"TELL alice seen on the phone {number}")
        await phone.drain()
        page = await sign_in(browser, server, "alice", "alice-password")  # 202 alice logged in at 2
        await record_notices(page)
        await page.evaluate("window.bleeper.socket.ws.close()")
        await expect(page.locator("#notice")).to_have_text("reconnected; nothing was missed", timeout=15_000)
        assert await page.evaluate("window.bleeper.lastSeq") == 2
        await expect(page.locator("#conversation-list").get_by_role("button", name="bob")).to_have_count(0)


async def test_a_message_written_offline_is_shown_pending_and_sent_once(browser: Browser) -> None:
    port, http_port = free_port(), free_port()
    async with starting(port=port, http=True, http_port=http_port) as start:
        server = await start()
        page = await sign_in(browser, server, "alice")
        await server.stop(grace=0.5)
        await expect(page.locator("#connection")).to_contain_text("reconnecting")
        await say(page, "written while offline")
        pending = page.locator("#messages .message.pending")
        await expect(pending).to_contain_text("written while offline")
        await expect(pending).to_contain_text("waiting for the connection")
        await expect(page.get_by_label("Message", exact=True)).to_have_value("")  # it moved to the conversation
        await expect(page.locator("#notice")).to_contain_text("it will be sent when the connection is back")
        await first_retry_failed(page)
        await start()
        ward = await LineClient.connect(port)
        await ward.register("ward7")  # online before the page is back, so the SAY reaches it
        sent = await ward.message(timeout=15)
        assert (sent.sender, sent.text) == ("alice", "written while offline")
        await expect(page.locator("#connection")).to_have_text("connected")
        await say(page, "and one more")
        assert (await ward.message()).text == "and one more"  # nothing in between: the first came once
        await expect(page.locator("#messages .text", has_text="written while offline")).to_have_count(1)
        await expect(page.locator("#messages .pending")).to_have_count(0)


async def test_a_guest_message_whose_confirmation_is_lost_goes_back_in_the_box(
    start_server: Start, browser: Browser
) -> None:
    server = await start_server(http=True)
    page = await sign_in(browser, server, "alice")
    await record_notices(page)
    await page.get_by_label("Message", exact=True).fill("is anyone there")
    # Sent, then the connection goes before the 250 can arrive: the page cannot know whether it was stored.
    await page.evaluate(
        "() => { document.getElementById('composer').requestSubmit(); window.bleeper.socket.ws.close(); }"
    )
    await page.wait_for_function(
        "() => window.notices.some((text) => text.includes('may or may not have been sent'))", timeout=10_000
    )
    await expect(page.get_by_label("Message", exact=True)).to_have_value("is anyone there")
    await expect(page.locator("#messages .pending")).to_have_count(0)  # a guest's message is not sent twice by itself


async def test_acknowledging_from_the_banner_clears_the_unread_count(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    page = await sign_in(browser, server, "alice")
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    carol = await LineClient.connect(server.addresses[0][1])
    await carol.register("carol")
    msg_id = (await ward.command("URGENT alice chest pain bed 4")).text.split()[0]
    from_ward = page.locator("#conversation-list").get_by_role("button", name="ward7")
    await expect(from_ward.locator(".unread")).to_have_text("1")
    await page.get_by_role("button", name="Acknowledge").click()
    await expect(page.get_by_role("alert")).to_be_hidden()
    await expect(from_ward.locator(".unread")).to_have_count(0)
    read = await ward.event("READ")  # acknowledged is read: the sender is told
    assert read.args == (msg_id, "alice")  # type: ignore[union-attr]

    # Acknowledged by someone else: alice has still not read it.
    other_id = (await ward.command("URGENT alice,carol porter to theatre 2")).text.split()[0]
    together = page.locator("#conversation-list").get_by_role("button", name="carol, ward7")
    await expect(together.locator(".unread")).to_have_text("1")
    assert (await carol.command(f"ACK {other_id}")).code == 206
    await expect(page.locator("#notice")).to_contain_text(f"urgent message {other_id} acknowledged by carol")
    await expect(together.locator(".unread")).to_have_text("1")


async def test_the_urgent_banner_says_when_it_was_sent(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    page = await sign_in(browser, server, "alice")
    ward = await LineClient.connect(server.addresses[0][1])
    await ward.register("ward7")
    sent_at = (await ward.command("URGENT alice K+ 6.9 on bed 5")).text.split()[1]
    local = await page.evaluate(
        "(t) => { const d = new Date(t); return [d.getHours(), d.getMinutes()]"
        ".map((n) => String(n).padStart(2, '0')).join(':'); }",
        sent_at,
    )
    banner = page.get_by_role("alert")
    await expect(banner).to_contain_text(f"URGENT from ward7, sent {local} (just now): K+ 6.9 on bed 5")


async def test_a_message_repeated_after_a_crash_is_shown_once(tmp_path: Path, browser: Browser) -> None:
    """SIGKILL within a moment of a delivery: the server's delivered mark (written about once a second) is
    lost, so the next LOGIN sends the message again with the same number; the page drops the repeat."""
    db = await create_accounts(str(tmp_path / "crash.db"), "alice", "bob")
    port, http_port = free_port(), free_port()
    args = ("--db", db, "--http-port", str(http_port), "--log-level", "warning")
    with ExitStack() as stack:
        proc, _ = stack.enter_context(server_process(*args, port=port))
        wait_for_port(http_port)
        page = await sign_in(browser, f"http://127.0.0.1:{http_port}/", "alice", "alice-password")
        bob, _ = await login(port, "bob")
        await page.locator("#people").get_by_role("button", name="bob").click()
        repeats = 0
        for attempt in range(3):  # the mark may, rarely, be written in the moment before the kill: try again
            text = f"bed 3 bloods back ({attempt})"
            assert (await bob.command(f"TELL alice {text}")).code == 250
            shown = "(text) => [...document.querySelectorAll('#messages .text')].some((e) => e.textContent === text)"
            await page.wait_for_function(shown, arg=text, polling=10)
            proc.kill()
            proc.wait()
            await expect(page.locator("#connection")).to_contain_text("reconnecting")
            await page.evaluate("document.getElementById('notice').textContent = ''")
            proc, _ = stack.enter_context(server_process(*args, port=port))
            await expect(page.locator("#notice")).to_contain_text("reconnected", timeout=20_000)
            await expect(page.locator("#messages .text", has_text=text)).to_have_count(1)
            repeats = await page.evaluate("window.bleeper.repeats")
            if repeats >= 1:
                await expect(page.locator("#notice")).to_have_text("reconnected; nothing was missed")
                break
            bob, _ = await login(port, "bob")
        assert repeats >= 1, "the server never sent the message again: the test proved nothing"
