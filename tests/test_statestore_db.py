"""The state store's SQLite layer directly: versions, conditions and tombstones, in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from bleeper.statestore.db import Conflict, KeyValueDB, key_problem, value_problem


@pytest.mark.parametrize("where", ["memory", "file"])
def test_versions_conditions_and_tombstones(where: str, tmp_path: Path) -> None:
    db = KeyValueDB(":memory:" if where == "memory" else str(tmp_path / "kv.db"))
    first, created = db.put("a", "1")
    assert created and db.get("a") == first and first.version == 1
    second, created = db.put("a", "2", if_version=first.version)
    assert not created and second.version == 2
    with pytest.raises(Conflict) as lost:
        db.put("a", "3", if_version=first.version)
    assert lost.value.current == second
    with pytest.raises(Conflict):
        db.put("a", "3", if_absent=True)
    gone, _ = db.put("a", None)
    assert db.get("a") == gone and gone.value is None and db.items() == []
    with pytest.raises(KeyError):
        db.put("a", None)
    again, created = db.put("a", "back", if_absent=True)
    assert created and again.version == 4  # never a version used before
    db.put("ab", "x")
    db.put("b", "y")
    assert [e.key for e in db.items("a")] == ["a", "ab"] and db.count() == 3
    db.close()


def test_key_and_value_rules() -> None:
    assert key_problem("") and key_problem("k" * 257) and key_problem("a\nb") and key_problem("\ud800")
    assert key_problem("bed/4 ✓") is None and key_problem("é" * 128) is None
    assert value_problem("v" * 65536) is None and value_problem("v" * 65537) and value_problem("\ud800")
