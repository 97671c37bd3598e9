"""The Textual client driven with Pilot against a real server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from bleeper.client import ChatClient, Message
from bleeper.client.events import Event
from bleeper.client.tui import ChatApp
from bleeper.client.tui.app import NameScreen
from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import LineClient, create_accounts, free_port, server_process


async def until(pilot: Pilot[object], predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


def shown(app: ChatApp) -> str:
    return "\n".join(strip.text for strip in app.messages.lines)


async def next_message(client: ChatClient) -> Message:
    while True:
        event = await client.next_event(5)
        if isinstance(event, Message):
            return event


async def person(server: ChatServer, name: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port_of(server))
    await client.connect()
    await client.register(name)
    return client


async def sign_in(pilot: Pilot[object], app: ChatApp, name: str) -> None:
    await until(pilot, lambda: isinstance(app.screen, NameScreen))
    await pilot.press(*name, "enter")
    await until(pilot, lambda: app.client.name is not None)
    await until(pilot, lambda: "lists commands" in shown(app))


async def test_two_users_chat(server: ChatServer) -> None:
    bob = await person(server, "bob")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await sign_in(pilot, app, "alice")
        await until(pilot, lambda: "bob" in app.people)

        await bob.say("morning everyone")
        await bob.tell("alice", "can you see bed 4?")
        await until(pilot, lambda: "can you see bed 4?" in shown(app))
        assert "bob: morning everyone" in shown(app)
        assert "bob → private: can you see bed 4?" in shown(app)

        await pilot.press(*"on my way", "enter")
        message = await next_message(bob)
        assert (message.sender, message.to, message.text) == ("alice", "*", "on my way")
        await until(pilot, lambda: "you: on my way" in shown(app))

        await pilot.press(*"/tell bob privately", "enter")
        assert (await next_message(bob)).to == "@bob"

        await pilot.press(*"/join #icu", "enter")
        await until(pilot, lambda: "#icu" in app.known_groups)
        await pilot.press(*"/switch #icu", "enter")
        await until(pilot, lambda: app.current == "#icu")
        await bob.join("#icu")
        await pilot.press(*"team update", "enter")
        message = await next_message(bob)
        assert (message.to, message.text) == ("#icu", "team update")

        await bob.tell("alice", "\x1b[2Jsneaky")  # escape sequences never reach the screen
        await until(pilot, lambda: "sneaky" in shown(app))
        assert "\x1b" not in shown(app)
    await bob.quit()


async def test_name_taken_asks_again_with_the_suggestion(server: ChatServer) -> None:
    holder = await person(server, "alice")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, NameScreen))
        await pilot.press(*"Alice", "enter")
        await until(pilot, lambda: isinstance(app.screen, NameScreen) and "taken" in app.screen.message)
        screen = app.screen
        assert isinstance(screen, NameScreen) and screen.default == "Alice2"
        await pilot.press("enter")
        await until(pilot, lambda: app.client.name == "Alice2")
    await holder.quit()


async def test_tab_completion_and_history(server: ChatServer) -> None:
    carol = await person(server, "carolyn")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(120, 30)) as pilot:
        await sign_in(pilot, app, "dave")
        await until(pilot, lambda: "carolyn" in app.people)
        await pilot.press(*"/te", "tab")
        await pilot.press(*"car", "tab")
        box = app.query_one("#input")
        assert box.value == "/tell carolyn "  # type: ignore[attr-defined]
        await pilot.press(*"hello", "enter")
        assert (await next_message(carol)).text == "hello"
        await pilot.press("up")
        assert box.value == "/tell carolyn hello"  # type: ignore[attr-defined]
    await carol.quit()


async def test_screenshot_for_the_docs(server: ChatServer) -> None:
    """With BLEEPER_SCREENSHOTS=docs/images, saves the README's picture of a realistic conversation."""
    folder = os.environ.get("BLEEPER_SCREENSHOTS")
    if not folder:
        return
    nurse = await person(server, "nurse.kim")
    doctor = await person(server, "dr.okafor")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(110, 26)) as pilot:
        await sign_in(pilot, app, "dr.smith")
        await pilot.press(*"/join #icu", "enter")
        for client in (nurse, doctor):
            await client.join("#icu")
        await nurse.tell("#icu", "Bed 4: BP 85/50, started fluids. Can someone review?")
        await pilot.press(*"/switch #icu", "enter")
        await pilot.press(*"On my way, 5 minutes.", "enter")
        await doctor.tell("#icu", "I'll bring the echo machine.")
        await nurse.tell("dr.smith", "Family of bed 4 are asking for you.")
        await doctor.say("Handover moved to 08:15 today.")
        await until(pilot, lambda: "08:15" in shown(app))
        app.save_screenshot("tui.svg", folder)
    await nurse.quit()
    await doctor.quit()


async def test_quit_waits_for_the_servers_goodbye(server: ChatServer) -> None:
    watcher = await person(server, "watcher")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await sign_in(pilot, app, "erin")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: app.return_code is not None)
        assert app.client.state == "closed"
    assert app.return_code == 0
    while True:
        event = await watcher.next_event(5)
        if isinstance(event, Event) and event.kind == "OFFLINE":
            assert event.args[:2] == ("erin", "quit")
            break
    assert not server.hub.registry.online("erin")
    await watcher.quit()


def test_screenshot_is_in_the_docs() -> None:
    assert (Path(__file__).parent.parent / "docs" / "images" / "tui.svg").is_file()


class BellCountingApp(ChatApp):
    bells = 0

    def bell(self) -> None:
        self.bells += 1


async def test_bell_on_private_messages_only(server: ChatServer) -> None:
    bob = await person(server, "bob")
    app = BellCountingApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await sign_in(pilot, app, "frank")
        await bob.say("for everyone")
        await bob.tell("frank", "just for you")
        await until(pilot, lambda: "just for you" in shown(app))
        assert app.bells == 1
    await bob.quit()


async def test_reconnects_by_itself_and_says_so() -> None:
    port = free_port()
    first = ChatServer(make_config(port=port))
    await first.start()
    app = ChatApp("127.0.0.1", port)
    app.client.backoff = (0.05, 0.5)
    try:
        async with app.run_test(size=(200, 40)) as pilot:
            await sign_in(pilot, app, "gina")
            await pilot.press(*"/join #icu", "enter")
            await until(pilot, lambda: "#icu joined" in shown(app))
            await first.stop(grace=0.5)
            await until(pilot, lambda: "reconnecting" in shown(app) and app.connection == "reconnecting")
            second = ChatServer(make_config(port=port))
            await second.start()
            try:
                await until(pilot, lambda: "reconnected" in shown(app), timeout=10)
                assert app.connection == "connected" and second.hub.registry.online("gina")
                assert str(app.query_one("#status").render()).startswith("connected · gina @ ")
                assert "not kept for names without an account" in shown(app)  # never "nothing was missed"
                assert "nothing was missed" not in shown(app)
                nurse = await person(second, "nurse")
                await nurse.tell("#icu", "bed 2 needs you")  # the group is back: gina rejoined it
                await until(pilot, lambda: "bed 2 needs you" in shown(app))
                await nurse.close()
            finally:
                await second.stop(grace=0.5)
    finally:
        await first.stop(grace=0.5)


async def test_an_account_sees_a_message_once_after_a_crash_and_hears_nothing_was_missed(tmp_path: Path) -> None:
    db = await create_accounts(str(tmp_path / "tui.db"), "dr.lee", "ward7")
    port = free_port()
    app = ChatApp("127.0.0.1", port, "dr.lee", login=True)
    app.client.backoff = (0.05, 0.3)
    with server_process("--db", db, port=port) as (proc, _):
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, NameScreen) and app.screen.secret)
            await pilot.press(*"dr.lee-password", "enter")
            await until(pilot, lambda: app.client.logged_in)
            ward = await LineClient.connect(port)
            assert (await ward.command("LOGIN ward7 ward7-password")).code == 202
            assert (await ward.command("TELL dr.lee bed 9 results are back")).code == 250
            await until(pilot, lambda: "bed 9 results are back" in shown(app))
            proc.kill()  # before the server wrote down that it was delivered
            proc.wait()
            with server_process("--db", db, port=port):
                await until(pilot, lambda: "reconnected" in shown(app), timeout=15)
                assert app.client.repeats == 1  # sent again by the new server, dropped by the client
                assert shown(app).count("bed 9 results are back") == 1
                assert "nothing was missed" in shown(app)


async def test_login_to_an_account_brings_waiting_messages(tmp_path: Path) -> None:
    db = await create_accounts(str(tmp_path / "tui.db"), "dr.lee")
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        sender = await person(server, "ward7")
        await sender.tell("dr.lee", "bed 9 results are back")  # dr.lee is offline: it waits
        app = ChatApp("127.0.0.1", port_of(server), "dr.lee", login=True)
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, NameScreen) and app.screen.secret)
            await pilot.press(*"wrong-password", "enter")
            await until(pilot, lambda: isinstance(app.screen, NameScreen) and "login failed" in app.screen.message)
            await pilot.press(*"dr.lee", "enter")
            await until(pilot, lambda: isinstance(app.screen, NameScreen) and app.screen.secret)
            await pilot.press(*"dr.lee-password", "enter")
            await until(pilot, lambda: "bed 9 results are back" in shown(app))
            assert app.client.logged_in and app.client.name == "dr.lee"
        await sender.quit()
    finally:
        await server.stop(grace=0.5)


async def test_urgent_messages_stand_out_and_ctrl_a_acknowledges_them(start_server) -> None:  # type: ignore[no-untyped-def]
    server = await start_server(urgent_interval=60)
    ward = await person(server, "ward7")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await sign_in(pilot, app, "dr.ito")
        sent = await ward.command("URGENT dr.ito bed 4 sats 84%")
        msg_id = int(sent.text.split()[0])
        await until(pilot, lambda: f"URGENT {msg_id}: bed 4 sats 84%" in shown(app))
        assert app.unacknowledged == [msg_id]
        assert "1 urgent to acknowledge: Ctrl+A" in str(app.query_one("#status").render())
        await pilot.press("ctrl+a")
        await until(pilot, lambda: not app.unacknowledged and "acknowledged; ward7 is told" in shown(app))
        kinds = []
        while not {"READ", "ACKED"} <= set(kinds):  # the app reported it read, then acknowledged it
            event = await ward.next_event(5)
            kinds.append(getattr(event, "kind", ""))
        await pilot.press("ctrl+a")
        await until(pilot, lambda: "no urgent message is waiting" in shown(app))
    await ward.close()


async def test_receipts_show_as_marks(server: ChatServer) -> None:
    bob = await person(server, "bob")
    app = ChatApp("127.0.0.1", port_of(server))
    async with app.run_test(size=(200, 40)) as pilot:
        await sign_in(pilot, app, "alice")
        await pilot.press(*"/tell bob are you free?", "enter")
        received = await next_message(bob)
        await until(pilot, lambda: f"✓ message {received.id} delivered to bob" in shown(app))
        await bob.command(f"READ {received.id}")
        await until(pilot, lambda: f"✓✓ message {received.id} read by bob" in shown(app))
    await bob.close()
