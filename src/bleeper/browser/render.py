"""HTML to styled lines for a terminal: the title, headings, wrapped paragraphs, numbered links, lists,
quotes, preformatted text, tables in columns, images as ``[alt]`` and forms as read-only fields.

Pure: a string of HTML and a width in, a :class:`Page` out (lines of styled spans plus the numbered link
targets). Parsing is selectolax's Lexbor engine, a real HTML5 parser, so broken markup is repaired the way
browsers repair it. Output styles are bit flags, turned into ANSI codes (``output.py``) or Rich styles (the
interactive app) by the caller. With ``marks``, emphasis is also written into the text (``*em*``,
``**strong**``, `` `code` ``), so plain output still shows it.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from bleeper.browser.links import Resolver

BOLD, ITALIC, UNDERLINE, CODE, LINK, NUMBER, DIM, HEADING, TITLE, FIELD, STRIKE, MARK, CURSOR, QUOTE = (
    1 << n for n in range(14)
)

# How each style bit looks: SGR parameters for --dump, a Rich style for the app. Later entries win where they
# clash (a link in a heading is still a link).
STYLES = ((BOLD, "1", "bold"), (DIM, "2", "dim"), (ITALIC, "3", "italic"), (UNDERLINE, "4", "underline"),
          (STRIKE, "9", "strike"), (CODE, "33", "yellow"), (HEADING, "35", "magenta"), (TITLE, "1;36", "bold cyan"),
          (FIELD, "7", "reverse"), (LINK, "4;34", "underline bright_blue"), (NUMBER, "36", "cyan"),
          (MARK, "30;43", "black on yellow"), (CURSOR, "7", "reverse bold"),
          (QUOTE, "100", "on bright_black"))  # fmt: skip

Span = tuple[str, int, int]  # text, style bits, link number (0: none)
Line = list[Span]

SPACES = re.compile(r"[ \t\n\r\f]+")
CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
NO_CONTROLS = dict.fromkeys([*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
# Text made only of these characters takes one column per character (a unit test checks each against
# cell_width), so lines of it can be broken with plain string search: Latin, Greek, Cyrillic, punctuation,
# arrows, mathematical and technical symbols, box drawing.
NARROW = re.compile("[\u0020-\u007e\u00a0-\u02ff\u0370-\u0482\u048a-\u0590\u2010-\u2029\u202f-\u205f"
                    "\u2070-\u20cf\u2100-\u2319\u232b-\u23e8\u2460-\u25fc]*")  # fmt: skip
HIDDEN = frozenset({"head", "script", "style", "template", "svg", "math", "canvas", "object", "embed", "param",
                    "source", "track", "map", "area", "datalist", "dialog", "title", "meta", "link", "base"})  # fmt: skip
BLOCKS = frozenset({"div", "section", "article", "header", "footer", "nav", "main", "aside", "form", "center",
                    "figure", "address", "hgroup", "search", "fieldset", "noscript", "body", "html", "tbody",
                    "thead", "tfoot", "tr", "details", "menu", "option", "optgroup", "caption", "frameset",
                    "frame", "legend", "summary", "figcaption"})  # fmt: skip
INLINE_STYLES = {"b": BOLD, "strong": BOLD, "i": ITALIC, "em": ITALIC, "cite": ITALIC, "var": ITALIC,
                 "dfn": ITALIC, "u": UNDERLINE, "ins": UNDERLINE, "code": CODE, "kbd": CODE, "samp": CODE,
                 "tt": CODE, "s": STRIKE, "strike": STRIKE, "del": STRIKE, "mark": BOLD}  # fmt: skip
MARKS = {BOLD: "**", ITALIC: "*", CODE: "`"}
BULLETS = ("•", "◦", "▪")
UNBOUNDED = 100_000  # the width used to measure content's natural width


class Page:
    """A rendered page: lines of spans, the link targets (``links[n - 1]`` is link ``[n]``), and the line
    where each ``id`` (a ``#fragment``) starts."""

    __slots__ = ("anchors", "lines", "links", "title")

    def __init__(self, title: str, lines: list[Line], links: list[str], anchors: dict[str, int] | None = None) -> None:
        self.title, self.lines, self.links, self.anchors = title, lines, links, anchors or {}


def cell_width(text: str) -> int:
    """Terminal columns *text* takes: wide East Asian characters take two, combining marks none."""
    if text.isascii() or NARROW.fullmatch(text):
        return len(text)
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in "WF" else 1
    return width


def render_html(html: str, url: str = "", width: int = 80, *, marks: bool = False) -> Page:
    """Render *html* (from *url*, for resolving links) to lines at most *width* columns wide, except
    preformatted text, which is never wrapped."""
    tree = LexborHTMLParser(html)
    base = url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = urljoin(url, (base_node.attributes.get("href") or "").strip())
    title_node = tree.css_first("title")
    title = SPACES.sub(" ", title_node.text()).translate(NO_CONTROLS).strip() if title_node is not None else ""
    shared = _Shared(base, marks)
    for node in tree.css("[hidden], [style*=none i]"):
        style = (node.attributes.get("style") or "").replace(" ", "").lower()
        if "hidden" in node.attributes or "display:none" in style:
            shared.hidden.add(node.mem_id)
            shared.marked[node.mem_id] = ""
    for node in tree.css("[id], a[name]"):
        shared.marked.setdefault(node.mem_id, node.attributes.get("id") or node.attributes.get("name") or "")
    renderer = _Renderer(shared, max(width, 10))
    if title:
        renderer.heading_line(title, TITLE, "═" if not marks else "=")
    root = tree.body or tree.root
    if root is not None:
        renderer.children(root)
    renderer.flush()
    return Page(title, renderer.out, shared.links, shared.anchors)


class _Shared:
    """What every nested renderer of one page shares: link numbers (by node, so measuring a table cell
    before laying it out numbers its links once), anchors and options."""

    def __init__(self, base: str, marks: bool) -> None:
        self.base = base
        self.marks = marks
        self.links: list[str] = []
        self.numbers: dict[int, int] = {}
        self.anchors: dict[str, int] = {}
        self.marked: dict[int, str] = {}  # nodes to look at: hidden ones, and those with an id (anchors)
        self.hidden: set[int] = set()
        self.resolve = Resolver(base)
        self.cells: dict[tuple[int, int], tuple[list[Line], int]] = {}

    def number(self, node: LexborNode, href: str) -> int:
        key = node.mem_id
        number = self.numbers.get(key)
        if number is None:
            self.links.append(self.resolve(href.strip()).translate(NO_CONTROLS))
            number = self.numbers[key] = len(self.links)
        return number


class _Margin:
    """A left margin: *first* before the first line of the block, *rest* before the others. With the style
    ``QUOTE``, only its first column is shaded (a quote's bar); the text is spaces either way, so what a
    reader copies from the terminal is the page's text and never a mark of ours."""

    __slots__ = ("first", "rest", "style", "used")

    def __init__(self, first: str, rest: str, style: int = 0) -> None:
        self.first, self.rest, self.style, self.used = first, rest, style, False


class _Renderer:
    def __init__(self, shared: _Shared, width: int) -> None:
        self.shared = shared
        self.width = width
        self.out: list[Line] = []
        self.margins: list[_Margin] = []
        self.inline: list[Span] = []
        self.space_before = True  # the inline text so far ends with a space (or is empty)
        self.style = 0
        self.link = 0
        self.pre = 0
        self.gap = 0  # blank lines wanted before the next line
        self.lists: list[list[int]] = []  # per open list: [next number, step] (step 0: bullets)
        self.longest_word = 0
        self.open_marks: list[str] = []  # marks (with ``marks``) of the emphasis we are inside
        self.opened = 0  # how many of them are written in the pending inline text
        self.measure = False  # track the longest word (table cells being measured)
        self.narrowest = min(width, 10)  # however deep the margins, keep this much room for text

    # -- output ----------------------------------------------------------------------------------------------

    def _prefix(self) -> tuple[Line, int]:
        spans: Line = []
        used = 0
        for margin in self.margins:
            text = margin.rest if margin.used else margin.first
            margin.used = True
            if not text:
                continue
            if margin.style & QUOTE:
                spans += [(text[:1], margin.style, 0), (text[1:], 0, 0)]
            else:
                spans.append((text, margin.style, 0))
            used += len(text)
        return spans, used

    def _blank(self) -> Line:
        """A blank line inside the open blocks: their margins (shaded bars stay), without trailing spaces."""
        line: Line = []
        for margin in self.margins:
            if margin.used and margin.rest:
                if margin.style & QUOTE:
                    line += [(margin.rest[:1], margin.style, 0), (margin.rest[1:], 0, 0)]
                else:
                    line.append((margin.rest, margin.style, 0))
        while line and not line[-1][1] and not line[-1][0].strip():
            line.pop()
        return line

    def emit(self, content: Line) -> None:
        if self.gap and self.out:
            for _ in range(self.gap):
                self.out.append(self._blank())
        self.gap = 0
        prefix, _ = self._prefix()
        self.out.append(prefix + content if prefix else content)

    def available(self) -> int:
        used = sum(len(m.rest if m.used else m.first) for m in self.margins)
        return max(self.width - used, self.narrowest)

    def want_gap(self, lines: int) -> None:
        self.gap = max(self.gap, lines)

    def flush(self) -> None:
        """Wrap the pending inline content into lines."""
        if not self.inline:
            return
        if self.opened:
            self._close_open_marks()
        spans, self.inline = self.inline, []
        self.space_before = True
        if self.pre:
            self._flush_pre(spans)
        else:
            self._wrap(spans)

    def _flush_pre(self, spans: list[Span]) -> None:
        line: Line = []
        pieces = [(piece.translate(NO_CONTROLS), style, link) for piece, style, link in spans]
        if pieces and pieces[-1][0].endswith("\n"):
            text, style, link = pieces[-1]
            pieces[-1] = (text[:-1], style, link)
        if any(not margin.used and margin.first.strip() for margin in self.margins) and any(
            text.strip() for text, _, _ in pieces
        ):  # a list item's marker on a line of its own, not in front of the code a reader may copy
            self.emit([])
        for text, style, link in pieces:
            parts = text.expandtabs(8).split("\n")
            for index, part in enumerate(parts):
                if index:
                    self.emit(line)
                    line = []
                if part:
                    line.append((part, style, link))
        self.emit(line)

    def _wrap(self, spans: list[Span]) -> None:
        """Greedy wrapping on the joined text (fast string operations), then cut the styled spans at the
        chosen breaks. No-break spaces join words; a word longer than a line is broken."""
        text = "".join([span[0] for span in spans])
        if CONTROLS.search(text):  # never let a page send escape sequences to the terminal
            spans = [(piece.translate(NO_CONTROLS), style, link) for piece, style, link in spans]
            spans = [span for span in spans if span[0]]
            text = "".join([span[0] for span in spans])
        avail = self.available()
        if len(text) <= avail and "\n" not in text and not self.measure and (text.isascii() or NARROW.fullmatch(text)):
            self._cut(spans, text, [(0, len(text))])  # fits on one line: the common case of short blocks
            return
        ranges: list[tuple[int, int]] = []  # [start, end) of each line in text
        offset = 0
        segments = text.split("\n")
        if len(segments) > 1 and not segments[-1]:
            segments.pop()  # a break at the very end adds no empty line
        for segment in segments:
            ascii_only = segment.isascii() or NARROW.fullmatch(segment) is not None  # a column per character
            if self.measure:
                words = segment.split(" ")
                self.longest_word = max(self.longest_word, max(map(len if ascii_only else cell_width, words)))
            if ascii_only:  # find each break with rfind, line by line
                start, end = 0, len(segment)
                while end - start > avail:
                    cut = segment.rfind(" ", start, start + avail + 1)
                    if cut == start:  # a space starting the line
                        start += 1
                    elif cut < start:  # no space: a word longer than a line, broken
                        ranges.append((offset + start, offset + start + avail))
                        start += avail
                    else:
                        ranges.append((offset + start, offset + cut))
                        start = cut + 1
                ranges.append((offset + start, offset + end))
                offset += len(segment) + 1
                continue
            words = segment.split(" ")
            line_start = position = offset
            used = -1  # columns used on this line; -1: no word yet
            for word in words:
                length = len(word)
                narrow = ascii_only or word.isascii()  # one column per character
                size = length if narrow else cell_width(word)
                if used >= 0 and used + 1 + size > avail:
                    ranges.append((line_start, position - 1))  # the space before the word goes
                    line_start, used = position, -1
                if used < 0:
                    if narrow and size > avail:  # longer than a line: break it
                        while length > avail:
                            ranges.append((position, position + avail))
                            position += avail
                            length -= avail
                        line_start = position
                    elif size > avail:  # the same, counting columns character by character
                        taken = 0
                        for index, char in enumerate(word):
                            columns = cell_width(char)
                            if taken + columns > avail:
                                ranges.append((line_start, position + index))
                                line_start, taken = position + index, 0
                            taken += columns
                        position, length, size = line_start, position + length - line_start, taken
                    used = length if narrow else size
                else:
                    used += 1 + size
                position += length + 1
            ranges.append((line_start, position - 1))
            offset += len(segment) + 1
        self._cut(spans, text, ranges)

    def _cut(self, spans: list[Span], text: str, ranges: list[tuple[int, int]]) -> None:
        """Emit one line per ``[start, end)`` range of *text*, made of the parts of *spans* it covers."""
        if "\xa0" in text:
            text = text.replace("\xa0", " ")
            spans = [(piece.replace("\xa0", " "), style, link) for piece, style, link in spans]
        bounds = [0]
        for piece, _, _ in spans:
            bounds.append(bounds[-1] + len(piece))
        count = len(spans)
        first = 0
        for start, end in ranges:
            while first < count and bounds[first + 1] <= start:
                first += 1
            line: Line = []
            index = first
            while index < count and bounds[index] < end:
                low, high = bounds[index], bounds[index + 1]
                if low >= start and high <= end:
                    line.append(spans[index])
                elif high > start:
                    _, style, link = spans[index]
                    line.append((text[max(low, start) : min(high, end)], style, link))
                index += 1
            self.emit(line)

    def heading_line(self, text: str, style: int, underline: str) -> None:
        self.flush()
        self.want_gap(0)
        self.add_text(text, style)
        self.flush()
        self.emit([(underline * min(cell_width(text), self.available()), DIM, 0)])
        self.want_gap(1)

    # -- inline content --------------------------------------------------------------------------------------

    def add_text(self, text: str, style: int | None = None) -> None:
        style = self.style if style is None else style
        if self.pre:
            self.inline.append((text, style, self.link))
            return
        if "\n" in text or "  " in text or "\t" in text or "\r" in text or "\f" in text:
            text = SPACES.sub(" ", text)
        if self.space_before and text.startswith(" "):
            text = text[1:]
        if not text:
            return
        if len(self.open_marks) > self.opened:  # the enclosing emphasis starts here
            self.inline.append(("".join(self.open_marks[self.opened :]), style, self.link))
            self.opened = len(self.open_marks)
        self.inline.append((text, style, self.link))
        self.space_before = text.endswith(" ")

    def line_break(self) -> None:
        self.inline.append(("\n", self.style, self.link))
        self.space_before = True

    def styled(self, node: LexborNode, style: int) -> None:
        saved = self.style
        self.style |= style
        mark = MARKS.get(style) if self.shared.marks and not self.pre and not saved & style else None
        if mark:
            self.open_marks.append(mark)
        self.children(node)
        if mark:
            self.open_marks.pop()
            if self.opened > len(self.open_marks):  # it was written, so it is closed; empty ones leave no marks
                self.opened -= 1
                self._close_mark(mark)
        self.style = saved

    def _close_mark(self, mark: str) -> None:
        if self.inline and self.inline[-1][0].endswith(" "):
            text, style, link = self.inline[-1]
            self.inline[-1] = (text[:-1], style, link)
            self.inline.append((mark + " ", style, link))
        else:
            self.inline.append((mark, self.style, self.link))

    def _close_open_marks(self) -> None:
        """A block ends inside emphasis: close its marks here; the next text opens them again."""
        while self.opened:
            self.opened -= 1
            self._close_mark(self.open_marks[self.opened])

    # -- the tree --------------------------------------------------------------------------------------------

    def children(self, node: LexborNode) -> None:
        child = node.child
        while child is not None:
            if child.tag == "-text":  # most nodes: handled here, without a call to node()
                self.add_text(child.text_content or "")
            else:
                self.node(child)
            child = child.next

    def node(self, node: LexborNode) -> None:
        tag = node.tag
        if tag == "-text":
            self.add_text(node.text_content or "")
            return
        if tag is None or tag[0] == "-" or tag in HIDDEN:
            return
        marked = self.shared.marked
        if marked:
            key = node.mem_id
            if key in marked:
                if key in self.shared.hidden:
                    return
                self.shared.anchors.setdefault(marked[key], len(self.out))
        handler = HANDLERS.get(tag)
        if handler is not None:
            handler(self, node)
        elif tag in INLINE_STYLES:
            self.styled(node, INLINE_STYLES[tag])
        elif tag in BLOCKS:
            self.block(node)
        else:
            self.children(node)

    def block(self, node: LexborNode, before: int = 0, after: int = 0, margin: _Margin | None = None,
              style: int = 0) -> None:  # fmt: skip
        self.flush()
        self.want_gap(before)
        if margin is not None:
            self.margins.append(margin)
        saved = self.style
        self.style |= style
        self.children(node)
        self.flush()
        self.style = saved
        if margin is not None:
            self.margins.pop()
        self.want_gap(after)

    def nested(self, width: int) -> _Renderer:
        """A renderer for a table cell: same links and options, its own lines."""
        inner = _Renderer(self.shared, width)
        inner.style = self.style & ~(LINK | NUMBER)
        inner.lists = [list(state) for state in self.lists]
        return inner

    def render_cell(self, node: LexborNode, width: int) -> tuple[list[Line], int]:
        key = (node.mem_id, width)
        cached = self.shared.cells.get(key)
        if cached is None:
            inner = self.nested(width)
            inner.measure = True
            inner.children(node)
            inner.flush()
            while inner.out and not inner.out[-1]:
                inner.out.pop()
            cached = self.shared.cells[key] = (inner.out, inner.longest_word)
        return cached


# -- element handlers ----------------------------------------------------------------------------------------


def _paragraph(r: _Renderer, node: LexborNode) -> None:
    r.block(node, 1, 1)


def _heading(r: _Renderer, node: LexborNode) -> None:
    level = int((node.tag or "h1")[1])
    r.flush()
    r.want_gap(1)
    saved = r.style
    r.style |= BOLD | HEADING
    r.add_text("#" * level + " ", r.style | DIM)
    r.children(node)
    r.flush()
    r.style = saved
    r.want_gap(1)


def _link(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    href = attributes.get("href")
    if href is None or r.link:
        r.children(node)
        return
    number = r.shared.number(node, href)
    saved_style, saved_link = r.style, r.link
    r.link = number
    r.add_text(f"[{number}]", NUMBER)
    r.space_before = False
    r.style |= LINK
    r.children(node)
    r.style, r.link = saved_style, saved_link


def _line_break(r: _Renderer, node: LexborNode) -> None:
    r.line_break()


def _rule(r: _Renderer, node: LexborNode) -> None:
    r.flush()
    r.want_gap(1)
    r.emit([("─" * r.available(), DIM, 0)])
    r.want_gap(1)


def _image(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    alt = attributes.get("alt")
    if alt is None:
        alt = attributes.get("title") or "image"
    alt = SPACES.sub(" ", alt).strip()
    if alt:  # alt="" marks a decorative image: nothing to show
        r.add_text(f"[{alt}]", r.style | DIM)


def _list(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    ordered = node.tag == "ol"
    step = (-1 if "reversed" in attributes else 1) if ordered else 0
    start_text = (attributes.get("start") or "").strip()
    if start_text.lstrip("-").isdigit():
        start = int(start_text)
    elif step == -1:
        start = sum(1 for child in node.iter() if child.tag == "li")
    else:
        start = 1
    top = not r.lists
    r.lists.append([start, step])
    r.block(node, 1 if top else 0, 1 if top else 0, _Margin("  ", "  ") if top else None)
    r.lists.pop()


def _item(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    if not r.lists:
        r.lists.append([1, 0])
        _item(r, node)
        r.lists.pop()
        return
    state = r.lists[-1]
    value = (attributes.get("value") or "").strip()
    if state[1] and value.lstrip("-").isdigit():
        state[0] = int(value)
    if state[1]:
        marker = f"{state[0]}."
        state[0] += state[1]
        marker = marker.rjust(3) + " "
    else:
        marker = BULLETS[(len(r.lists) - 1) % len(BULLETS)] + " "
    r.block(node, 0, 0, _Margin(marker, " " * len(marker)))


def _definition_term(r: _Renderer, node: LexborNode) -> None:
    r.block(node, style=BOLD)


def _definition(r: _Renderer, node: LexborNode) -> None:
    r.block(node, 0, 0, _Margin("    ", "    "))


def _quote(r: _Renderer, node: LexborNode) -> None:
    """Indented, as w3m and lynx show quotes: plain text four spaces in, with colour a shaded bar. Never
    ``> `` marks in the text, which a reader copying quoted code (documentation quotes its samples) would
    copy too."""
    if r.shared.marks:
        r.block(node, 1, 1, _Margin("    ", "    "))
    else:
        r.block(node, 1, 1, _Margin("  ", "  ", QUOTE))


def _preformatted(r: _Renderer, node: LexborNode) -> None:
    r.flush()
    r.want_gap(1)
    r.pre += 1
    saved = r.style
    r.style |= CODE
    if node.css_first("a[href], [id], [hidden]") is None:  # nothing to number, mark or hide: the text at once
        r.add_text(node.text(deep=True))  # (highlighted code is thousands of spans)
    else:
        r.children(node)
    r.flush()
    r.style = saved
    r.pre -= 1
    r.want_gap(1)


def _inline_quote(r: _Renderer, node: LexborNode) -> None:
    r.add_text("“")
    r.space_before = False
    r.children(node)
    r.add_text("”")


def _field(r: _Renderer, text: str) -> None:
    r.add_text(text, r.style | FIELD)


def _input(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    kind = (attributes.get("type") or "text").lower()
    value = attributes.get("value") or ""
    if kind == "hidden":
        return
    if kind == "checkbox":
        _field(r, "[x]" if "checked" in attributes else "[ ]")
    elif kind == "radio":
        _field(r, "(*)" if "checked" in attributes else "( )")
    elif kind in ("submit", "reset", "button"):
        _field(r, f"[ {value or kind.capitalize()} ]")
    elif kind == "image":
        _field(r, f"[ {attributes.get('alt') or value or 'Submit'} ]")
    elif kind == "file":
        _field(r, "[ Choose file ]")
    else:
        size = (attributes.get("size") or "").strip()
        length = min(int(size), 40) if size.isdigit() and int(size) > 0 else 20
        shown = "*" * len(value) if kind == "password" else value or attributes.get("placeholder") or ""
        shown = SPACES.sub(" ", shown)[:length]
        _field(r, "[" + shown.replace(" ", "\xa0") + "_" * (length - cell_width(shown)) + "]")


def _button(r: _Renderer, node: LexborNode) -> None:
    text = SPACES.sub(" ", node.text()).strip() or "Button"
    _field(r, f"[ {text} ]".replace(" ", "\xa0"))


def _select(r: _Renderer, node: LexborNode) -> None:
    options = node.css("option")
    chosen = next((o for o in options if "selected" in o.attributes), options[0] if options else None)
    text = SPACES.sub(" ", chosen.text()).strip() if chosen is not None else ""
    _field(r, f"[{text} ▾]".replace(" ", "\xa0"))


def _textarea(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    r.flush()
    cols = (attributes.get("cols") or "").strip()
    width = min(int(cols) if cols.isdigit() else 40, r.available() - 2)
    lines = (node.text() or "").translate(NO_CONTROLS).split("\n") or [""]
    rows = (attributes.get("rows") or "").strip()
    height = max(len(lines), int(rows) if rows.isdigit() else 2)
    r.emit([("┌" + "─" * width + "┐", FIELD, 0)])
    for index in range(height):
        text = _fit(lines[index], width) if index < len(lines) else ""
        r.emit([("│" + text + " " * (width - cell_width(text)) + "│", FIELD, 0)])
    r.emit([("└" + "─" * width + "┘", FIELD, 0)])


def _fit(text: str, width: int) -> str:
    """The longest start of *text* that takes at most *width* columns."""
    if cell_width(text) <= width:
        return text
    taken = 0
    for index, char in enumerate(text):
        taken += cell_width(char)
        if taken > width:
            return text[:index]
    return text


def _summary(r: _Renderer, node: LexborNode) -> None:
    r.flush()
    r.add_text("▸ ", r.style | DIM)
    r.space_before = False
    r.block(node, style=BOLD)


def _media(r: _Renderer, node: LexborNode) -> None:
    attributes = node.attributes
    source = attributes.get("src")
    if source is None:
        inner = node.css_first("source[src]")
        source = inner.attributes.get("src") if inner is not None else None
    label = node.tag if node.tag != "iframe" else "frame"
    if source:
        number = r.shared.number(node, source)
        saved = r.link
        r.link = number
        r.add_text(f"[{number}]", NUMBER)
        r.space_before = False
        r.add_text(f"[{label}]", r.style | LINK | DIM)
        r.link = saved
    else:
        r.add_text(f"[{label}]", r.style | DIM)


def _table(r: _Renderer, node: LexborNode) -> None:
    rows: list[tuple[list[tuple[LexborNode, int]], bool]] = []
    caption = None
    for part in _table_parts(node):
        if part.tag == "caption":
            caption = part
            continue
        header_group = part.tag == "thead"
        for row in [part] if part.tag == "tr" else [c for c in _element_children(part) if c.tag == "tr"]:
            cells = [(cell, _span(cell)) for cell in _element_children(row) if cell.tag in ("td", "th")]
            if cells:
                header = header_group or all(cell.tag == "th" for cell, _ in cells)
                rows.append((cells, header))
    r.flush()
    r.want_gap(1)
    if caption is not None:
        r.block(caption, style=BOLD)
    columns = max((sum(span for _, span in cells) for cells, _ in rows), default=0)
    if columns <= 1:  # a layout table, or one column: its cells are simply blocks
        for cells, _ in rows:
            for cell, _ in cells:
                r.block(cell)
        r.want_gap(1)
        return
    avail = r.available()
    room = avail - 3 * (columns - 1)
    natural, least = [1] * columns, [1] * columns
    for cells, _ in rows:
        column = 0
        for cell, span in cells:
            if span == 1:
                lines, longest = r.render_cell(cell, UNBOUNDED)
                natural[column] = max(natural[column], max((_width(line) for line in lines), default=0))
                least[column] = max(least[column], min(longest, 20))
            column += span
    if sum(least) > room:
        _table_as_list(r, rows)
        return
    widths = natural if sum(natural) <= room else _share(natural, least, room)
    separator = (" │ ", DIM, 0)
    multiline = False
    laid: list[tuple[list[Line], bool]] = []
    for cells, header in rows:
        blocks: list[tuple[list[Line], int]] = []
        column = 0
        for cell, span in cells:
            span = min(span, columns - column)
            width = sum(widths[column : column + span]) + 3 * (span - 1)
            lines, _ = r.render_cell(cell, width)
            blocks.append((lines, width))
            column += span
        if column < columns:
            blocks.append(([], sum(widths[column:]) + 3 * (columns - column - 1)))
        height = max((len(lines) for lines, _ in blocks), default=0)
        multiline = multiline or height > 1
        out: list[Line] = []
        for index in range(max(height, 1)):
            line: Line = []
            for number, (lines, width) in enumerate(blocks):
                if number:
                    line.append(separator)
                content = lines[index] if index < len(lines) else []
                if header:
                    content = [(text, style | BOLD, link) for text, style, link in content]
                line.extend(content)
                pad = width - _width(content)
                if pad > 0 and number < len(blocks) - 1:
                    line.append((" " * pad, 0, 0))
            out.append(line)
        laid.append((out, header))
    rule = [("─┼─".join("─" * width for width in widths), DIM, 0)]
    for index, (out, header) in enumerate(laid):
        for line in out:
            r.emit(line)
        following = laid[index + 1][1] if index + 1 < len(laid) else True
        if (header and not following) or (multiline and index + 1 < len(laid)):
            r.emit(list(rule))
    r.want_gap(1)


def _table_as_list(r: _Renderer, rows: list[tuple[list[tuple[LexborNode, int]], bool]]) -> None:
    """Too many columns for the width: each row becomes a small block, each cell labelled by its header."""
    labels: list[str] = []
    for cells, header in rows:
        if header and not labels:
            labels = [SPACES.sub(" ", cell.text()).strip() for cell, _ in cells]
            continue
        for index, (cell, _) in enumerate(cells):
            label = labels[index] if index < len(labels) and labels[index] else ""
            r.flush()
            if label:
                r.add_text(label + ": ", r.style | BOLD)
            r.children(cell)
            r.flush()
        r.want_gap(1)


def _share(natural: list[int], least: list[int], room: int) -> list[int]:
    """Column widths within *room*: every column its least; then columns that want little more get all
    they want, and the rest share what is left in proportion to what they want."""
    widths = list(least)
    extra = room - sum(least)
    wanting = sorted(range(len(natural)), key=lambda column: natural[column] - least[column])
    while wanting:
        fair = extra // len(wanting)
        column = wanting[0]
        want = natural[column] - widths[column]
        if want > fair:
            break
        widths[column] += want
        extra -= want
        wanting.pop(0)
    total = sum(natural[column] - widths[column] for column in wanting) or 1
    for column in wanting:
        widths[column] += extra * (natural[column] - widths[column]) // total
    return widths


def _span(cell: LexborNode) -> int:
    text = (cell.attributes.get("colspan") or "1").strip()
    return min(int(text), 50) if text.isdigit() and int(text) > 0 else 1


def _width(line: Line) -> int:
    return sum(cell_width(text) for text, _, _ in line)


def _element_children(node: LexborNode) -> list[LexborNode]:
    found = []
    child = node.child
    while child is not None:
        if child.tag and not child.tag.startswith("-"):
            found.append(child)
        child = child.next
    return found


def _table_parts(table: LexborNode) -> list[LexborNode]:
    return [child for child in _element_children(table) if child.tag in ("caption", "thead", "tbody", "tfoot", "tr")]


HANDLERS = {
    "p": _paragraph,
    "h1": _heading,
    "h2": _heading,
    "h3": _heading,
    "h4": _heading,
    "h5": _heading,
    "h6": _heading,
    "a": _link,
    "br": _line_break,
    "hr": _rule,
    "img": _image,
    "ul": _list,
    "ol": _list,
    "li": _item,
    "dl": _paragraph,
    "dt": _definition_term,
    "dd": _definition,
    "blockquote": _quote,
    "pre": _preformatted,
    "listing": _preformatted,
    "xmp": _preformatted,
    "q": _inline_quote,
    "input": _input,
    "button": _button,
    "select": _select,
    "textarea": _textarea,
    "summary": _summary,
    "iframe": _media,
    "video": _media,
    "audio": _media,
    "table": _table,
}
