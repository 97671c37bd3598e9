"""The README's telnet walkthrough, replayed line by line against a real server process."""

from __future__ import annotations

import re
import socket

from tests.helpers import ROOT, server_process

SERVER_WORDS = {"MSG", "ONLINE", "OFFLINE", "CLOSING", "PING", "URGENT", "ALERT", "ESCALATION", "ACKED", "DELIVERED"}
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
INTERVAL = re.compile(r"alerts every [\d.]+ s")
ADDRESS = re.compile(r"\(127\.0\.0\.1:\d+\)")  # a device in TRACE: the port differs every time
GREETING = re.compile(r"^220 \S+ ")


def walkthrough(kind: str = "walkthrough") -> list[tuple[str, list[str]]]:
    """The README's blocks marked ``<!-- kind: terminal -->``, in order."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(rf"<!-- {kind}: ([\w.]+) -->\n```text\n(.*?)```", text, re.S)
    assert blocks, f"no {kind} blocks in the README"
    return [(who, body.splitlines()) for who, body in blocks]


def from_server(line: str) -> bool:
    words = line.split(" ")
    if words[0] in ("MSG", "URGENT"):  # also commands (TELL's alias, URGENT): the event has two numbers
        return len(words) > 2 and words[1].isdigit() and words[2].isdigit()
    if re.match(r"^\d{3}[ -]", line) or words[0] in SERVER_WORDS:
        return True
    return words[0] in ("JOIN", "LEAVE") and len(words) == 3


def normalise(line: str) -> str:
    line = GREETING.sub("220 <server-name> ", line)  # the machine's host name, unless --server-name
    return ADDRESS.sub("(<address>)", INTERVAL.sub("alerts every <n> s", TIME.sub("<time>", line)))


class Terminal:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")

    def read_line(self) -> str:
        raw = self.file.readline()
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2].decode()


def replay(port: int, blocks: list[tuple[str, list[str]]]) -> None:
    terminals: dict[str, Terminal] = {}
    for who, lines in blocks:
        for line in lines:
            if line.startswith("$ telnet"):
                terminals[who] = Terminal(port)
            elif line == "Connection closed by foreign host.":
                assert terminals[who].file.read() == b""
            elif from_server(line):
                assert normalise(terminals[who].read_line()) == normalise(line)
            else:
                terminals[who].sock.sendall(line.encode() + b"\r\n")
    for terminal in terminals.values():
        terminal.file.close()
        terminal.sock.close()


def test_readme_walkthrough_works_verbatim() -> None:
    assert len(walkthrough()) == 3
    with server_process() as (_, port):
        replay(port, walkthrough())


def test_readme_urgent_escalation_works_verbatim() -> None:
    with server_process("--urgent-interval", "0.5", "--urgent-attempts", "2") as (_, port):
        replay(port, walkthrough("urgent"))
