"""The audit chain's pure parts: canonical encoding and hashing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bleeper.chat.records import AuditEvent
from bleeper.store.audit import GENESIS, canonical_detail, chain, content_hash, message_record, record, verify


@given(to=st.text(), text=st.text(), recipients=st.integers(min_value=0, max_value=10_000))
def test_the_fast_message_entry_is_the_canonical_one(to: str, text: str, recipients: int) -> None:
    fast = message_record(7, 1000, "alice", to, text, recipients)
    slow = record(AuditEvent(1000, "message", "alice", "7",
                             (("to", to), ("sha256", content_hash(text)), ("recipients", recipients))))  # fmt: skip
    assert fast == slow


def test_every_field_is_covered_by_the_hash() -> None:
    (entry,) = chain(0, GENESIS, [record(AuditEvent(5, "login", "ann", "ann", (("address", "10.0.0.1:1"),)))])
    assert verify([entry]).ok
    for index in range(1, 7):  # each field but the hash itself, changed, breaks it
        changed = list(entry)
        changed[index] = 6 if isinstance(changed[index], int) else changed[index] + "x"
        assert not verify([type(entry)(*changed)]).ok


def test_fields_must_be_single_lines() -> None:
    with pytest.raises(ValueError, match="single lines"):
        record(AuditEvent(1, "admin", "cli:root", "a\nb"))


def test_details_are_canonical_whatever_their_order() -> None:
    assert canonical_detail([("b", 1), ("a", "é")]) == canonical_detail([("a", "é"), ("b", 1)]) == '{"a":"é","b":1}'
