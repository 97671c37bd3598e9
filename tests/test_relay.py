"""``bleeper relay`` against a real state store process: turns mode started at the same instant, a partner
killed and replaced, a full room; free mode with five writers at once (nothing lost or duplicated, one order
for all), a store restart in the middle; the prompt_toolkit terminal."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bleeper.statestore import AsyncStateStore, StateStore
from bleeper.statestore.relay import FreeRelay
from tests.helpers import ROOT, Terminal, free_port, running_store

LEASE = "1.5"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_store(tmp_path_factory.mktemp("relay"), "--max-wait", "12") as url:
        yield url


RUNNING: list[Relay] = []


@pytest.fixture(autouse=True)
def no_relay_left_running() -> Iterator[None]:
    """Whatever a test does, every relay process it started is gone after it."""
    yield
    while RUNNING:
        RUNNING.pop().kill()


def room(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


class Relay:
    """``bleeper relay`` in a pipe: lines written to it are messages; what it prints is collected."""

    def __init__(self, url: str, name: str, room: str, *args: str, start: threading.Event | None = None) -> None:
        self.name = name
        self.command = [sys.executable, "-m", "bleeper", "relay", "--store", url, "--name", name, "--room", room,
                        *args]  # fmt: skip
        self.lines: list[str] = []
        self.errors = ""
        self._seen = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        if start is None:
            self.launch()

    def launch(self) -> None:
        RUNNING.append(self)
        self.proc = subprocess.Popen(self.command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def write(self, *lines: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, test: Callable[[list[str]], bool], what: str, timeout: float = 20) -> list[str]:
        with self._seen:
            if not self._seen.wait_for(lambda: test(self.lines), timeout):
                raise AssertionError(f"{self.name} never showed {what}; it showed:\n" + "\n".join(self.lines))
            return list(self.lines)

    def see(self, text: str, timeout: float = 20) -> list[str]:
        return self.wait_for(lambda lines: text in lines, repr(text), timeout)

    def messages(self) -> list[str]:
        return [line for line in self.lines if not line.startswith("*")]

    def end(self, timeout: float = 20) -> int:
        """Close its input and wait for it to leave."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout)
        assert self.proc.stderr is not None
        self.errors = self.proc.stderr.read()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def alternates(messages: list[str]) -> bool:
    senders = [line.split(":", 1)[0] for line in messages]
    return all(a != b for a, b in itertools.pairwise(senders))


def test_two_people_starting_at_the_same_instant_take_turns(store_url: str) -> None:
    """Both send at once, before either knows the other is there: one create wins, nobody waits forever."""
    for attempt in range(3):
        place = room(f"turns{attempt}")
        go = threading.Event()
        pair = [Relay(store_url, name, place, "--mode", "turns", start=go) for name in ("alice", "bob")]
        launchers = [threading.Thread(target=lambda r=r, go=go: (go.wait(), r.launch())) for r in pair]
        for thread in launchers:
            thread.start()
        go.set()
        for thread in launchers:
            thread.join()
        try:
            for relay in pair:
                relay.write(*(f"{relay.name} {n}" for n in range(1, 4)))
            for relay in pair:
                relay.wait_for(lambda lines: len([x for x in lines if not x.startswith("*")]) == 6, "six messages")
            alice, bob = pair
            assert alice.messages() == bob.messages()
            assert alternates(alice.messages()), alice.messages()
            assert sorted(alice.messages()) == sorted(f"{r.name}: {r.name} {n}" for r in pair for n in (1, 2, 3))
            assert [relay.end() for relay in pair] == [0, 0]
        finally:
            for relay in pair:
                relay.kill()


def test_a_partner_killed_mid_conversation_is_detected_and_replaced(store_url: str) -> None:
    place = room("killed")
    alice = Relay(store_url, "alice", place, "--mode", "turns", "--lease", LEASE)
    alice.see(f"* you are in room {place}; nobody else is here yet. Whoever sends first starts")
    bob = Relay(store_url, "bob", place, "--mode", "turns", "--lease", LEASE)
    carol = dave = None
    try:
        bob.see(f"* you are in room {place} with alice")
        alice.write("a1")
        bob.see("alice: a1")
        bob.write("b1")
        alice.see("bob: b1")
        alice.write("a2")
        bob.see("alice: a2")
        bob.kill()  # mid-conversation, with the turn his: no goodbye, his seat and lease left in the store
        alice.see(f"* bob stopped answering (no heartbeat for {LEASE} s) and is gone; someone else can join this "
                  "room now")  # fmt: skip
        carol = Relay(store_url, "carol", place, "--mode", "turns", "--lease", LEASE)
        lines = carol.see("* your turn")
        assert "alice: a2" in lines  # the message bob never answered waits for whoever takes his place
        alice.see("* carol joined; carol's turn")
        carol.write("c1")
        alice.see("carol: c1")
        alice.write("a3")
        carol.see("alice: a3")
        # A third person is told the room is full, once the two are seen to be alive.
        dave = Relay(store_url, "dave", place, "--mode", "turns", "--lease", LEASE)
        assert dave.end() == 1
        assert f"room {place} is full: alice and carol are talking there" in dave.errors
        assert alice.messages() == ["alice: a1", "bob: b1", "alice: a2", "carol: c1", "alice: a3"]
        assert carol.end() == 0
        alice.see("* carol left")
        assert alice.end() == 0
    finally:
        for relay in (alice, bob, carol, dave):
            if relay is not None:
                relay.kill()
    with StateStore(store_url) as store:  # both left cleanly: their seats are free again
        assert store.items_with_prefix(f"relay/{place}/turns/seat") == []


def test_a_newcomer_takes_over_a_seat_whose_holder_died_unseen(store_url: str) -> None:
    """Both people killed: nobody is left to notice, so the next one watches the leases and takes a seat."""
    place = room("deserted")
    pair = [Relay(store_url, "alice", place, "--mode", "turns", "--lease", LEASE)]
    try:
        pair[0].see(f"* you are in room {place}; nobody else is here yet. Whoever sends first starts")
        pair.append(Relay(store_url, "bob", place, "--mode", "turns", "--lease", LEASE))
        pair[1].see(f"* you are in room {place} with alice")
        for relay in pair:
            relay.kill()
        erin = Relay(store_url, "erin", place, "--mode", "turns", "--lease", LEASE)
        lines = erin.see("* alice had stopped answering; you take their place")
        assert (
            lines[0]
            == f"* room {place} has two people (alice and bob); checking for {LEASE} s whether both are still there"
        )
        erin.see("* bob stopped answering (no heartbeat for 1.5 s) and is gone; someone else can join this room now")
        assert erin.end() == 0
    finally:
        for relay in pair:
            relay.kill()


def test_five_writers_at_once_lose_nothing_and_agree_on_the_order(store_url: str) -> None:
    place = room("free")
    people = [Relay(store_url, f"p{n}", place) for n in range(5)]
    try:
        for relay in people:
            relay.wait_for(lambda lines: sum(line.endswith(" joined") for line in lines) == 5, "five joins")
        writers = [threading.Thread(target=relay.write, args=[f"{relay.name} says {n}" for n in range(20)])
                   for relay in people]  # fmt: skip
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        for relay in people:
            relay.wait_for(lambda lines: len([x for x in lines if not x.startswith("*")]) >= 100, "100 messages")
        first = people[0].messages()
        expected = {f"{r.name}: {r.name} says {n}" for r in people for n in range(20)}
        assert len(first) == 100 and set(first) == expected  # nothing lost, nothing twice
        for relay in people:
            assert relay.messages() == first  # one order, agreed by everyone
            mine = [line for line in first if line.startswith(relay.name + ":")]
            assert mine == [f"{relay.name}: {relay.name} says {n}" for n in range(20)]  # each in its own order
        assert [relay.end() for relay in people] == [0] * 5
    finally:
        for relay in people:
            relay.kill()
    with StateStore(store_url) as store:  # the log itself: contiguous slots, 5 joins + 100 messages + 5 leaves
        log = store.items_with_prefix(f"relay/{place}/free/0")
        assert [key.rsplit("/", 1)[1] for key, _, _ in log] == [f"{n:010d}" for n in range(1, 111)]
        assert store[f"relay/{place}/free/head"] == "110"
        kinds = [json.loads(value)["kind"] for _, value, _ in log]
        assert kinds.count("say") == 100 and kinds.count("join") == 5 and kinds.count("leave") == 5


async def test_many_concurrent_writers_in_one_process_fill_every_slot_once(store_url: str) -> None:
    """Harder contention than separate processes give: 12 writers, each with 4 messages in flight at once."""
    place = room("crowd")
    shown: dict[str, list[str]] = {}
    async with AsyncStateStore(store_url) as store:
        relays = []
        for n in range(12):
            lines = shown.setdefault(f"w{n}", [])
            relays.append(FreeRelay(store, place, f"w{n}", lines.append, history=0))
        for relay in relays:
            await relay.join()
        await asyncio.gather(*(relay.send(f"{relay.name}/{k}") for relay in relays for k in range(4)))
        for relay in relays:
            await relay.leave()
        log = await store.items_with_prefix(f"relay/{place}/free/0")
    entries = [json.loads(value) for _, value, _ in log]
    assert [key.rsplit("/", 1)[1] for key, _, _ in log] == [f"{n:010d}" for n in range(1, 12 * 6 + 1)]
    said = sorted(entry["text"] for entry in entries if entry["kind"] == "say")
    assert said == sorted(f"w{n}/{k}" for n in range(12) for k in range(4))
    last = shown["w11"]  # the last to leave saw everyone's messages, in log order
    assert [line for line in last if not line.startswith("*")] == [
        f"{e['name']}: {e['text']}" for e in entries if e["kind"] == "say"
    ]


def test_a_store_restart_mid_conversation_loses_and_doubles_nothing(tmp_path: Path) -> None:
    port = free_port()
    place = room("restart")
    with running_store(tmp_path, port=port) as url:
        alice, bob = Relay(url, "alice", place), Relay(url, "bob", place)
        alice.wait_for(lambda lines: "* bob joined" in lines, "bob joining")
        alice.write("before")
        bob.see("alice: before")
    try:
        alice.write("while it is down")  # the store is stopped: the relay waits, retrying
        # Said once: "cannot reach ...", or "stopping" when a request of the relay's met the store shutting down
        alice.wait_for(lambda lines: any(line.startswith((f"* cannot reach the state store at {url}",
                                                          "* the state store is stopping"))
                                         and line.endswith("; retrying") for line in lines),
                       "that the store is unreachable")  # fmt: skip
        with running_store(tmp_path, port=port):
            alice.see("* the state store answers again")
            bob.see("alice: while it is down")
            bob.write("after")
            alice.see("bob: after")
            assert alice.end() == 0 and bob.end() == 0
        assert alice.messages() == bob.messages() == ["alice: before", "alice: while it is down", "bob: after"]
    finally:
        alice.kill()
        bob.kill()


async def test_messages_arriving_while_typing_leave_the_line_intact(store_url: str) -> None:
    place = room("terminal")
    term = Terminal("relay", "--store", store_url, "--name", "carol", "--room", place, "--mode", "turns",
                    "--lease", LEASE)  # fmt: skip
    bob = None
    try:
        await term.see("carol (your turn)>")
        bob = Relay(store_url, "bob", place, "--mode", "turns", "--lease", LEASE)
        await term.see("* bob joined; nobody has spoken yet: whoever sends first starts")
        term.type("hello b")  # half typed when bob's message arrives
        await term.see("carol (your turn)> hello b")
        bob.write("I go first")
        rows = await term.see("bob: I go first")
        rows = await term.see("carol (your turn)> hello b")
        assert rows[-1] == "carol (your turn)> hello b"  # printed above the prompt; the typing is intact
        assert rows[-2] == "bob: I go first"
        term.type("ob\r")
        bob.see("carol: hello bob")
        await term.see("carol: hello bob")  # the message as sent, then whose turn it is
        await term.see("carol (bob's turn)>")
        term.type("too soon\r")
        await term.see("* queued: waiting for bob")
        bob.write("ok")
        await term.see("carol: too soon")
        bob.see("carol: too soon")
        term.type("never answered\r")  # bob's turn, and carol leaves first: she is told it did not go
        await term.see("* queued: waiting for bob")
        term.type("/quit\r")
        await term.see("* not sent (it was not your turn yet): never answered")
        assert await term.exited() == 0
        bob.see("* carol left")
        assert bob.end() == 0
    finally:
        term.child.close(force=True)
        if bob is not None:
            bob.kill()


def test_relay_command_line_errors_say_what_to_do(store_url: str) -> None:
    def relay(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bleeper", "relay", *args], cwd=ROOT, capture_output=True,
                              text=True, input="", timeout=30)  # fmt: skip

    assert relay("--help").returncode == 0
    missing = f"http://127.0.0.1:{free_port()}"
    down = relay("--store", missing, "--name", "a")
    assert down.returncode == 1 and f"cannot reach the state store at {missing}" in down.stderr
    bad = relay("--store", store_url, "--name", "a", "--room", "no spaces")
    assert bad.returncode == 1 and "room 'no spaces': use 1-64 letters" in bad.stderr
    mode = subprocess.run([sys.executable, "-m", "bleeper", "relay", "--mode", "loud"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert mode.returncode == 2 and "invalid choice: 'loud'" in mode.stderr


def test_the_readme_relay_between_two_terminals(tmp_path: Path) -> None:
    """The README's two transcripts, replayed (in pipes: the help line is for terminals only)."""
    text = (ROOT / "README.md").read_text()
    shown = dict(re.findall(r"<!-- relay: (\w+) -->\n```text\n(.*?)```", text, re.S))
    expected = {who: [line for line in body.splitlines() if not line.startswith("* type a message")]
                for who, body in shown.items()}  # fmt: skip
    with running_store(tmp_path) as url:
        alice = Relay(url, "alice", "lobby", "--mode", "turns")
        bob = None
        try:
            alice.see(expected["alice"][0])
            bob = Relay(url, "bob", "lobby", "--mode", "turns")
            alice.see(expected["alice"][1])
            bob.see(expected["bob"][1])  # bob has finished joining (a person would not type faster)
            alice.write(expected["alice"][2].removeprefix("alice: "))
            bob.see(expected["bob"][2])
            bob.write(expected["bob"][3].removeprefix("bob: "))
            alice.see(expected["alice"][3])
            alice.write(expected["alice"][4].removeprefix("alice: "))
            bob.see(expected["bob"][4])
            assert bob.end() == 0
            alice.see("* bob left")
            assert alice.end() == 0
        finally:
            alice.kill()
            if bob is not None:
                bob.kill()
    assert alice.lines == expected["alice"]
    assert bob.lines == expected["bob"]


def test_relay_settings_come_from_flags_then_environment_then_the_toml_file(tmp_path: Path) -> None:
    import argparse

    from bleeper.statestore.cli import RELAY_DEFAULTS, load_settings

    config = tmp_path / "bleeper.toml"
    config.write_text('[relay]\nroom = "icu"\nmode = "turns"\nlease = 4\nstore = "http://file:1"\n')
    flags = argparse.Namespace(config=str(config), store=None, room=None, name="ada", mode=None, lease=None,
                               history=None)  # fmt: skip
    settings = load_settings(flags, "relay", RELAY_DEFAULTS, {"BLEEPER_RELAY_STORE": "http://env:2",
                                                              "BLEEPER_RELAY_LEASE": "2.5"})  # fmt: skip
    assert settings == {"store": "http://env:2", "room": "icu", "name": "ada", "mode": "turns", "lease": 2.5,
                        "history": 10}  # fmt: skip
    with pytest.raises(ValueError, match="lease 'soon' is not a number"):
        load_settings(flags, "relay", RELAY_DEFAULTS, {"BLEEPER_RELAY_LEASE": "soon"})
