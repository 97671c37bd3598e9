"""Screen names and group names: what is allowed, and when two names are the same.

Two names are the same when they match after NFKC normalisation and case folding, so ``Dr.Smith``,
``dr.smith`` and ``ｄｒ.ｓｍｉｔｈ`` (full-width) cannot belong to different people at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Container

MAX_NAME = 32
_PUNCTUATION = frozenset("_-.")

RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "all",
        "anonymous",
        "bleeper",
        "everyone",
        "here",
        "me",
        "nobody",
        "operator",
        "root",
        "server",
        "system",
        "you",
    }
)

NAME_RULE = f"use 1-{MAX_NAME} letters, digits, '_', '-' or '.'"


def name_key(name: str) -> str:
    """The form used to compare names (NFKC, case folded)."""
    if name.isascii():  # the usual case; NFKC leaves ASCII unchanged
        return name.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def group_key(group: str) -> str:
    """How groups are kept and stored: ``#ICU`` and ``#icu`` are ``#icu``."""
    return "#" + name_key(group[1:])


def _allowed(text: str) -> bool:
    return all(ch.isalnum() or ch in _PUNCTUATION for ch in text)


def _well_formed(name: str) -> bool:
    if not 1 <= len(name) <= MAX_NAME or not _allowed(name):
        return False
    key = name_key(name)
    return 1 <= len(key) <= MAX_NAME and _allowed(key)


def name_problem(name: str) -> str | None:
    """Why *name* cannot be a screen name, or None when it can."""
    if not _well_formed(name):
        return f'invalid name "{name[:40]}": {NAME_RULE}'
    if name_key(name) in RESERVED:
        return f'"{name}" is reserved; choose another name'
    return None


def group_problem(group: str) -> str | None:
    """Why *group* (including its ``#``) cannot be a group name, or None when it can."""
    if not group.startswith("#") or not _well_formed(group[1:]):
        return f'invalid group name "{group[:40]}": # then {NAME_RULE}'
    if name_key(group[1:]) == "everyone":  # IRC's name for everyone online (SAY)
        return '"#everyone" means everyone online; choose another group name'
    return None


def suggest(name: str, taken: Container[str]) -> str:
    """A free name close to *name*: ``bob`` -> ``bob2``, ``bob3``..."""
    for number in range(2, 10_000):
        suffix = str(number)
        candidate = name[: MAX_NAME - len(suffix)] + suffix
        if name_key(candidate) not in taken:
            return candidate
    return name[: MAX_NAME - 6] + "-guest"
