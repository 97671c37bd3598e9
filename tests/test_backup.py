"""bleeper backup and restore, against a running server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import ROOT, LineClient


async def bleeper(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bleeper", *args], cwd=ROOT,
                                   capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_backup_while_running_then_restore(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    copy = tmp_path / "backups" / "copy.db"  # the folder is created as needed
    server = ChatServer(make_config(db=str(db)))
    await server.start()
    try:
        client = await LineClient.connect(port_of(server))
        await client.register("writer")
        await client.command("JOIN #kept")
        assert (await client.command("TELL #kept before the backup")).code == 250
        made = await bleeper("backup", "--db", str(db), str(copy))
        assert made.returncode == 0, made.stderr
        assert (await client.command("TELL #kept after the backup")).code == 250
        busy = await bleeper("restore", "--db", str(db), str(copy))
        assert busy.returncode == 1 and "stop the server first" in busy.stderr
        again = await bleeper("backup", "--db", str(db), str(copy))
        assert again.returncode == 1 and "--force" in again.stderr
    finally:
        await server.stop(grace=0.5)
    restored = await bleeper("restore", "--db", str(db), str(copy))
    assert restored.returncode == 0, restored.stderr
    server = ChatServer(make_config(db=str(db)))
    await server.start()
    try:
        history = await server.store.history("#kept", 10)  # type: ignore[union-attr]
        assert [m.text for m in history] == ["before the backup"]
    finally:
        await server.stop(grace=0.5)


async def test_restore_refuses_a_file_that_is_not_a_bleeper_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"junk" * 1000)
    result = await bleeper("restore", "--db", str(tmp_path / "target.db"), str(junk))
    assert result.returncode == 1 and "cannot be restored" in result.stderr
    assert not (tmp_path / "target.db").exists()
