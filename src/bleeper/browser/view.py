"""Any fetched document as a rendered page: HTML rendered, text shown as it is, anything else described."""

from __future__ import annotations

from bleeper.browser.fetch import Document, describe
from bleeper.browser.render import NO_CONTROLS, Line, Page, render_html


def page_for(document: Document, width: int, *, marks: bool = False) -> Page:
    if document.is_html:
        return render_html(document.text(), document.url, width, marks=marks)
    if document.is_text:
        text = document.text().translate(NO_CONTROLS)  # (tabs and newlines stay; escape sequences do not)
        lines: list[Line] = [[(line.expandtabs(8), 0, 0)] if line else [] for line in text.splitlines()]
        return Page("", lines, [])
    return render_html(describe(document), document.url, width, marks=marks)
