"""``bleeper browse`` against pages served by a real local HTTP server: the classic exercise pages, every
element, character sets, redirects, compression, every error case, non-HTML types, and the interactive app
driven with Textual's Pilot."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.pilot import Pilot

from bleeper.browser.app import BrowserApp, rich_style
from bleeper.browser.fetch import FetchError, fetch, normalise_url
from bleeper.browser.links import Resolver
from bleeper.browser.output import page_to_text
from bleeper.browser.render import NARROW, cell_width, render_html
from bleeper.browser.view import page_for
from tests.browser_site import PAGES, serving
from tests.helpers import ROOT, free_port

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving() as base:
        yield base


def browse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bleeper", "browse", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def dump(url: str, width: int = 80) -> str:
    return page_to_text(page_for(fetch(url), width, marks=True), color=False)


# -- the classic exercise ------------------------------------------------------------------------------------


def test_the_classic_page_shows_title_heading_paragraphs_and_emphasis(site: str) -> None:
    result = browse("--dump", "--color", "never", site)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == f"""The first page
==============

# A heading

This is the first paragraph. It has *emphasised* text and **strong** text.

A second paragraph, with a [1]link to page one.

Links
  1. {site}one.html
"""
    )


def test_styles_in_a_terminal_or_when_asked(site: str) -> None:
    styled = browse("--dump", "--color", "always", site).stdout
    assert "\x1b[0;3memphasised\x1b[0m" in styled  # italic
    assert "\x1b[0;1mstrong\x1b[0m" in styled  # bold
    assert "*emphasised*" not in styled  # the styles replace the marks
    assert ANSI.sub("", styled).startswith("The first page\n")
    assert "\x1b[" not in browse("--dump", site).stdout  # a pipe is not a terminal: plain by default


def test_three_interlinked_pages_resolve_their_links(site: str) -> None:
    one, two, three = (dump(site + name) for name in ("one.html", "two.html", "three.html"))
    assert one.splitlines()[0] == "Page one"
    assert f"1. {site}two.html" in one and f"2. {site}three.html" in one
    assert f"1. {site}one.html" in two and f"2. {site}three.html" in two  # relative and rooted
    assert f"1. {site}one.html" in three and f"2. {site}three.html#end" in three  # ./ and a fragment


# -- every element -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elements(site: str) -> str:
    return dump(site + "elements.html")


def block(text: str, first: str, lines: int) -> list[str]:
    rows = text.splitlines()
    start = next(i for i, row in enumerate(rows) if row.startswith(first))
    return rows[start : start + lines]


def test_headings_show_their_level(elements: str) -> None:
    assert "# Heading one\n\n## Heading two\n\n### Heading three\n" in elements


def test_inline_styles_and_entities(elements: str) -> None:
    assert "Plain, *emphasis*, *italic*, **strong**, **bold**, `code()`, entities & <tags> ©\nééé." in elements


def test_nested_lists_with_numbers_and_bullets(elements: str) -> None:
    assert block(elements, "  • apple", 11) == [
        "  • apple", "  • banana", "    ◦ small", "    ◦ large", "       1. deep one", "       2. deep two",
        "  • cherry", "", "   7. seventh", "   8. eighth", "   9. ninth",
    ]  # fmt: skip
    assert "  10. tenth" in elements


def test_blockquotes_are_indented_and_wrapped(elements: str) -> None:
    # Indented as w3m and lynx do, not marked with "> ", which would be copied with quoted code.
    assert block(elements, "    To be", 2) == [
        "    To be, or not to be, that is the question: whether 'tis nobler in the mind",
        "    to suffer the slings and arrows of outrageous fortune.",
    ]


def test_preformatted_text_is_kept_exactly(elements: str) -> None:
    long = '    return   "exactly"    # and this line is deliberately wider than the eighty columns of the page, much wider'
    assert block(elements, "def keep", 3) == ["def keep(spacing):", long, "        tab"]


QUOTED_CODE = [
    ["CREATE TABLE t1(", "  a INTEGER,", "  b TEXT", ");"],
    ["SELECT a", "  FROM t1;"],
    ["ls -l", "  | sort"],
    ["cd /tmp &&", "    make"],
    ["> an e-mail quote", ">> kept as written"],
]


def code_indent(text: str, code: list[str]) -> int:
    """Where *code* appears in *text*: each line exactly as written, after the same run of spaces (all a
    reader who copies it gets besides the code). Returns that indentation."""
    rows = text.splitlines()
    for start, row in enumerate(rows):
        indent = len(row) - len(row.lstrip(" "))
        if row[indent:] == code[0] and rows[start : start + len(code)] == [" " * indent + line for line in code]:
            return indent
    raise AssertionError(f"{code} is not kept exactly in:\n{text}")


@pytest.mark.parametrize("color", ["never", "always"])
def test_code_in_quotes_and_lists_is_kept_exactly_without_marks(site: str, color: str) -> None:
    result = browse("--dump", "--color", color, site + "quoted-code.html")
    assert result.returncode == 0, result.stderr
    text = ANSI.sub("", result.stdout)
    indents = [code_indent(text, code) for code in QUOTED_CODE]
    assert 0 < indents[0] < indents[1]  # a quote, and a quote in a quote, show as indentation
    marked = [row.strip() for row in text.splitlines() if row.strip().startswith((">", "│"))]
    assert marked == QUOTED_CODE[-1]  # only the page's own ">" lines


def test_quotes_are_indented_in_plain_text_and_list_markers_stay_off_code(site: str) -> None:
    assert dump(site + "quoted-code.html") == "\n".join([
        "Quoted code", "===========", "", "The statement:", "",
        "    CREATE TABLE t1(", "      a INTEGER,", "      b TEXT", "    );", "",
        "    A quoted paragraph, then a quote in the quote:", "", "        SELECT a", "          FROM t1;", "",
        "  •", "    ls -l", "      | sort", "", "  • Then:", "", "    cd /tmp &&", "        make", "",
        "   1.", "          > an e-mail quote", "          >> kept as written", "",
    ])  # fmt: skip


def test_quotes_in_the_app_are_a_shaded_margin_not_text() -> None:
    html = "<blockquote><p>Said:</p><blockquote><pre>SELECT a\n  FROM t1;</pre></blockquote></blockquote>"
    page = render_html(html, "http://e/", 40)  # as the app and the coloured dump render it
    rows = [line for line in page.lines if "".join(piece for piece, _, _ in line).strip()]
    assert ["".join(piece for piece, _, _ in line) for line in rows] == ["  Said:", "    SELECT a", "      FROM t1;"]
    for line in rows:
        *margin, _ = line
        assert all(not piece.strip() for piece, _, _ in margin)  # spaces: copying the code copies no marks
        assert any(rich_style(style).bgcolor is not None for _, style, _ in margin)  # the bar is a shade


def test_tables_in_columns_and_wide_ones_as_labelled_rows(elements: str) -> None:
    assert block(elements, "Beds", 7) == [
        "Beds",
        "Bed │ Patient  │ Plan",
        "────┼──────────┼────────────────────────────────────────────────────────────────",
        "4   │ J. Smith │ nil by mouth",
        "────┼──────────┼────────────────────────────────────────────────────────────────",
        "5   │ A. Jones │ discharge after the consultant's round tomorrow morning if the",
        "    │          │ bloods are back and normal",
    ]
    assert block(elements, "a: alphabetical", 3) == ["a: alphabetical", "b: bureaucratic", "c: catastrophic"]


def test_images_forms_and_what_is_hidden(elements: str) -> None:
    assert "[Ward chart] [image]\n" in elements  # alt text; a decorative image (alt="") is left out
    assert "Name [Ada_________________] [******______________] [x] ( ) [two ▾]" in elements
    assert "┌──────────┐\n│note      │\n│          │\n└──────────┘\n[ Send ] [ Go ]" in elements
    for hidden in ("script text", "color: red", "hidden text", "undisplayed text", "invisible"):
        assert hidden not in elements


def test_broken_markup_is_repaired_as_browsers_do(elements: str) -> None:
    # The HTML5 rules carry unclosed <b><i> into the following paragraphs, as in any browser.
    assert "Broken **markup *never closed***\n\n***after the break***" in elements
    assert "Term\n    Its definition." in elements
    assert "─" * 80 in elements
    assert "***Line one\nline two***" in elements


@pytest.mark.parametrize("width", [20, 40, 100])
def test_text_wraps_to_the_width_but_pre_does_not(site: str, width: int) -> None:
    result = browse("--dump", "--width", str(width), site + "elements.html")
    body = result.stdout.split("\nLinks\n")[0]
    for line in body.splitlines():
        if "deliberately wider" not in line and not line.startswith("───"):
            assert cell_width(line) <= width, line


# -- fetching ------------------------------------------------------------------------------------------------


def test_latin1_from_the_header_and_from_the_meta_tag(site: str) -> None:
    assert dump(site + "latin1.html").startswith("Café\n====\n\nCrème brûlée, £10, naïve.")
    assert dump(site + "latin1-meta.html").startswith("Café\n====\n\nCrème brûlée.")


def test_redirects_are_followed_and_links_resolve_against_the_final_url(site: str) -> None:
    document = fetch(site + "redirect")
    assert document.url == site + "dir/target.html"
    text = dump(site + "redirect")
    assert f"1. {site}dir/sibling.html" in text and f"2. {site}one.html" in text


def test_compressed_pages_are_decompressed(site: str) -> None:
    assert "compressed text compressed text" in dump(site + "compressed.html")


def test_text_is_shown_as_is_and_other_types_are_described(site: str, tmp_path: Path) -> None:
    assert dump(site + "notes.txt") == "plain   text\n  kept as is[2J\n"  # the escape character removed
    described = dump(site + "chart.png")
    assert "This is **image/png**, 2.0 KB: not something a text browser can show." in described
    saved = tmp_path / "chart.png"
    result = browse("--save", str(saved), site + "chart.png")
    assert result.returncode == 0 and saved.read_bytes().startswith(b"\x89PNG") and saved.stat().st_size == 2008
    assert f"saved 2.0 KB of image/png to {saved}" in result.stderr


def test_file_urls_paths_and_bare_names(tmp_path: Path) -> None:
    page = tmp_path / "local page.html"
    page.write_text("<title>Local</title><p>From disk, <a href='other.html'>other</a>.</p>")
    url = normalise_url(str(page))
    assert url == "file://" + str(page).replace(" ", "%20")
    text = dump(url)
    assert text.startswith("Local\n=====\n\nFrom disk, [1]other.") and f"1. file://{tmp_path}/other.html" in text
    listing = dump(normalise_url(str(tmp_path)))
    assert "[1]local page.html" in listing
    assert normalise_url("example.com") == "http://example.com/"
    assert normalise_url("example.com/a/b?c") == "http://example.com/a/b?c"
    assert normalise_url("https://example.com") == "https://example.com"
    with pytest.raises(FetchError) as missing:
        fetch("file:///no/such/file.html")
    assert missing.value.title == "File not found"


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("http://no-such-host.invalid/", "Server not found. The name no-such-host.invalid does not resolve"),
        ("refused", "Connection refused. Nothing at 127.0.0.1:"),
        ("slow", "The server stopped answering. 127.0.0.1:"),
        ("loop", "Too many redirects."),
        ("gopher://old.example/", "Cannot open gopher: addresses."),
    ],
)
def test_errors_say_what_happened_and_what_to_try(site: str, address: str, says: str) -> None:
    url = {"refused": f"http://127.0.0.1:{free_port()}/", "slow": site + "slow", "loop": site + "loop"}.get(
        address, address
    )
    result = browse("--dump", "--timeout", "1", url)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"bleeper browse: {says}"), result.stderr


@pytest.mark.parametrize(
    ("path", "status"), [("missing.html", "404 Not Found"), ("error", "500 Internal Server Error")]
)
def test_http_errors_show_the_servers_page_and_fail(site: str, path: str, status: str) -> None:
    result = browse("--dump", site + path)
    assert result.returncode == 1
    assert ("The server's own 404 page." if "404" in status else "Internal error") in result.stdout
    assert result.stderr.strip() == f"bleeper browse: {site}{path} answered {status}"


# -- the renderer's parser, with generated input -------------------------------------------------------------

TAGS = ["p", "b", "i", "em", "a href='x'", "ul", "ol", "li", "pre", "table", "tr", "td", "th", "blockquote", "h2",
        "br", "img alt='z'", "div", "code", "input", "select", "option", "textarea"]  # fmt: skip
fragments = st.lists(
    st.one_of(
        st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t.split()[0]}>" for t in TAGS]),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
        st.sampled_from(["&amp;", "&nbsp;", "&#0;", "&bogus;", "<!--", "-->", "<", ">", "\t", "\n", " " * 5]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fragments, st.integers(min_value=10, max_value=120), st.booleans())
def test_any_markup_renders_within_the_width_except_preformatted_text(
    parts: list[str], width: int, marks: bool
) -> None:
    html = "".join(parts)
    page = render_html(html, "http://example.org/a/b.html", width, marks=marks)
    inside_pre = "<pre>" in html
    for line in page.lines:
        text = "".join(piece for piece, _, _ in line)
        assert "\n" not in text
        if not inside_pre and "<table" not in html and "<td>" not in html and text.strip("─┼═ "):
            # Deep margins (lists, quotes) still leave 10 columns for text, as a browser would scroll.
            margin = len(re.match(r"[ │>•◦▪]*", text).group())  # type: ignore[union-attr]
            assert cell_width(text) <= max(width, margin + 10), text
    for number, url in enumerate(page.links, 1):
        assert url.startswith("http://example.org/"), (number, url)


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(["http://h/d1/d2/page.html?q=1#f", "http://h", "https://h:8/a/", "file:///tmp/x/y.html"]),
    st.text(alphabet="ab./#?%:=", max_size=12).filter(lambda href: "//" not in href),
)
def test_fast_link_resolution_agrees_with_urljoin(base: str, href: str) -> None:
    assert Resolver(base)(href) == urljoin(base, href)


def test_link_resolution_keeps_empty_path_segments_as_browsers_do() -> None:
    # urljoin collapses "a//b" to "a/b"; RFC 3986 and browsers keep it.
    assert Resolver("http://h/d/")("a//b") == "http://h/d/a//b"


def test_narrow_characters_take_one_column_each() -> None:
    import unicodedata

    for code in range(0x20, 0x3000):
        char = chr(code)
        if NARROW.fullmatch(char) and unicodedata.category(char) != "Cn":
            assert cell_width(char) == 1, hex(code)
    assert cell_width("漢字") == 4 and cell_width("é") == 1 and cell_width("e\u0301") == 1


# -- the interactive app ------------------------------------------------------------------------------------


async def until(pilot: Pilot[None], ready: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if ready():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out")


def status(app: BrowserApp) -> str:
    return app.status_text


async def test_follow_links_by_number_and_by_tab_then_go_back_and_forward(site: str) -> None:
    app = BrowserApp(site + "one.html")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.title == "Page one")
        assert status(app) == f"200 OK · text/html · {len(PAGES['/one.html'].encode())} bytes · 2 links"
        await pilot.press("1", "enter")  # type a link's number
        await until(pilot, lambda: app.title == "Page two")
        await pilot.press("2", "enter")
        await until(pilot, lambda: app.title == "Page three")
        await pilot.press("tab")  # select the first link on screen: its target is in the status line
        assert status(app).endswith(f"[1] {site}one.html")
        await pilot.press("tab", "enter")  # the second: #end, a jump within the page
        await until(pilot, lambda: app.history[-1].url == site + "three.html#end")
        await pilot.press("b")
        assert app.history[app.position].url == site + "three.html"
        await pilot.press("b")
        await until(pilot, lambda: app.title == "Page two")
        await pilot.press("b")
        await until(pilot, lambda: app.title == "Page one")
        assert app.query_one("#address").value == site + "one.html"  # type: ignore[attr-defined]
        await pilot.press("f")
        await until(pilot, lambda: app.title == "Page two")
        await pilot.press("f")
        await until(pilot, lambda: app.title == "Page three")
        await pilot.press("9", "enter")
        assert status(app) == "there is no link 9 on this page (1-2)"


async def test_open_an_address_find_text_and_see_errors(site: str) -> None:
    app = BrowserApp()
    async with app.run_test(size=(100, 30)) as pilot:
        assert "press g to open an address" in status(app)
        await pilot.press("g")
        address = app.query_one("#address")
        for key in site + "elements.html":
            await pilot.press(key)
        await pilot.press("enter")
        await until(pilot, lambda: app.title == "Every element")
        await pilot.press("slash", *"nil by", "enter")
        await until(pilot, lambda: "“nil by” on line" in status(app))
        assert app.view.find == "nil by"
        await pilot.press("ctrl+l", *(site + "missing.html"), "enter")
        await until(pilot, lambda: app.title == "Not here")
        assert status(app).startswith("404 Not Found · text/html")
        await pilot.press("g", *f"http://127.0.0.1:{free_port()}/", "enter")
        await until(pilot, lambda: status(app).startswith("error: Connection refused"))
        assert address.has_focus is False  # back on the page after Enter
        await pilot.press("r")  # reload works on an error page too
        await until(pilot, lambda: status(app).startswith("error: Connection refused"))


async def test_the_page_rerenders_to_the_window_width(site: str) -> None:
    app = BrowserApp(site + "elements.html")
    async with app.run_test(size=(60, 30)) as pilot:
        await until(pilot, lambda: app.title == "Every element")
        narrow = max(len("".join(p for p, _, _ in line)) for line in app.view.page.lines if "─" not in str(line))
        await pilot.resize_terminal(120, 30)
        await until(pilot, lambda: any("consultant's round tomorrow morning if the bloods" in
                                       "".join(p for p, _, _ in line) for line in app.view.page.lines))  # fmt: skip
        assert narrow < 120


def test_the_readme_dump_example(site: str) -> None:
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("and a paragraph with emphasis prints:\n\n```text\n", 1)[1].split("```", 1)[0]
    printed = browse("--dump", "--color", "never", site).stdout
    assert printed == shown.replace("http://127.0.0.1:8000/", site)


def test_no_control_characters_reach_the_terminal() -> None:
    html = ("<title>T\x1b]0;owned\x07itle</title><p>a\x1b[2Jb &#27;[31mred <a href='x\x1by'>l\x9bnk</a>"
            "<pre>c\x1b[0m\rd</pre><textarea>e\x1bf</textarea>")  # fmt: skip
    page = render_html(html, "http://e/", 60)
    text = page_to_text(page, color=False)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text + page.title), repr(text)
    assert "a[2Jb [31mred [1]lnk" in text and "c[0m\nd" in text  # (HTML turns the CR into a line break)


async def test_the_dump_is_styled_on_a_terminal_unless_no_color(site: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import pexpect

    from tests.helpers import Terminal

    for no_color, styled in (("", True), ("1", False)):
        monkeypatch.setenv("NO_COLOR", no_color)
        term = Terminal("browse", "--dump", site)  # a real pseudo-terminal: --color auto sees a terminal
        await term.child.expect(pexpect.EOF, timeout=20, async_=True)
        output = term.child.before or ""
        term.child.close()
        assert term.child.exitstatus == 0
        assert ("\x1b[0;3memphasised" in output) is styled, repr(output[:200])
        assert ("*emphasised*" in output) is not styled


async def test_s_saves_what_the_address_holds(site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chart.png").write_bytes(b"already here")
    app = BrowserApp(site + "chart.png")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.title == "chart.png")
        assert "This is image/png, 2.0 KB" in "".join(p for line in app.view.page.lines for p, _, _ in line)
        await pilot.press("s")
        assert status(app) == f"saved 2.0 KB to {tmp_path / 'chart-1.png'}"  # an existing file is kept
    assert (tmp_path / "chart-1.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "chart.png").read_bytes() == b"already here"
