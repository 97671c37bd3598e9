"""``bleeper browse URL``: the interactive browser (Textual).

An address bar, the page, and a status line (HTTP status, type, size, the selected link's target). Links are
numbered like ``[3]``: type the number and press Enter, or move to a link with Tab and press Enter. Pages are
fetched in a worker thread so the screen stays responsive, and re-rendered to the window's width on resize.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from bleeper.browser.fetch import Document, FetchError, fetch, make_client, normalise_url, size_text
from bleeper.browser.render import CURSOR, MARK, STYLES, Line, Page, render_html
from bleeper.browser.view import page_for

START_PAGE = """<title>bleeper browse</title><h1>bleeper browse</h1>
<p>Open a page: press <strong>g</strong> (or Ctrl+L), type an address and press Enter.</p>
<table><tr><th>Key<th>Does</tr>
<tr><td>1 2 3 … Enter<td>follow the link with that number</tr>
<tr><td>Tab, Shift+Tab<td>select the next or previous link; Enter follows it</tr>
<tr><td>b, Backspace / f<td>back / forward</tr>
<tr><td>r<td>reload</tr>
<tr><td>g, Ctrl+L<td>open another address</tr>
<tr><td>/ then n, N<td>find in the page, next and previous match</tr>
<tr><td>↑ ↓, PgUp PgDn, Space, Home End<td>scroll</tr>
<tr><td>s<td>save what this address holds to a file</tr>
<tr><td>q<td>quit</tr></table>"""


def rich_style(bits: int, cache: dict[int, Style] = {}) -> Style:  # noqa: B006 - a deliberate shared cache
    style = cache.get(bits)
    if style is None:
        style = cache[bits] = Style.parse(" ".join(name for bit, _, name in STYLES if bits & bit) or "none")
    return style


def highlight(line: Line, term: str) -> Line:
    """*line* with every case-insensitive occurrence of *term* marked."""
    text = "".join(piece for piece, _, _ in line)
    hits = [(m.start(), m.end()) for m in re.finditer(re.escape(term), text, re.I)]
    if not hits:
        return line
    out: Line = []
    position = 0
    for piece, style, link in line:
        end = position + len(piece)
        cuts = sorted({position, end, *(x for hit in hits for x in hit if position < x < end)})
        for low, high in itertools.pairwise(cuts):
            marked = any(start <= low and high <= stop for start, stop in hits)
            out.append((piece[low - position : high - position], style | (MARK if marked else 0), link))
        position = end
    return out


class PageView(ScrollView, can_focus=True):
    """The rendered page, drawn line by line (Textual's line API), so long pages cost only what is visible."""

    DEFAULT_CSS = "PageView { height: 1fr; background: $surface; }"

    def __init__(self) -> None:
        super().__init__(id="page")
        self.page = Page("", [], [])
        self.cursor = 0  # the selected link's number (0: none)
        self.find = ""
        self.link_lines: dict[int, int] = {}

    class Resized(Message):
        """The view has its new size (the app's own resize can come before layout gives it that)."""

    def on_resize(self) -> None:
        self.post_message(self.Resized())

    def show(self, page: Page) -> None:
        self.page = page
        self.cursor = 0
        self.link_lines = {}
        for number, line in enumerate(page.lines):
            for _, _, link in line:
                if link and link not in self.link_lines:
                    self.link_lines[link] = number
        width = max((sum(len(piece) for piece, _, _ in line) for line in page.lines), default=0)
        self.virtual_size = Size(width, len(page.lines))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        number = scroll_y + y
        width = self.size.width
        if number >= len(self.page.lines):
            return Strip.blank(width)
        line = self.page.lines[number]
        if self.find:
            line = highlight(line, self.find)
        segments = [Segment(piece, rich_style(style | (CURSOR if link and link == self.cursor else 0)))
                    for piece, style, link in line]  # fmt: skip
        return Strip(segments).crop_extend(scroll_x, scroll_x + width, None)


@dataclass
class Visit:
    url: str
    scroll: float = 0.0


class BrowserApp(App[None]):
    TITLE = "bleeper browse"
    CSS = """
    #address { dock: top; }
    #prompt { dock: bottom; display: none; }
    #prompt.shown { display: block; }
    #status { dock: bottom; height: 1; background: $panel; color: $text; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("g,ctrl+l", "open", "open address"),
        Binding("b,backspace,alt+left", "go_back", "back"),
        Binding("f,alt+right", "forward", "forward"),
        Binding("r,ctrl+r", "reload", "reload"),
        Binding("tab", "next_link", "next link", priority=True),
        Binding("shift+tab", "previous_link", "previous link", priority=True),
        Binding("enter", "follow", "follow"),
        Binding("slash", "find", "find"),
        Binding("n", "find_next(1)", "next match"),
        Binding("N", "find_next(-1)", "previous match"),
        Binding("s", "save", "save"),
        Binding("escape", "cancel", "cancel", show=False),
        Binding("space", "page_down", "page down", show=False),
        *(Binding(str(digit), f"digit({digit})", show=False) for digit in range(10)),
    ]

    def __init__(self, url: str | None = None, *, timeout: float = 20.0) -> None:
        super().__init__()
        self.start_url = url
        self.timeout = timeout
        self.history: list[Visit] = []
        self.position = -1
        self.document: Document | None = None
        self.typed = ""
        self.prompting = ""  # "find" while the bottom input asks for a search term
        self.match_line = -1
        self.status_text = ""
        self._http = make_client(timeout)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="address: type a URL and press Enter", id="address")
        yield PageView()
        yield Input(id="prompt")
        yield Static("", id="status")

    @property
    def view(self) -> PageView:
        return self.query_one(PageView)

    def on_mount(self) -> None:
        self.view.focus()
        if self.start_url:
            self.go(normalise_url(self.start_url))
        else:
            self.view.show(render_html(START_PAGE, "about:start", self._width()))
            self.set_status("press g to open an address, q to quit")

    def on_unmount(self) -> None:
        self._http.close()

    def _width(self) -> int:
        return max(self.view.size.width - 2, 20) if self.view.size.width else 78

    def on_page_view_resized(self) -> None:
        if self.document is not None:
            cursor, scroll = self.view.cursor, self.view.scroll_y
            self.view.show(page_for(self.document, self._width()))
            self.view.cursor = cursor
            self.view.scroll_to(y=scroll, animate=False)

    # -- status --------------------------------------------------------------------------------------------

    def set_status(self, text: str) -> None:
        self.status_text = text
        self.query_one("#status", Static).update(text)

    def describe_document(self) -> str:
        document = self.document
        if document is None:
            return ""
        parts = [f"{document.status} {document.reason}".strip() if document.status else "error",
                 document.media_type, size_text(len(document.body))]  # fmt: skip
        view = self.view
        if view.cursor:
            parts.append(f"[{view.cursor}] {view.page.links[view.cursor - 1]}")
        elif view.page.links:
            parts.append(f"{len(view.page.links)} links")
        return " · ".join(parts)

    def refresh_status(self) -> None:
        self.set_status(self.describe_document())

    # -- navigation ----------------------------------------------------------------------------------------

    def go(self, url: str, *, remember: bool = True) -> None:
        current = self.history[self.position] if 0 <= self.position < len(self.history) else None
        if remember:
            if current is not None:
                current.scroll = self.view.scroll_y
            if self._same_document(url) and urlsplit(url).fragment:  # a jump within this page
                self._push(url)
                self._jump(urlsplit(url).fragment)
                return
            self._push(url)
        self.query_one("#address", Input).value = url
        self.set_status(f"loading {url} …")
        self.load(url)

    def _push(self, url: str) -> None:
        del self.history[self.position + 1 :]
        self.history.append(Visit(url))
        self.position = len(self.history) - 1
        self.query_one("#address", Input).value = url

    def _same_document(self, url: str) -> bool:
        return self.document is not None and url.split("#", 1)[0] == self.document.url.split("#", 1)[0]

    @work(thread=True, exclusive=True, group="load")
    def load(self, url: str) -> None:
        try:
            document = fetch(url, self._http, timeout=self.timeout)
        except FetchError as exc:
            document = Document(url, 0, exc.title, "text/html", "utf-8", exc.as_html().encode())
        page = page_for(document, self._width())
        self.call_from_thread(self.loaded, url, document, page)

    def loaded(self, url: str, document: Document, page: Page) -> None:
        self.document = document
        self.view.show(page)
        self.match_line = -1
        visit = self.history[self.position] if 0 <= self.position < len(self.history) else None
        if document.url != url.split("#", 1)[0] and visit is not None and visit.url == url:  # redirected
            fragment = urlsplit(url).fragment
            visit.url = document.url + (f"#{fragment}" if fragment else "")
            self.query_one("#address", Input).value = visit.url
        self.title = page.title or document.url
        fragment = urlsplit(url).fragment
        self.view.scroll_to(y=visit.scroll if visit else 0, animate=False)
        if fragment:
            self._jump(fragment)
        self.refresh_status()
        if document.status == 0:
            self.set_status(f"error: {document.reason} · {url}")

    def _jump(self, fragment: str) -> None:
        line = self.view.page.anchors.get(unquote(fragment))
        if line is not None:
            self.view.scroll_to(y=line, animate=False)

    def follow(self, number: int) -> None:
        links = self.view.page.links
        if not 1 <= number <= len(links):
            self.set_status(f"there is no link {number} on this page (1-{len(links)})" if links else "no links here")
            return
        target = links[number - 1]
        if urlsplit(target).scheme not in ("http", "https", "file"):
            self.set_status(f"cannot open {urlsplit(target).scheme}: links ({target})")
            return
        self.go(target)

    def action_go_back(self) -> None:
        if self.position <= 0:
            self.set_status("no earlier page")
            return
        self._move(-1)

    def action_forward(self) -> None:
        if self.position >= len(self.history) - 1:
            self.set_status("no later page")
            return
        self._move(1)

    def _move(self, step: int) -> None:
        self.history[self.position].scroll = self.view.scroll_y
        self.position += step
        visit = self.history[self.position]
        self.query_one("#address", Input).value = visit.url
        if self._same_document(visit.url):
            self.view.scroll_to(y=visit.scroll, animate=False)
            self.refresh_status()
            return
        self.set_status(f"loading {visit.url} …")
        self.load(visit.url)

    def action_reload(self) -> None:
        if 0 <= self.position < len(self.history):
            self.history[self.position].scroll = self.view.scroll_y
            self.load(self.history[self.position].url)

    def action_open(self) -> None:
        address = self.query_one("#address", Input)
        address.focus()
        address.action_select_all()

    @on(Input.Submitted, "#address")
    def address_entered(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.view.focus()
        if text:  # "#part" or "?query" are relative to this page; anything else is an address of its own
            relative = text.startswith(("#", "?")) and self.document is not None
            self.go(normalise_url(text, self.document.url if relative and self.document else None))

    # -- links ---------------------------------------------------------------------------------------------

    def action_digit(self, digit: int) -> None:
        self.typed = (self.typed + str(digit))[-6:]
        self.set_status(f"follow link {self.typed}_  (Enter to follow, Esc to cancel)")

    def action_cancel(self) -> None:
        self.typed = ""
        if self.prompting:
            self._close_prompt()
        elif self.focused is not self.view:
            self.view.focus()
        self.refresh_status()

    def action_follow(self) -> None:
        if self.typed:
            number, self.typed = int(self.typed), ""
            self.follow(number)
        elif self.view.cursor:
            self.follow(self.view.cursor)

    def _select(self, step: int) -> None:
        view = self.view
        numbers = sorted(view.link_lines)
        if not numbers:
            self.set_status("no links on this page")
            return
        top, bottom = view.scroll_y, view.scroll_y + view.size.height
        if view.cursor in view.link_lines and top <= view.link_lines[view.cursor] < bottom:
            index = numbers.index(view.cursor) + step
        else:  # start from what is on screen
            visible = [n for n in numbers if top <= view.link_lines[n] < bottom]
            index = numbers.index(visible[0 if step > 0 else -1]) if visible else 0
        view.cursor = numbers[index % len(numbers)]
        line = view.link_lines[view.cursor]
        if not top <= line < bottom:
            view.scroll_to(y=max(line - view.size.height // 3, 0), animate=False)
        view.refresh()
        self.refresh_status()

    def action_next_link(self) -> None:
        if self.focused is self.view:
            self._select(1)
        else:
            self.screen.focus_next()

    def action_previous_link(self) -> None:
        if self.focused is self.view:
            self._select(-1)
        else:
            self.screen.focus_previous()

    def action_page_down(self) -> None:
        self.view.scroll_page_down(animate=False)

    # -- find ----------------------------------------------------------------------------------------------

    def action_find(self) -> None:
        prompt = self.query_one("#prompt", Input)
        self.prompting = "find"
        prompt.placeholder = "find in page: type and press Enter (Esc cancels)"
        prompt.value = self.view.find
        prompt.add_class("shown")
        prompt.focus()

    def _close_prompt(self) -> None:
        self.prompting = ""
        self.query_one("#prompt", Input).remove_class("shown")
        self.view.focus()

    @on(Input.Submitted, "#prompt")
    def prompt_entered(self, event: Input.Submitted) -> None:
        self._close_prompt()
        self.view.find = event.value
        self.match_line = int(self.view.scroll_y) - 1
        self.view.refresh()
        if event.value:
            self.action_find_next(1)
        else:
            self.refresh_status()

    def action_find_next(self, step: int) -> None:
        view = self.view
        if not view.find:
            self.set_status("nothing to find: press / first")
            return
        lines = view.page.lines
        term = view.find.lower()
        count = len(lines)
        start = self.match_line if self.match_line >= 0 else int(view.scroll_y)
        for offset in range(1, count + 1):
            number = (start + step * offset) % count
            if term in "".join(piece for piece, _, _ in lines[number]).lower():
                self.match_line = number
                view.scroll_to(y=max(number - 2, 0), animate=False)
                view.refresh()
                self.set_status(f"“{view.find}” on line {number + 1} of {count} (n: next, N: previous)")
                return
        self.set_status(f"“{view.find}” is not on this page")

    # -- saving --------------------------------------------------------------------------------------------

    def action_save(self) -> None:
        document = self.document
        if document is None or not document.body:
            self.set_status("nothing to save")
            return
        name = Path(unquote(urlsplit(document.url).path)).name or "index.html"
        target = Path(name)
        counter = 1
        while target.exists():
            target = Path(f"{Path(name).stem}-{counter}{Path(name).suffix}")
            counter += 1
        target.write_bytes(document.body)
        self.set_status(f"saved {size_text(len(document.body))} to {target.resolve()}")
