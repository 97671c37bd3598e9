"""Access to the machine's PostgreSQL for tests: each test gets its own database, dropped afterwards.

Without PostgreSQL the tests skip with a clear message, unless BLEEPER_REQUIRE_SERVICES=1 (as in CI), where
they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

ADMIN_URL = os.environ.get("BLEEPER_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")


def require_services() -> bool:
    return os.environ.get("BLEEPER_REQUIRE_SERVICES", "") not in ("", "0")


def unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not available ({exc}); start it, or set BLEEPER_TEST_POSTGRES"
    if require_services():
        pytest.fail(message + " (BLEEPER_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty database; yields its URL."""
    name = f"bleeper_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        unavailable("PostgreSQL", exc)
        raise
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def location(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """Where a test's store lives: a file under *tmp_path*, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        yield str(tmp_path / "data" / "bleeper.db")
    else:
        async with postgres_database() as url:
            yield url
