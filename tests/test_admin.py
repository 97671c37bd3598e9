"""bleeper user: account administration from the command line, against a real store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bleeper.store import open_store
from bleeper.store.passwords import verify_password
from tests.helpers import ROOT


def user(db: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bleeper", "user", "--db", str(db), *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip


async def test_add_list_show_passwd_remove(tmp_path: Path) -> None:
    db = tmp_path / "accounts.db"
    assert "no accounts yet" in user(db, "list").stdout
    added = user(db, "add", "Dr.Smith", "--admin", "--password-stdin", stdin="correct horse battery\n")
    assert added.returncode == 0 and "added admin account Dr.Smith" in added.stdout
    listed = user(db, "list").stdout
    assert "Dr.Smith" in listed and "admin" in listed
    shown = user(db, "show", "dr.smith").stdout  # names match whatever the case
    assert "admin:    yes" in shown and "waiting:  0" in shown

    store = await open_store(str(db))
    account = await store.get_account("dr.smith")
    await store.close()
    assert account is not None and verify_password(account.password_hash, "correct horse battery")
    assert account.password_hash.startswith("$argon2id$")

    assert user(db, "passwd", "dr.smith", "--password-stdin", stdin="another long one\n").returncode == 0
    store = await open_store(str(db))
    account = await store.get_account("dr.smith")
    await store.close()
    assert account is not None and verify_password(account.password_hash, "another long one")

    removed = user(db, "remove", "Dr.Smith")
    assert removed.returncode == 0 and "no accounts yet" in user(db, "list").stdout


def test_mistakes_are_explained(tmp_path: Path) -> None:
    db = tmp_path / "accounts.db"
    short = user(db, "add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    no_terminal = user(db, "add", "bob")
    assert no_terminal.returncode == 1 and "--password-stdin" in no_terminal.stderr
    bad_name = user(db, "add", "bob!", "--password-stdin", stdin="long enough pw\n")
    assert bad_name.returncode == 1 and "invalid name" in bad_name.stderr
    assert user(db, "add", "bob", "--password-stdin", stdin="long enough pw\n").returncode == 0
    twice = user(db, "add", "BOB", "--password-stdin", stdin="long enough pw\n")
    assert twice.returncode == 1 and "already has an account" in twice.stderr
    missing = user(db, "show", "nobody1")
    assert missing.returncode == 1 and "bleeper user list" in missing.stderr
