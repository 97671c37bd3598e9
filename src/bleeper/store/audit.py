"""The audit log's hash chain: each entry holds the hash of the one before, so altering, inserting or removing
an entry breaks the chain where it happened.

A chain alone cannot stop someone who rewrites every entry after the one they changed; that is caught by
comparing the head (the last entry's number and hash) with one recorded elsewhere. The server logs the head
when it starts and stops, and ``bleeper audit verify --head N:HASH`` checks that an earlier head is still
in the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bleeper.chat.records import AuditEvent, content_hash

GENESIS = "0" * 64  # the "previous hash" of the first entry


class AuditEntry(NamedTuple):
    """One entry as stored: a tuple, so a batch inserts its entries as they are."""

    id: int
    at_ms: int
    kind: str
    actor: str
    subject: str
    detail: str  # canonical JSON object
    prev_hash: str
    hash: str

    def as_json(self) -> str:
        """One line of ``bleeper audit export``."""
        return json.dumps({
            "id": self.id, "at_ms": self.at_ms, "kind": self.kind, "actor": self.actor, "subject": self.subject,
            "detail": json.loads(self.detail), "prev_hash": self.prev_hash, "hash": self.hash,
        }, ensure_ascii=False)  # fmt: skip


# What an entry says before it is numbered and chained: (at_ms, kind, actor, subject, canonical detail).
Record = tuple[int, str, str, str, str]


def canonical_detail(detail: Iterable[tuple[str, str | int]]) -> str:
    """Sorted keys, no spaces: the same detail always hashes the same."""
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record(event: AuditEvent) -> Record:
    for text in (event.kind, event.actor, event.subject):
        if "\n" in text:
            raise ValueError(f"audit fields are single lines: {text!r}")
    return (event.at_ms, event.kind, event.actor, event.subject, canonical_detail(event.detail))


def message_record(msg_id: int, at_ms: int, actor: str, to: str, text: str, recipients: int) -> Record:
    """A stored message's entry, built without the general JSON encoder: one per message, on the hot path.
    Same bytes as :func:`canonical_detail` would give."""
    quoted = f'"{to}"' if to.isprintable() and '"' not in to and "\\" not in to else json.dumps(to, ensure_ascii=False)
    detail = f'{{"recipients":{recipients},"sha256":"{content_hash(text)}","to":{quoted}}}'
    return (at_ms, "message", actor, str(msg_id), detail)


def entry_hash(entry_id: int, at_ms: int, kind: str, actor: str, subject: str, detail: str, prev_hash: str) -> str:
    """SHA-256 over the entry's fields, one per line, its number included (so renumbering shows) and the
    previous hash last. No field holds a newline: names cannot, and the detail is JSON."""
    fields = f"{entry_id}\n{at_ms}\n{kind}\n{actor}\n{subject}\n{detail}\n{prev_hash}"
    return hashlib.sha256(fields.encode()).hexdigest()


def chain(last_id: int, last_hash: str, records: Sequence[Record]) -> list[AuditEntry]:
    """Entries for *records*, continuing the chain after entry *last_id* with hash *last_hash*."""
    entries: list[AuditEntry] = []
    prev = last_hash
    for number, (at_ms, kind, actor, subject, detail) in enumerate(records, start=last_id + 1):
        digest = entry_hash(number, at_ms, kind, actor, subject, detail, prev)
        entries.append(AuditEntry(number, at_ms, kind, actor, subject, detail, prev, digest))
        prev = digest
    return entries


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    count: int  # entries checked
    head_id: int
    head_hash: str
    problem: str = ""  # what is wrong, and where, when not ok
    head_found: bool | None = None  # whether an expected earlier head is in the chain (None: none was given)


class ChainCheck:
    """Checks entries fed in id order, one page at a time (a log can be millions of entries long)."""

    def __init__(self, expect_head: tuple[int, str] | None = None) -> None:
        self.expect_head = expect_head
        self.count, self.last_id, self.last_hash = 0, 0, GENESIS
        self.head_found: bool | None = None if expect_head is None else False
        self.problem = ""

    def add(self, entry: AuditEntry) -> bool:
        """False once the chain is broken (see :attr:`problem`)."""
        if self.problem:
            return False
        last_id = self.last_id
        if entry.id != last_id + 1:
            if entry.id > last_id + 1:
                missing = f"entry {last_id + 1}" if entry.id == last_id + 2 else f"entries {last_id + 1}-{entry.id - 1}"
                return self._broken(f"{missing} removed: entry {entry.id} follows entry {last_id}")
            return self._broken(f"entry {entry.id} out of place: it follows entry {last_id}")
        recomputed = entry_hash(entry.id, entry.at_ms, entry.kind, entry.actor, entry.subject, entry.detail,
                                entry.prev_hash)  # fmt: skip
        if recomputed != entry.hash:
            return self._broken(f"entry {entry.id} altered: its contents do not match its hash")
        if entry.prev_hash != self.last_hash:
            return self._broken(f"entry {entry.id} does not follow entry {last_id}: an entry was inserted, removed "
                                "or replaced between them")  # fmt: skip
        self.count, self.last_id, self.last_hash = self.count + 1, entry.id, entry.hash
        if self.expect_head is not None and self.expect_head[0] == entry.id:
            self.head_found = self.expect_head[1] == entry.hash
            if not self.head_found:
                return self._broken(f"entry {entry.id} is not the recorded head: the log was rewritten from there on")
        return True

    def _broken(self, problem: str) -> bool:
        self.problem = problem
        return False

    def verdict(self) -> Verdict:
        if not self.problem and self.expect_head is not None and not self.head_found:
            self.problem = f"the recorded head, entry {self.expect_head[0]}, is missing: the log was cut short"
        return Verdict(not self.problem, self.count, self.last_id, self.last_hash, self.problem, self.head_found)


def verify(entries: Iterable[AuditEntry], expect_head: tuple[int, str] | None = None) -> Verdict:
    """Walk the chain in id order and report the first break."""
    check = ChainCheck(expect_head)
    for entry in entries:
        if not check.add(entry):
            break
    return check.verdict()


def parse_head(text: str) -> tuple[int, str]:
    """``N:HASH`` as printed by verify."""
    number, _, digest = text.partition(":")
    if not number.isdigit() or len(digest) != 64:
        raise ValueError("a head looks like 1234:<64 hex digits>, as printed by bleeper audit verify")
    return int(number), digest.lower()


def entries_from_rows(rows: Iterable[Sequence[object]]) -> Iterator[AuditEntry]:
    for row in rows:
        entry_id, at_ms, kind, actor, subject, detail, prev_hash, digest = row
        yield AuditEntry(int(entry_id), int(at_ms), str(kind), str(actor), str(subject), str(detail),  # type: ignore[call-overload]
                         str(prev_hash), str(digest))  # fmt: skip


__all__ = ["GENESIS", "AuditEntry", "ChainCheck", "Verdict", "chain", "content_hash", "record", "verify"]
