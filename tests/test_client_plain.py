"""The plain line mode in a real pseudo-terminal and in a pipe, and the one-shot sender."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from bleeper.client import ChatClient, Message
from bleeper.client.events import Event
from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import ROOT, create_accounts, free_port
from tests.helpers import Terminal as HelperTerminal


async def person(server: ChatServer, name: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port_of(server))
    await client.connect()
    await client.register(name)
    return client


async def next_message(client: ChatClient, timeout: float = 10) -> Message:
    while True:
        event = await client.next_event(timeout)
        if isinstance(event, Message):
            return event


def Terminal(server: ChatServer, *args: str) -> HelperTerminal:
    """``bleeper chat --plain`` against *server* in a pseudo-terminal."""
    return HelperTerminal("chat", "--plain", "--port", str(port_of(server)), *args)


async def test_message_arriving_mid_typing_does_not_garble_the_line(server: ChatServer) -> None:
    bob = await person(server, "bob")
    term = Terminal(server, "--name", "carol")
    try:
        await term.see("you are carol")
        await term.see("everyone>")
        term.type("hello wor")  # typing, not finished
        await term.see("everyone> hello wor")
        await bob.say("interrupting message")
        rows = await term.see("bob: interrupting message")
        rows = await term.see("everyone> hello wor")
        # The message is printed above the prompt, and the half-typed line is intact on the last row.
        assert rows[-1] == "everyone> hello wor"
        assert rows[-2].endswith("bob: interrupting message")
        term.type("ld\r")
        message = await next_message(bob)
        assert (message.sender, message.text) == ("carol", "hello world")
        await term.see("you: hello world")
        term.type("/quit\r")
        await term.see("221 goodbye, carol")
        assert await term.exited() == 0
    finally:
        term.child.close(force=True)
    await bob.quit()


async def test_interactive_name_prompt_retries_with_the_suggestion(server: ChatServer) -> None:
    holder = await person(server, "dana")
    term = Terminal(server)
    try:
        await term.see("your name:")
        term.type("dana\r")
        await term.see("dana is taken; press Enter for dana2")
        await term.see("your name: dana2")
        term.type("\r")
        await term.see("you are dana2")
        term.child.sendcontrol("d")
        await term.see("221 goodbye, dana2")
        assert await term.exited() == 0
    finally:
        term.child.close(force=True)
    await holder.quit()


async def test_pipe_mode_sends_lines_prints_events_and_quits_at_end_of_input(server: ChatServer) -> None:
    bob = await person(server, "bob")
    script = "good morning\n/tell bob just you\n/join #icu\n/switch #icu\nto the group\n/who\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "chat", "--plain", "--name", "robot", "--port", str(port_of(server)),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(script.encode()), 20)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "you: good morning" in text
    assert "you → bob: just you" in text
    assert "203 #icu joined" in text
    assert "now talking to #icu" in text and "you → #icu: to the group" in text
    assert "  bob\n" in text and "robot groups=#icu" in text
    assert text.rstrip().endswith("221 goodbye, robot")
    got = [(await next_message(bob)).text for _ in range(2)]
    assert got == ["good morning", "just you"]
    await bob.quit()


async def test_pipe_mode_needs_a_name(server: ChatServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "chat", "--plain", "--port", str(port_of(server)),
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(b"hi\n"), 20)
    assert proc.returncode == 2 and "--name is required" in err.decode()


async def test_send_delivers_one_message_and_exits_zero(server: ChatServer) -> None:
    ward = await person(server, "ward")
    await ward.join("#ward7")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "send", "--port", str(port_of(server)), "--to", "#ward7", "--name", "monitor",
        "bed", "4", "alarm", cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert "sent message" in out.decode() and "reached 1" in out.decode()
    message = await next_message(ward)
    assert (message.sender, message.to, message.text) == ("monitor", "#ward7", "bed 4 alarm")
    while True:
        event = await ward.next_event(5)
        if isinstance(event, Event) and event.kind == "OFFLINE":
            assert event.args[:2] == ("monitor", "quit")
            break
    await ward.quit()


async def test_send_tries_each_server_given_until_one_answers(server: ChatServer) -> None:
    ward = await person(server, "ward")
    gone = free_port()  # nothing listens here: a cluster node that has died
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "send", "--to", "ward", "--name", "monitor", "bed", "5",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "BLEEPER_SERVERS": f"127.0.0.1:{gone},127.0.0.1:{port_of(server)}"},
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert (await next_message(ward)).text == "bed 5"
    bad = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "send", "--server", "127.0.0.1:99999", "--to", "ward", "x",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(bad.communicate(), 20)
    assert bad.returncode == 2 and "--server: '127.0.0.1:99999': port 99999 is out of range" in err.decode()
    await ward.quit()


async def test_send_failure_says_why_and_exits_one(server: ChatServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bleeper", "send", "--port", str(port_of(server)), "--to", "nobody1", "hello",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1 and "404 no such user: nobody1" in err.decode()


async def test_pipe_mode_logs_in_to_an_account(tmp_path: Path) -> None:
    db = await create_accounts(str(tmp_path / "accounts.db"), "nurse.kim")
    server = ChatServer(make_config(db=db))
    await server.start()
    try:
        reader = await person(server, "reader")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bleeper", "chat", "--plain", "--login", "--name", "nurse.kim",
            "--port", str(port_of(server)), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "BLEEPER_PASSWORD": "nurse.kim-password"},
        )  # fmt: skip
        _out, err = await asyncio.wait_for(proc.communicate(b"signed in and writing\n"), 20)
        assert proc.returncode == 0, err.decode()
        message = await next_message(reader)
        assert (message.sender, message.text) == ("nurse.kim", "signed in and writing")
        bad = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bleeper", "chat", "--plain", "--login", "--name", "nurse.kim",
            "--port", str(port_of(server)), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "BLEEPER_PASSWORD": "wrong-password"},
        )  # fmt: skip
        _, err = await asyncio.wait_for(bad.communicate(b""), 20)
        assert bad.returncode == 1 and "430 login failed" in err.decode()
        await reader.quit()
    finally:
        await server.stop(grace=0.5)
