"""``bleeper audit verify`` and ``bleeper audit export``: check the hash chain, hand the log to an auditor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TextIO

from bleeper.config import add_store_arguments, store_location
from bleeper.store import Store, StoreError, open_store
from bleeper.store.audit import AuditEntry, ChainCheck, parse_head

PAGE = 5000


async def pages(
    store: Store, since_ms: int | None = None, until_ms: int | None = None
) -> AsyncIterator[list[AuditEntry]]:
    after = 0
    while page := await store.audit_entries(after, PAGE, since_ms, until_ms):
        yield page
        after = page[-1].id


def parse_time(text: str) -> int:
    """``2026-11-21``, ``2026-11-21T15:00`` (UTC unless it says otherwise) or milliseconds since 1970."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use 2026-11-21 or 2026-11-21T15:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


async def run_verify(store: Store, head: tuple[int, str] | None, out: TextIO, progress: TextIO | None) -> int:
    check = ChainCheck(head)
    async for page in pages(store):
        if not all(map(check.add, page)):
            break
        if progress is not None:
            print(f"\rchecked {check.count:,} entries", end="", file=progress, flush=True)
    if progress is not None and check.count:
        print(file=progress)
    verdict = check.verdict()
    if verdict.ok:
        found = "; the recorded head is in the chain" if head is not None else ""
        print(f"OK: {verdict.count} entries, chain head {verdict.head_id}:{verdict.head_hash}{found}", file=out)
        return 0
    print(f"BROKEN: {verdict.problem} ({verdict.count} entries before it check out)", file=out)
    return 1


async def run_export(store: Store, since_ms: int | None, until_ms: int | None, out: TextIO) -> int:
    count = 0
    async for page in pages(store, since_ms, until_ms):
        out.writelines(_lines(page))
        count += len(page)
    print(f"exported {count} entries", file=sys.stderr)
    return 0


def _lines(page: list[AuditEntry]) -> Iterator[str]:
    for entry in page:
        yield entry.as_json() + "\n"


async def run_audit(args: argparse.Namespace) -> int:
    db = store_location(args.db, args.config, "audit")
    if db is None:
        return 2
    try:
        store = await open_store(db)
    except StoreError as exc:
        print(f"bleeper audit: {exc}", file=sys.stderr)
        return 2
    try:
        if args.action == "verify":
            progress = sys.stderr if sys.stderr.isatty() else None
            return await run_verify(store, args.head, sys.stdout, progress)
        return await run_export(store, args.since, args.until, args.out)
    except StoreError as exc:
        print(f"bleeper audit: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()


def _head(text: str) -> tuple[int, str]:
    try:
        return parse_head(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        help="verify or export the tamper-evident audit log",
        description="The audit log records logins, messages (metadata and a hash of the text, never the text), "
        "administrative actions and more, each entry holding the hash of the one before.",
        epilog="Examples: bleeper audit verify;  bleeper audit export --since 2026-11-01 --output nov.jsonl",
    )
    add_store_arguments(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "verify",
        help="check the hash chain",
        description="Check every entry against its hash and the one before it. Prints OK with the entry count "
        "and the chain head, or the first entry that was altered, inserted or removed (exit code 1).",
    )
    check.add_argument(
        "--head",
        type=_head,
        metavar="N:HASH",
        help="a chain head recorded earlier (printed by verify, logged by the server): it must still be there, "
        "which catches a log rewritten or cut short from that entry on",
    )
    export = actions.add_parser(
        "export", help="write entries as JSON lines", description="Write audit entries as JSON, one per line."
    )
    export.add_argument("--since", type=parse_time, metavar="WHEN", help="from this time (2026-11-21[T15:00Z])")
    export.add_argument("--until", type=parse_time, metavar="WHEN", help="up to, not including, this time")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=_audit)


def _audit(args: argparse.Namespace) -> int:
    from bleeper.framework.runner import run

    if getattr(args, "output", None) not in (None, "-"):
        with open(args.output, "w", encoding="utf-8") as args.out:
            return run(run_audit(args))
    args.out = sys.stdout
    return run(run_audit(args))
