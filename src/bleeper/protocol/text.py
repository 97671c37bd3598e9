"""Cleaning text that came off the wire before anyone else sees it.

A message is shown on other people's terminals, so a sender must not be able to move their cursor, clear
their screen or reverse the direction of text. C0 and C1 controls, DEL and the bidirectional embedding,
override and isolate marks are removed; tabs and Unicode line and paragraph separators become spaces.
Zero-width joiners stay, because emoji sequences need them.
"""

from __future__ import annotations

_BIDI_CONTROLS = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]

_TABLE: dict[int, str | None] = dict.fromkeys([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
_TABLE.update(dict.fromkeys(_BIDI_CONTROLS))
_TABLE.update({0x09: " ", 0x2028: " ", 0x2029: " ", 0x85: " "})


def clean_text(text: str) -> str:
    """Return *text* with control and escape characters removed (fast when there are none)."""
    if text.isprintable():
        return text
    return text.translate(_TABLE)
