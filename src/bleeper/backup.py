"""``bleeper backup`` and ``bleeper restore``: a consistent copy of the store, and putting one back."""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from bleeper.config import add_store_arguments, store_location
from bleeper.store import StoreError
from bleeper.store.sqlite import SqliteStore, in_use


def backup(args: argparse.Namespace) -> int:
    """SQLite: the online backup API gives a consistent copy while the server runs. PostgreSQL: pg_dump."""
    db = store_location(args.db, args.config, "backup")
    if db is None:
        return 2
    target = Path(args.file)
    if target.exists() and not args.force:
        print(f"bleeper backup: {target} exists; choose another name or pass --force", file=sys.stderr)
        return 1
    if db.startswith(("postgresql://", "postgres://")):
        return _run(["pg_dump", "--format=custom", f"--file={target}", db], "backup")
    source_path = db.removeprefix("sqlite:///")
    if not Path(source_path).is_file():
        print(f"bleeper backup: no database at {source_path}; check --db", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    print(f"backed up {source_path} to {target} ({target.stat().st_size:,} bytes)")
    return 0


def restore(args: argparse.Namespace) -> int:
    """Put a backup in place of the store. The server must be stopped; the backup is checked first."""
    db = store_location(args.db, args.config, "restore")
    if db is None:
        return 2
    source = Path(args.file)
    if not source.is_file():
        print(f"bleeper restore: {source} not found", file=sys.stderr)
        return 1
    if db.startswith(("postgresql://", "postgres://")):
        return _run(["pg_restore", "--clean", "--if-exists", f"--dbname={db}", str(source)], "restore")
    target = Path(db.removeprefix("sqlite:///"))
    problem = _check_backup(source)
    if problem:
        print(f"bleeper restore: {source} cannot be restored: {problem}", file=sys.stderr)
        return 1
    if in_use(str(target)):
        print(f"bleeper restore: {target} is in use; stop the server first", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    print(f"restored {target} from {source}; start the server to use it")
    return 0


def _check_backup(path: Path) -> str | None:
    import asyncio

    async def check() -> None:
        store = await SqliteStore.open(str(path), migrate=False)
        try:
            await store.schema_version()
        finally:
            await store.close()

    try:
        asyncio.run(check())
    except (StoreError, sqlite3.Error) as exc:
        return str(exc)
    return None


def _run(command: list[str], what: str) -> int:
    if shutil.which(command[0]) is None:
        print(f"bleeper {what}: {command[0]} is not installed; install the PostgreSQL client tools", file=sys.stderr)
        return 1
    return subprocess.call(command)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, func, help_text in (
        ("backup", backup, "copy the store to FILE (safe while the server runs)"),
        ("restore", restore, "replace the store with the backup in FILE (stop the server first)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        p.add_argument("file", metavar="FILE")
        add_store_arguments(p)
        if name == "backup":
            p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
        p.set_defaults(func=func)
