"""The audit log end to end: what a running server records, and ``bleeper audit verify|export`` on both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bleeper.store import open_store
from bleeper.store.audit import content_hash
from tests.conftest import Start
from tests.helpers import ROOT, LineClient, login
from tests.test_store import execute, stored_entries


def audit(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bleeper", "audit", "--db", db, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)  # fmt: skip


async def test_logins_failures_and_messages_are_recorded_and_verify(db: str, start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    intruder = await LineClient.connect(server.addresses[0][1])
    assert (await intruder.command("LOGIN bob wrong-password")).code == 430
    assert (await intruder.command("LOGIN nobody whatever")).code == 430
    assert (await alice.command("TELL bob bed 12 needs fluids")).code == 250
    await server.stop(grace=0.5)

    entries = await stored_entries(db)
    kinds = [(e.kind, e.actor, e.subject) for e in entries]
    assert kinds[:3] == [
        ("login", "alice", "alice"),
        ("login-failed", "bob", "bob"),
        ("login-failed", "nobody", "nobody"),
    ]
    reasons = [json.loads(e.detail).get("reason") for e in entries[1:3]]
    assert reasons == ["wrong password", "no such account"]  # the log tells them apart; the client never could
    assert kinds[3][:2] == ("message", "alice")
    assert json.loads(entries[3].detail)["sha256"] == content_hash("bed 12 needs fluids")

    verified = audit(db, "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith(f"OK: 4 entries, chain head 4:{entries[3].hash}")
    exported = audit(db, "export")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["kind"] for line in lines] == ["login", "login-failed", "login-failed", "message"]
    assert "fluids" not in exported.stdout and "exported 4 entries" in exported.stderr


async def test_verify_reports_tampering_with_exit_code_1_and_checks_a_recorded_head(db: str, start: Start) -> None:
    server = await start()
    alice, _ = await login(server, "alice")
    for number in range(5):
        assert (await alice.command(f"TELL bob observation {number}")).code == 250
    await server.stop(grace=0.5)
    head = audit(db, "verify").stdout.split("chain head ")[1].split()[0]
    assert audit(db, "verify", "--head", head).stdout.endswith("the recorded head is in the chain\n")

    store = await open_store(db)
    try:
        await execute(store, "UPDATE audit SET detail = '{}' WHERE id = 4")
    finally:
        await store.close()
    broken = audit(db, "verify")
    assert broken.returncode == 1
    assert (
        broken.stdout == "BROKEN: entry 4 altered: its contents do not match its hash (3 entries before it check out)\n"
    )
    bad_head = audit(db, "verify", "--head", "12:abc")
    assert bad_head.returncode == 2 and "as printed by bleeper audit verify" in bad_head.stderr


async def test_export_by_time_and_to_a_file(db: str, start: Start, tmp_path: Path) -> None:
    server = await start()
    await login(server, "alice")
    await server.stop(grace=0.5)
    out = tmp_path / "audit.jsonl"
    assert audit(db, "export", "--since", "2000-01-01", "--output", str(out)).returncode == 0
    assert [json.loads(line)["kind"] for line in out.read_text().splitlines()] == ["login"]
    assert audit(db, "export", "--until", "2000-01-01").stdout == ""
    wrong = audit(db, "export", "--since", "yesterday")
    assert wrong.returncode == 2 and "use 2026-11-21" in wrong.stderr


def test_admin_actions_from_the_command_line_are_recorded(tmp_path: object) -> None:
    db = f"{tmp_path}/admin.db"
    run = [sys.executable, "-m", "bleeper", "user", "--db", db]
    subprocess.run([*run, "add", "dr.who", "--password-stdin"], input="long enough pw\n", text=True, check=True, cwd=ROOT,
                   capture_output=True, timeout=60)  # fmt: skip
    subprocess.run([*run, "remove", "dr.who"], check=True, cwd=ROOT, capture_output=True, timeout=60)
    lines = [json.loads(line) for line in audit(db, "export").stdout.splitlines()]
    assert [(line["kind"], line["subject"], line["detail"]["action"]) for line in lines] == [
        ("admin", "dr.who", "account added"), ("admin", "dr.who", "account removed")
    ]  # fmt: skip
    assert lines[0]["actor"].startswith("cli:") and lines[0]["detail"]["admin"] == 0
