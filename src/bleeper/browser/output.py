"""A rendered page as text: plain, or with ANSI styles for a terminal; the link list at the end."""

from __future__ import annotations

from bleeper.browser.render import BOLD, STYLES, Line, Page


def sgr(style: int) -> str:
    codes = [code for bit, code, _ in STYLES if style & bit]
    return f"\x1b[0;{';'.join(codes)}m" if codes else "\x1b[0m"


def line_to_text(line: Line, color: bool) -> str:
    if not color:
        return "".join(text for text, _, _ in line).rstrip()
    parts: list[str] = []
    current = 0
    for text, style, _ in line:
        if style != current:
            parts.append(sgr(style))
            current = style
        parts.append(text)
    if current:
        parts.append("\x1b[0m")
    return "".join(parts).rstrip(" ")


def page_to_text(page: Page, color: bool) -> str:
    """The whole page, then its numbered link targets (absolute URLs), as lynx and w3m's dumps do."""
    lines = [line_to_text(line, color) for line in page.lines]
    while lines and not lines[-1]:
        lines.pop()
    if page.links:
        lines += ["", sgr(BOLD) + "Links" + sgr(0) if color else "Links"]
        width = len(str(len(page.links)))
        lines += [f"{number:>{width + 2}}. {url}" for number, url in enumerate(page.links, 1)]
    return "\n".join(lines) + "\n"
