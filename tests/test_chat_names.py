from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bleeper.chat.names import group_problem, name_key, name_problem, suggest
from bleeper.chat.ratelimit import ALLOWED, FLOOD, LIMITED, TokenBucket


@pytest.mark.parametrize("name", ["alice", "Dr.Smith", "nurse_jo-2", "Zoë", "王医生", "a", "x" * 32])
def test_valid_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "x" * 33, "a b", "bob!", "#icu", "@bob", "a,b", "¼", "a\u200db"])
def test_invalid_names(name: str) -> None:
    problem = name_problem(name)
    assert problem is not None and "invalid name" in problem


@pytest.mark.parametrize("name", ["server", "Admin", "EVERYONE", "ｓｅｒｖｅｒ"])
def test_reserved_names(name: str) -> None:
    assert "reserved" in (name_problem(name) or "")


def test_names_equal_ignoring_case_and_compatibility_forms() -> None:
    assert name_key("Dr.Smith") == name_key("dr.smith") == name_key("ＤＲ.ｓｍｉｔｈ")
    assert name_key("Straße") == name_key("STRASSE")


def test_group_names() -> None:
    assert group_problem("#icu") is None
    assert group_problem("#all") is None
    assert group_problem("icu") is not None
    assert group_problem("#") is not None
    assert group_problem("#a b") is not None


def test_suggest_finds_a_free_name() -> None:
    taken = {name_key(n) for n in ["bob", "bob2", "bob3"]}
    assert suggest("Bob", taken) == "Bob4"
    long = "x" * 32
    assert len(suggest(long, {name_key(long)})) == 32


@given(st.text(min_size=1, max_size=40))
def test_suggestion_is_always_a_valid_free_name(name: str) -> None:
    if name_problem(name) is None:
        free = suggest(name, {name_key(name)})
        assert name_problem(free) is None or "reserved" in (name_problem(free) or "")
        assert name_key(free) != name_key(name)


def test_token_bucket_limits_then_detects_flood() -> None:
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [ALLOWED] * 3
    assert bucket.take(0.0) == LIMITED
    assert bucket.take(0.15) == LIMITED  # 0.5 tokens regained, still short
    assert bucket.take(0.25) == LIMITED  # 0.5 more regained, but the refused commands left a debt
    assert bucket.take(1.0) == ALLOWED
    flood = TokenBucket(rate=1, burst=2, now=0.0)
    verdicts = [flood.take(0.0) for _ in range(6)]
    assert verdicts[:2] == [ALLOWED, ALLOWED] and FLOOD in verdicts


def test_rate_zero_means_unlimited() -> None:
    bucket = TokenBucket(rate=0, burst=1, now=0.0)
    assert all(bucket.take(0.0) == ALLOWED for _ in range(1000))
