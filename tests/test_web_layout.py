"""The web client's layout and timeline in a real browser (Debian's Chromium driven by Playwright): the phone
layout (one pane at a time, 44 px targets, no sideways scrolling), day separators, grouped messages, the
new-messages marker and jump-to-latest, relative times, the on-call roles and backup panel, axe-core's WCAG 2.2
AA checks on every screen at desktop and phone sizes, a keyboard-only session, and the README's screenshots
(written to ``$BLEEPER_SCREENSHOTS`` when set: ``BLEEPER_SCREENSHOTS=docs/images``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, ViewportSize, expect

from bleeper.server import ChatServer
from tests.conftest import Start
from tests.helpers import ROOT, LineClient
from tests.test_web_browser import browser, messages, say, sign_in, url

__all__ = ["browser"]  # the fixture, imported so pytest finds it here

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
TOUCH = 44  # px: the smallest target for a finger
AXE = (ROOT / "tests" / "vendor" / "axe.min.js").read_text()
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
HOUR = 3600.0
DAY = 24 * HOUR


async def phone_sign_in(browser: Browser, server: ChatServer, name: str) -> Page:
    return await sign_in(browser, server, name, width=PHONE["width"], height=PHONE["height"])


async def desktop_sign_in(browser: Browser, server: ChatServer, name: str) -> Page:
    return await sign_in(browser, server, name, width=DESKTOP["width"], height=DESKTOP["height"])


async def alerted_sign_in(browser: Browser, server: ChatServer, name: str, size: ViewportSize) -> Page:
    """Signed in with notifications allowed, as a user who answered the page's "Enable alerts" looks."""
    context = await browser.new_context(viewport=size, permissions=["notifications"])
    page = await context.new_page()
    await page.goto(url(server))
    await page.get_by_label("Screen name or account").fill(name)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_text("connected")
    return page


async def client(server: ChatServer, name: str) -> LineClient:
    line = await LineClient.connect(server.addresses[0][1])
    await line.register(name)
    return line


@contextmanager
def server_time(server: ChatServer, when: float) -> Iterator[None]:
    """Messages sent meanwhile carry *when* (seconds since the epoch): the hub stamps them with its clock, which
    the test sets back, to show days and hours gone by without waiting for them."""
    hub = server.hub
    real = hub.clock
    hub.clock = lambda: when
    try:
        yield
    finally:
        hub.clock = real


async def no_sideways_scroll(page: Page) -> None:
    widths = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


async def axe_violations(page: Page, screen: str) -> None:
    """axe-core's WCAG 2.2 A/AA rules: no violation of serious or critical impact. Injected with evaluate,
    which the page's Content-Security-Policy does not apply to (a script tag would be refused)."""
    if not await page.evaluate("typeof window.axe === 'object'"):
        await page.evaluate(AXE)
    result = await page.evaluate("(tags) => axe.run(document, { runOnly: tags })", WCAG)
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    report = [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"], "where": [n["target"] for n in v["nodes"][:5]],
         "why": v["nodes"][0]["failureSummary"]}
        for v in bad
    ]  # fmt: skip
    assert not report, f"{screen}: " + json.dumps(report, indent=1)


async def scrolled_to_end(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "(() => { const l = document.getElementById('messages');"
            " return l.scrollHeight - l.scrollTop - l.clientHeight < 48; })()"
        )
    )


def conversation_button(page: Page, name: str) -> Locator:
    """A conversation in the list, by name ("Everyone", "#icu", "bob"); its preview may name others."""
    key = "*" if name == "Everyone" else name if name.startswith("#") else "@" + name
    return page.locator(f'#conversation-list [data-key="{key}"]')


async def test_phone_flow_list_conversation_back_send_and_acknowledge(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True, urgent_interval=5)
    ward = await client(server, "ward7")
    phone = await phone_sign_in(browser, server, "bob")
    message_box = phone.get_by_label("Message", exact=True)
    # The list first, alone.
    await expect(phone.locator("#conversation-list")).to_be_visible()
    await expect(message_box).to_be_hidden()
    await no_sideways_scroll(phone)

    await ward.command("TELL bob bed 3 needs review")
    from_ward = conversation_button(phone, "ward7")
    await expect(from_ward.locator(".unread")).to_have_text("1")
    await expect(from_ward.locator(".preview")).to_contain_text("ward7: bed 3 needs review")
    await from_ward.click()
    # The conversation, alone, with a way back.
    await expect(phone.locator("#title")).to_have_text("ward7")
    await expect(phone.locator("#conversation-list")).to_be_hidden()
    await expect(messages(phone).last).to_contain_text("bed 3 needs review")
    back = phone.get_by_role("button", name="Conversations")
    await expect(back).to_be_visible()
    await no_sideways_scroll(phone)

    await ward.command("SAY handover at 8 in the seminar room")  # to Everyone: unread elsewhere
    await expect(phone.locator("#back-unread")).to_have_text("1")
    await expect(back).to_have_attribute("aria-label", "Conversations, 1 unread")

    # The composer sits at the foot of the screen with Send on the same row.
    await say(phone, "on my way")
    private = await ward.message()
    assert (private.sender, private.text) == ("bob", "on my way")
    text_box = await message_box.bounding_box()
    send = await phone.get_by_role("button", name="Send").bounding_box()
    assert text_box and send
    assert abs((text_box["y"] + text_box["height"] / 2) - (send["y"] + send["height"] / 2)) < 4
    assert send["y"] + send["height"] > PHONE["height"] - 70
    await no_sideways_scroll(phone)

    msg_id = (await ward.command("URGENT bob sats 84% on 4L bay 2")).text.split()[0]
    banner = phone.get_by_role("alert").filter(has_text="URGENT from ward7")
    await expect(banner).to_contain_text("sats 84% on 4L bay 2")
    await no_sideways_scroll(phone)
    await phone.get_by_role("button", name="Acknowledge").click()
    acked = await ward.event("ACKED")
    assert acked.args == (msg_id, "bob")  # type: ignore[union-attr]
    await expect(banner).to_be_hidden()

    await back.click()
    await expect(phone.locator("#conversation-list")).to_be_visible()
    await expect(message_box).to_be_hidden()
    await expect(conversation_button(phone, "Everyone").locator(".unread")).to_have_text("1")
    await no_sideways_scroll(phone)

    # Everyone's new message is marked where it starts; Escape goes back, as the phone's back gesture does.
    await conversation_button(phone, "Everyone").click()
    await expect(phone.locator("#messages .new-marker")).to_have_text("New messages")
    await phone.keyboard.press("Escape")
    await expect(phone.locator("#conversation-list")).to_be_visible()
    await conversation_button(phone, "ward7").click()
    await expect(phone.locator("#title")).to_have_text("ward7")
    await phone.go_back()
    await expect(phone.locator("#conversation-list")).to_be_visible()
    await no_sideways_scroll(phone)


async def test_phone_controls_are_at_least_44px(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    ward = await client(server, "ward7")
    phone = await phone_sign_in(browser, server, "bob")
    await ward.command("TELL bob hello")
    await expect(conversation_button(phone, "ward7")).to_be_visible()
    await expect(phone.locator(".person", has_text="ward7")).to_be_visible()  # the people list comes from WHO

    async def check(selector: str) -> None:
        boxes = [await element.bounding_box() for element in await phone.locator(selector).all()]
        assert boxes, f"nothing matches {selector}"
        for box in boxes:
            assert box and box["height"] >= TOUCH and box["width"] >= TOUCH, f"{selector}: {box}"

    for selector in (".conversation-button", ".person", "#join-name", "#join-form button", "#status",
                     "#status-form button", "#roles-open"):  # fmt: skip
        await check(selector)
    await conversation_button(phone, "ward7").click()
    await ward.command("URGENT bob call the ward")
    await expect(phone.get_by_role("alert")).to_be_visible()
    for selector in ("#back", "#text", ".urgent-toggle", "#send", "#ack"):
        await check(selector)
    await phone.get_by_role("button", name="Acknowledge").click()
    await phone.get_by_role("button", name="Conversations").click()
    await phone.get_by_role("button", name="On-call roles and backup").click()
    for selector in ("#roles-close", "#take-role", "#take-form button", "#backup-name", "#backup-form button"):
        await check(selector)


async def test_day_separators_groups_and_relative_times(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    ward = await client(server, "ward7")
    carol = await client(server, "carol")
    page = await browser.new_page(viewport=DESKTOP)
    await page.clock.install()  # the page's clock runs on, but the test can move it forward
    await page.goto(url(server))
    await page.get_by_label("Screen name or account").fill("alice")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_text("connected")

    now = time.time()
    three_days_ago = now - 3 * DAY
    sent = [
        (ward, three_days_ago, "three days ago, first"),
        (ward, three_days_ago + 60, "three days ago, a minute later"),  # the same group
        (carol, now - DAY, "yesterday"),
        (carol, now - 2 * HOUR, "two hours ago"),  # Today
        (carol, now - 4 * 60, "four minutes ago"),  # a pause of more than five minutes: a new group
        (carol, now - 1, "a moment ago"),  # four minutes on: the same group
        (ward, now, "ward again"),
    ]
    times = {}
    for line, when, text in sent:
        with server_time(server, when):
            times[text] = (await line.command(f"SAY {text}")).text.split()[1]
    await expect(messages(page)).to_have_count(len(sent))

    weekday = datetime.fromtimestamp(three_days_ago).strftime("%A")
    separators = await page.locator("#messages .day-separator").all_text_contents()
    assert len(separators) == 3 and separators[1:] == ["Yesterday", "Today"], separators
    assert weekday in separators[0], separators

    def message(text: str) -> Locator:
        return page.locator("#messages .message", has_text=text)

    for text in ("three days ago, a minute later", "a moment ago"):  # continuing: the name is for screen readers only
        await expect(message(text)).to_have_class("message continued")
        await expect(message(text).locator(".from")).to_have_class("from visually-hidden")
    for text in ("three days ago, first", "yesterday", "two hours ago", "four minutes ago", "ward again"):
        await expect(message(text).locator(".from")).to_be_visible()
    await expect(message("ward again")).to_contain_text("ward7 ward again")

    two_hours = datetime.fromtimestamp(now - 2 * HOUR).strftime("%H:%M")
    await expect(message("two hours ago").locator("time")).to_have_text(two_hours)
    await expect(message("four minutes ago").locator("time")).to_have_text("4 min ago")
    await expect(message("ward again").locator("time")).to_have_text("just now")
    for text, stamp in times.items():
        await expect(message(text).locator("time")).to_have_attribute("datetime", stamp)
    await page.clock.fast_forward("02:00")  # times say how long ago without a new message
    await expect(message("ward again").locator("time")).to_have_text("2 min ago")
    await expect(message("four minutes ago").locator("time")).to_have_text("6 min ago")


async def test_new_messages_marker_and_jump_to_latest(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True)
    bob = await client(server, "bob")
    page = await desktop_sign_in(browser, server, "alice")
    await page.locator("#people").get_by_role("button", name="bob").click()
    for number in range(1, 4):
        await bob.command(f"TELL alice read before {number}")
    await expect(messages(page)).to_have_count(3)
    await expect(page.locator("#announcer")).to_have_text(  # a few together are read out in full
        "bob: read before 1. bob: read before 2. bob: read before 3"
    )
    await conversation_button(page, "Everyone").click()
    for number in range(1, 31):
        await bob.command(f"TELL alice unread {number}")
    await expect(conversation_button(page, "bob").locator(".unread")).to_have_text("30")
    await expect(page.locator("#announcer")).to_contain_text("30 new messages")  # a burst is said as a count

    await conversation_button(page, "bob").click()
    await expect(messages(page)).to_have_count(33)
    marker = page.locator("#messages .new-marker")
    await expect(marker).to_have_text("New messages")
    await expect(page.locator("#messages .new-marker + .message .text")).to_have_text("unread 1")
    await expect(marker).to_be_in_viewport()  # opened where the unread start, not at the end
    assert not await scrolled_to_end(page)

    await bob.command("TELL alice the latest")
    jump = page.get_by_role("button", name="Jump to latest")
    await expect(jump).to_have_text("↓ Jump to latest: 1 new message")
    await expect(marker).to_be_in_viewport()  # the reader was not pulled away
    await expect(page.locator("#announcer")).to_have_text("bob: the latest")
    await bob.command("TELL alice and another")
    await expect(jump).to_contain_text("2 new messages")
    await jump.click()
    await expect(jump).to_be_hidden()
    await expect(page.locator("#messages .text", has_text="and another")).to_be_in_viewport()
    assert await scrolled_to_end(page)

    await bob.command("TELL alice at the end, it follows")  # at the end already: no button, it scrolls
    await expect(page.locator("#messages .text", has_text="at the end, it follows")).to_be_in_viewport()
    await expect(jump).to_be_hidden()

    carol = await client(server, "carol")
    await carol.command("SAY porter needed in bay 4")  # elsewhere: said with where it is
    await expect(page.locator("#announcer")).to_contain_text(
        "New message in Everyone from carol: porter needed in bay 4"
    )


async def test_the_roles_panel_takes_hands_over_and_sets_a_backup(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True, urgent_interval=5)
    ward = await client(server, "ward7")
    bob = await client(server, "bob")
    page = await desktop_sign_in(browser, server, "alice")
    panel = page.get_by_role("dialog", name="On call")
    reply = page.locator("#roles-reply")
    await page.get_by_role("button", name="On-call roles and backup").click()
    await expect(panel).to_be_visible()
    await expect(panel).to_contain_text("Nobody holds an on-call role")
    await expect(panel.locator("#backup-text")).to_contain_text("You have no backup")

    await panel.get_by_label("Take a role").fill("cardio-oncall")  # the @ is added
    await panel.get_by_label("Take a role").press("Enter")
    await expect(reply).to_have_text("you hold @cardio-oncall")
    role = panel.locator(".role", has_text="@cardio-oncall")
    await expect(role).to_contain_text("held by alice")
    await expect(page.locator("#roles-summary")).to_have_text("You hold @cardio-oncall")

    # A page to the role reaches whoever holds it: the panel gives way to the banner.
    msg_id = (await ward.command("URGENT @cardio-oncall chest pain bay 2, please come")).text.split()[0]
    banner = page.get_by_role("alert").filter(has_text="URGENT from ward7")
    await expect(banner).to_contain_text("chest pain bay 2, please come")
    await expect(panel).to_be_hidden()
    await page.get_by_role("button", name="Acknowledge").click()
    assert (await ward.event("ACKED")).args == (msg_id, "alice")  # type: ignore[union-attr]
    await conversation_button(page, "ward7").click()
    await expect(messages(page).last).to_contain_text("to @cardio-oncall")

    await page.get_by_role("button", name="On-call roles and backup").click()
    await role.get_by_label("Hand @cardio-oncall over to").fill("nobody-here")
    await role.get_by_role("button", name="Hand over @cardio-oncall").click()
    await expect(reply).to_contain_text("Not done: no such user: nobody-here")
    await role.get_by_label("Hand @cardio-oncall over to").fill("bob")
    await role.get_by_role("button", name="Hand over @cardio-oncall").click()
    await expect(reply).to_have_text("@cardio-oncall handed over to bob")
    handed = await bob.event("ONCALL")
    assert handed.args == ("@cardio-oncall", "from", "alice")  # type: ignore[union-attr]
    await expect(role).to_contain_text("held by bob")
    await expect(role.get_by_role("button", name="Take @cardio-oncall")).to_be_visible()
    await expect(page.locator("#roles-summary")).to_have_text("You hold no on-call role")

    assert (await bob.command("ONCALL HANDOVER @cardio-oncall alice")).code == 209  # and back: the event refreshes
    await expect(reply).to_have_text("bob handed @cardio-oncall over to you")
    await expect(role).to_contain_text("held by alice")
    await role.get_by_role("button", name="Leave @cardio-oncall").click()
    await expect(reply).to_have_text("you no longer hold @cardio-oncall")
    await expect(panel).to_contain_text("Nobody holds an on-call role")

    await panel.get_by_label("New backup").fill("bob")
    await panel.get_by_role("button", name="Set backup").click()
    await expect(reply).to_contain_text("your backup is bob")
    await expect(panel.locator("#backup-text")).to_contain_text("Your backup is bob")
    await expect(page.locator("#backup-summary")).to_have_text("Backup: bob")
    await panel.get_by_role("button", name="Clear backup").click()
    await expect(reply).to_contain_text("no backup")
    await expect(panel.locator("#backup-text")).to_contain_text("You have no backup")
    await expect(panel.get_by_role("button", name="Clear backup")).to_be_disabled()
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(page.get_by_role("button", name="On-call roles and backup")).to_be_focused()


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_no_serious_accessibility_violations(start_server: Start, browser: Browser, size: ViewportSize) -> None:
    server = await start_server(http=True, urgent_interval=5)
    page = await browser.new_page(viewport=size)
    await page.goto(url(server))
    await expect(page.get_by_label("Screen name or account")).to_be_visible()
    await axe_violations(page, "sign-in")
    await page.get_by_label("Screen name or account").fill("alice")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#connection")).to_have_text("connected")

    ward = await client(server, "ward7")
    await ward.command("JOIN #icu")
    await page.get_by_label("Group to join").fill("#icu")
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#title")).to_have_text("#icu")
    await ward.command("TELL #icu bed 3 extubated, doing well")
    await ward.command("TELL #icu bed 4 for review")
    await say(page, "thanks, will review at 10")
    await ward.command("TELL alice a private word")
    await expect(messages(page)).to_have_count(3)
    await axe_violations(page, "chat")
    if size is PHONE:
        await page.get_by_role("button", name="Conversations").click()
        await expect(page.locator("#conversation-list")).to_be_visible()
        await axe_violations(page, "conversation list")
        await conversation_button(page, "ward7").click()

    await ward.command("URGENT alice K+ 6.9 on bed 5, please call")
    await expect(page.get_by_role("alert").filter(has_text="URGENT")).to_be_visible()
    await axe_violations(page, "urgent")
    await page.get_by_role("button", name="Acknowledge").click()

    if size is PHONE:
        await page.get_by_role("button", name="Conversations").click()
    await page.get_by_role("button", name="On-call roles and backup").click()
    await page.get_by_label("Take a role").fill("@med-reg")
    await page.get_by_label("Take a role").press("Enter")
    await expect(page.locator("#roles-reply")).to_have_text("you hold @med-reg")
    await axe_violations(page, "roles")


async def focused(page: Page) -> str:
    """What has keyboard focus: its id, or for a conversation its key."""
    return str(
        await page.evaluate(
            "(() => { const e = document.activeElement; return e.dataset.key || e.id || e.tagName; })()"
        )
    )


async def tab_to(page: Page, target: str, key: str = "Tab") -> None:
    for _ in range(60):
        if await focused(page) == target:
            outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"focus on {target} is not visible"
            return
        await page.keyboard.press(key)
    raise AssertionError(f"{key} never reached {target}; focus is on {await focused(page)}")


async def test_a_keyboard_only_session(start_server: Start, browser: Browser) -> None:
    server = await start_server(http=True, urgent_interval=5)
    ward = await client(server, "ward7")
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(url(server))
    await expect(page.get_by_label("Screen name or account")).to_be_focused()
    await page.keyboard.type("alice")
    await page.keyboard.press("Enter")
    await expect(page.locator("#connection")).to_have_text("connected")
    await expect(page.get_by_label("Message", exact=True)).to_be_focused()

    await ward.command("TELL alice can you see this?")
    await expect(conversation_button(page, "ward7")).to_be_visible()
    await tab_to(page, "@ward7", "Shift+Tab")  # back from the message box to the conversation list
    await page.keyboard.press("Enter")
    await expect(page.locator("#title")).to_have_text("ward7")
    await expect(page.get_by_label("Message", exact=True)).to_be_focused()
    await page.keyboard.type("yes, from the keyboard")
    await page.keyboard.press("Enter")
    assert (await ward.message()).text == "yes, from the keyboard"

    first = (await ward.command("URGENT alice bed 5 K+ 6.9")).text.split()[0]
    await expect(page.get_by_role("alert")).to_be_visible()
    await page.keyboard.press("Alt+A")  # the shortcut, from wherever focus is
    assert (await ward.event("ACKED")).args == (first, "alice")  # type: ignore[union-attr]
    await expect(page.get_by_role("alert")).to_be_hidden()

    second = (await ward.command("URGENT alice bed 6 sats 85%")).text.split()[0]
    await expect(page.get_by_role("alert")).to_be_visible()
    await tab_to(page, "ack", "Shift+Tab")
    await page.keyboard.press("Space")
    assert (await ward.event("ACKED")).args == (second, "alice")  # type: ignore[union-attr]

    await tab_to(page, "roles-open")  # the on-call panel, and Escape out of it back to where it was opened
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog", name="On call")).to_be_visible()
    await tab_to(page, "take-role")
    await page.keyboard.type("@night-reg")
    await page.keyboard.press("Enter")
    await expect(page.locator("#roles-reply")).to_have_text("you hold @night-reg")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog", name="On call")).to_be_hidden()
    assert await focused(page) == "roles-open"
    await expect(page.locator("#roles-summary")).to_have_text("You hold @night-reg")


async def test_screenshots_for_the_readme(start_server: Start, browser: Browser, tmp_path: Path) -> None:
    folder = Path(os.environ.get("BLEEPER_SCREENSHOTS") or tmp_path)  # docs/images: refresh the README's pictures
    server = await start_server(http=True, urgent_interval=30)
    ward, carol, theatre = [await client(server, name) for name in ("ward7", "carol", "theatre2")]
    for line in (ward, carol):
        await line.command("JOIN #icu")
    alice = await alerted_sign_in(browser, server, "alice", DESKTOP)
    phone = await alerted_sign_in(browser, server, "bob", PHONE)
    for page in (alice, phone):
        await page.get_by_label("Group to join").fill("#icu")
        await page.get_by_role("button", name="Join").click()
        await expect(page.locator("#title")).to_have_text("#icu")
    await phone.get_by_role("button", name="Conversations").click()
    for page, role in ((alice, "@icu-reg"), (phone, "@cardio-oncall")):
        await page.get_by_role("button", name="On-call roles and backup").click()
        await page.get_by_label("Take a role").fill(role)
        await page.get_by_label("Take a role").press("Enter")
        await expect(page.locator("#roles-reply")).to_have_text(f"you hold {role}")
        await page.get_by_role("button", name="Close").click()

    now = time.time()
    night = (datetime.now().replace(hour=6, minute=50) - timedelta(days=1)).timestamp()  # yesterday, 06:50
    with server_time(server, night):
        await ward.command("TELL #icu Night: bed 3 extubated at 02:10, sats stable on 2L")
    with server_time(server, night + 90):
        await ward.command("TELL #icu Bed 6 family asked for a call this morning")
    with server_time(server, now - 40 * 60):
        await carol.command("TELL #icu Ward round at 9, starting with bed 5")
    with server_time(server, now - 38 * 60):
        await carol.command("TELL #icu Bed 5 potassium is back: 6.9")
    await say(alice, "Thanks, I will see bed 5 first")
    await theatre.command("TELL alice Theatre 2 is ready for your 11:00 list")
    await carol.command("TELL bob Can you cover the 2 pm clinic?")
    await ward.command("SAY Fire alarm test at 10:00, no action needed")
    await expect(messages(alice)).to_have_count(5)
    await expect(conversation_button(phone, "carol").locator(".unread")).to_have_text("1")

    await alice.screenshot(path=str(folder / "web-client.png"))
    await phone.screenshot(path=str(folder / "web-phone-list.png"))
    await conversation_button(phone, "#icu").click()
    await expect(phone.locator("#messages .new-marker")).to_be_visible()
    await phone.screenshot(path=str(folder / "web-phone-conversation.png"))
    await ward.command("URGENT @cardio-oncall Bed 4 chest pain, ECG changes: please come")
    await expect(phone.get_by_role("alert").filter(has_text="URGENT")).to_be_visible()
    await phone.get_by_role("button", name="Conversations").click()
    await conversation_button(phone, "ward7").click()  # the page in its conversation, with the role it went to
    await expect(messages(phone).last).to_contain_text("to @cardio-oncall")
    await phone.screenshot(path=str(folder / "web-urgent.png"))
    for name in ("web-client.png", "web-phone-list.png", "web-phone-conversation.png", "web-urgent.png"):
        assert (folder / name).stat().st_size > 10_000, name
        assert (ROOT / "docs" / "images" / name).is_file(), (
            f"docs/images/{name}: run with BLEEPER_SCREENSHOTS=docs/images"
        )
