"""``bleeper chat``: a Textual app with a message pane, a conversation list, an input line and a status bar.

Input and output are separate widgets, so a message arriving while you type never garbles your line.
Everything from the wire is shown as plain text (never markup) after control characters are removed.
"""

from __future__ import annotations

import contextlib
import ssl as ssl_module
from collections.abc import Sequence
from zlib import crc32

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, ListItem, ListView, RichLog, Static

from bleeper.client.errors import (
    BleeperError,
    CommandError,
    ConnectionClosed,
    LoginFailed,
    NameTaken,
    NotConnected,
    RateLimited,
)
from bleeper.client.events import ClientEvent, Connected, Disconnected, Event, Message
from bleeper.client.input import EVERYONE, QuitChat, Switch, complete, conversation_label, interpret
from bleeper.client.library import ChatClient
from bleeper.client.plain import perform
from bleeper.client.render import Line, event_line, notice

SENDER_COLOURS = ["cyan", "magenta", "yellow", "bright_blue", "bright_magenta", "bright_cyan", "orange3", "plum2"]


def sender_style(name: str) -> str:
    return SENDER_COLOURS[crc32(name.lower().encode()) % len(SENDER_COLOURS)]


def styled(line: Line) -> Text:
    text = Text(no_wrap=False)
    text.append(f"{line.time} ", style="dim")
    if line.kind == "notice":
        text.append(f"* {line.text}", style="italic dim")
        return text
    if line.kind == "error":
        text.append(f"! {line.text}", style="bold red")
        return text
    if line.kind == "urgent":  # cannot be missed: white on red, the whole line
        where = f" → {line.where}" if line.where else ""
        text.append(f" {line.sender}{where}: {line.text} ", style="bold white on red")
        return text
    if line.kind == "own":
        text.append("you", style="bold green")
    else:
        text.append(line.sender, style=f"bold {sender_style(line.sender)}")
    if line.where:
        text.append(f" → {line.where}", style="bold magenta" if line.kind == "private" else "cyan")
    text.append(": ")
    text.append(line.text, style="reverse" if line.kind == "private" else "")
    return text


class NameScreen(ModalScreen[str]):
    """Asks for a screen name (shown again, with the server's suggestion, while the name is taken), or for an
    account's password (``secret``)."""

    DEFAULT_CSS = """
    NameScreen { align: center middle; }
    #name-box { width: 60; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    #name-message { margin-bottom: 1; }
    """

    def __init__(self, message: str, default: str = "", *, secret: bool = False) -> None:
        super().__init__()
        self.message = message
        self.default = default
        self.secret = secret

    def compose(self) -> ComposeResult:
        with Vertical(id="name-box"):
            yield Label(self.message, id="name-message")
            placeholder = "password" if self.secret else "your screen name"
            yield Input(value=self.default, placeholder=placeholder, password=self.secret, id="name-input")

    @on(Input.Submitted)
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())


class ChatInput(Input):
    """The input line: Tab completes names, groups and commands; Up and Down walk the history."""

    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False, priority=True),
        Binding("up", "history(-1)", "Previous", show=False),
        Binding("down", "history(1)", "Next", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history: list[str] = []
        self.position = 0

    def remember(self, line: str) -> None:
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self.position = len(self.history)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self.position = max(0, min(len(self.history), self.position + step))
        self.value = self.history[self.position] if self.position < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_complete(self) -> None:
        app = self.app
        if isinstance(app, ChatApp):
            self.value = complete(self.value, sorted(app.people), sorted(app.known_groups))
            self.cursor_position = len(self.value)


class ChatApp(App[int]):
    """The chat client. ``ChatApp(host, port, name).run()``."""

    TITLE = "Bleeper"
    CSS = """
    #body { height: 1fr; }
    #sidebar { width: 28; border-right: solid $primary; }
    #sidebar-title { padding: 0 1; text-style: bold; }
    #conversations { height: 1fr; }
    #messages { height: 1fr; padding: 0 1; }
    #input { dock: bottom; }
    #status { height: 1; background: $primary; color: $text; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+q", "quit_chat", "Quit", priority=True),
        Binding("ctrl+o", "focus_sidebar", "Conversations"),
        Binding("ctrl+a", "acknowledge", "Acknowledge urgent", priority=True),
    ]

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8090,
        name: str | None = None,
        *,
        login: bool = False,
        ssl: ssl_module.SSLContext | None = None,
        servers: Sequence[tuple[str, int]] = (),
    ) -> None:
        super().__init__()
        self.client = ChatClient(host, port, ssl=ssl, servers=servers)
        self.initial_name = name
        self.login = login
        self.current = EVERYONE
        self.people: dict[str, tuple[str, ...]] = {}
        self.known_groups: set[str] = set()
        self.unacknowledged: list[int] = []  # urgent messages to us, oldest first: Ctrl+A acknowledges
        self.connection = "connecting"
        self.quitting = False

    # -- layout -------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                yield Label("Conversations", id="sidebar-title")
                yield ListView(id="conversations")
            with Vertical():
                yield RichLog(id="messages", wrap=True, markup=False, highlight=False, auto_scroll=True)
                yield ChatInput(placeholder="message everyone, or /help", id="input")
        yield Static(id="status")

    def on_mount(self) -> None:
        self.update_status()
        self.start()

    @property
    def messages(self) -> RichLog:
        return self.query_one("#messages", RichLog)

    def show(self, item: str | Line) -> None:
        self.messages.write(styled(item if isinstance(item, Line) else notice(item.lstrip("* "))))

    def update_status(self) -> None:
        who = self.client.name or "no name yet"
        text = f"{self.connection} · {who} @ {self.client.server} · talking to {conversation_label(self.current)}"
        if self.unacknowledged:
            text += f" · ⚠ {len(self.unacknowledged)} urgent to acknowledge: Ctrl+A"
        self.query_one("#status", Static).update(Text(text))
        self.query_one("#input", ChatInput).placeholder = f"message {conversation_label(self.current)}, or /help"

    def refresh_sidebar(self) -> None:
        view = self.query_one("#conversations", ListView)
        view.clear()
        entries = [(EVERYONE, "everyone")]
        entries += [(group, group) for group in sorted(self.known_groups, key=str.lower)]
        me = (self.client.name or "").lower()
        for name in sorted(self.people, key=str.lower):
            if name.lower() == me:
                continue
            groups = " ".join(self.people[name])
            entries.append((name, f"{name}  {groups}".rstrip()))
        for index, (target, label) in enumerate(entries):
            marker = "▶ " if target == self.current else "  "
            item = ListItem(Label(Text(marker + label)))
            item.target = target  # type: ignore[attr-defined]
            view.append(item)
            if target == self.current:
                view.index = index

    # -- start-up -----------------------------------------------------------------------------------------

    @work(exclusive=True, group="start")
    async def start(self) -> None:
        try:
            await self.client.connect()
        except BleeperError as exc:
            self.connection = "offline"
            self.show(notice(str(exc), "error"))
            self.update_status()
            return
        self.connection = "connected"
        self.update_status()
        if self.login:
            await self.sign_in()
        message, default, ask = "Choose your screen name", self.initial_name or "", not self.initial_name
        while self.client.name is None:
            if ask:
                default = await self.push_screen_wait(NameScreen(message, default))
            try:
                await self.client.register(default)
            except NameTaken as taken:
                message = f'"{default}" is taken. Press Enter for "{taken.suggestion}" or type another name.'
                default, ask = taken.suggestion, True
            except CommandError as exc:
                message, default, ask = exc.reply.text, "", True
        self.show(f"you are {self.client.name}. Type to talk to everyone; /help lists commands; Ctrl+Q quits.")
        await self.reload_people()
        self.update_status()
        self.query_one("#input", ChatInput).focus()
        self.pump_events()

    async def sign_in(self) -> None:
        """Log in to an account: messages that waited arrive as soon as it succeeds."""
        name = self.initial_name or ""
        message = "Account name"
        while not self.client.logged_in:
            if not name:
                name = await self.push_screen_wait(NameScreen(message))
            password = await self.push_screen_wait(NameScreen(f"Password for {name}", secret=True))
            try:
                await self.client.login(name, password)
            except (LoginFailed, RateLimited) as exc:
                message = f"{exc.reply.text}. Account name"
                name = ""

    async def reload_people(self) -> None:
        try:
            people = await self.client.who()
            groups = await self.client.list_groups()
        except (ConnectionClosed, NotConnected):
            return  # the connection went while asking: the next Connected event asks again
        self.people = {person.name: person.groups for person in people}
        self.known_groups = {group.name for group in groups}
        self.refresh_sidebar()

    # -- events -------------------------------------------------------------------------------------------

    @work(exclusive=True, group="events")
    async def pump_events(self) -> None:
        async for event in self.client.events():
            await self.handle_event(event)

    async def handle_event(self, event: ClientEvent) -> None:
        line = event_line(event, self.client.name)
        if isinstance(event, Connected) and not event.again:
            return
        if line is not None:
            self.show(line)
        if isinstance(event, Message) and (event.urgent or event.to.startswith("@")):
            self.bell()
            self.mark_read(event.id)
            if event.urgent and event.id not in self.unacknowledged:
                self.unacknowledged.append(event.id)
                self.update_status()
        elif isinstance(event, Event) and event.kind == "ACKED" and event.args:
            self.acknowledged(event.args[0])
        elif isinstance(event, Event) and event.kind == "ALERT":
            self.bell()
        elif isinstance(event, Disconnected):
            self.connection = "reconnecting" if event.retrying else "offline"
            self.update_status()
        elif isinstance(event, Connected):
            self.connection = "connected"
            self.update_status()
            await self.reload_people()
        elif isinstance(event, Event):
            self.apply_presence(event)

    def acknowledged(self, message_id: str) -> None:
        if message_id.isdigit() and int(message_id) in self.unacknowledged:
            self.unacknowledged.remove(int(message_id))
            self.update_status()

    @work(group="receipts")
    async def mark_read(self, message_id: int) -> None:
        """Shown on screen is read: tell the sender (READ)."""
        with contextlib.suppress(BleeperError):
            await self.client.command(f"READ {message_id}")

    @work(group="acknowledge")
    async def action_acknowledge(self) -> None:
        if not self.unacknowledged:
            self.show(notice("no urgent message is waiting for you"))
            return
        message_id = self.unacknowledged[0]
        try:
            answer = await self.client.command(f"ACK {message_id}")
        except BleeperError as exc:
            self.show(notice(str(exc), "error"))
            return
        if answer.code in (206, 403, 404):  # done, or nothing left to acknowledge
            self.acknowledged(str(message_id))
        self.show(notice(f"{answer.code} {answer.text}", "notice" if answer.code == 206 else "error"))

    def apply_presence(self, event: Event) -> None:
        args = event.args
        if event.kind == "ONLINE" and args:
            self.people[args[0]] = ()
        elif event.kind == "OFFLINE" and args:
            self.people.pop(args[0], None)
        elif event.kind == "RENAMED" and len(args) >= 2:
            self.people[args[1]] = self.people.pop(args[0], ())
        elif event.kind == "JOIN" and len(args) >= 2:
            self.known_groups.add(args[0])
            self.people[args[1]] = (*self.people.get(args[1], ()), args[0])
        elif event.kind == "LEAVE" and len(args) >= 2:
            self.people[args[1]] = tuple(g for g in self.people.get(args[1], ()) if g.lower() != args[0].lower())
        else:
            return
        self.refresh_sidebar()

    # -- input --------------------------------------------------------------------------------------------

    @on(Input.Submitted, "#input")
    def submitted(self, event: Input.Submitted) -> None:
        box = self.query_one("#input", ChatInput)
        box.remember(event.value)
        box.value = ""
        self.act(interpret(event.value, self.current))

    @work(group="commands")
    async def act(self, action: object) -> None:
        if self.client.name is None:
            return
        try:
            current, stopped = await perform(self.client, action, self.current, self.show)
        except BleeperError as exc:
            self.show(notice(str(exc), "error"))
            return
        if current != self.current or isinstance(action, Switch):
            self.current = current
            self.refresh_sidebar()
            self.update_status()
        if stopped:
            self.exit(0)
            return
        line = getattr(action, "line", "")
        if line.split(" ")[0] in ("JOIN", "LEAVE"):
            await self.reload_people()

    @on(ListView.Selected, "#conversations")
    def chosen(self, event: ListView.Selected) -> None:
        target = getattr(event.item, "target", None)
        if target is not None:
            self.act(Switch(target))
            self.query_one("#input", ChatInput).focus()

    def action_focus_sidebar(self) -> None:
        self.query_one("#conversations", ListView).focus()

    async def action_quit_chat(self) -> None:
        if self.quitting:
            return
        self.quitting = True
        if self.client.name is None or self.client.state != "connected":
            self.client._shutdown("quit before signing in")
            self.exit(0)
            return
        self.act(QuitChat(""))
