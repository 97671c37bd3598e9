"""The IRC listener over real sockets (``bleeper serve --irc-port``): IRC clients and telnet-style clients in
one chat. Every line the server sends is read with irctokens, a strict IRC tokeniser from PyPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import irctokens
import pytest

from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import LineClient, create_accounts, free_port

TIMEOUT = 5.0


class IrcConnection:
    """A bare IRC client: lines out, irctokens lines in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = irctokens.StatefulDecoder()
        self.lines: list[irctokens.Line] = []

    @classmethod
    async def connect(cls, port: int) -> IrcConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, line: str | bytes) -> None:
        self.writer.write(line if isinstance(line, bytes) else line.encode() + b"\r\n")

    async def read(self) -> irctokens.Line:
        while not self.lines:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            assert data, "the server closed the connection"
            lines = self.decoder.push(data)
            assert lines is not None
            self.lines.extend(lines)
        return self.lines.pop(0)

    async def until(self, command: str) -> list[irctokens.Line]:
        """Lines up to and including the first *command*."""
        seen = []
        while True:
            line = await self.read()
            seen.append(line)
            if line.command == command:
                return seen

    async def register(self, nick: str, password: str | None = None) -> list[irctokens.Line]:
        self.send("CAP LS 302")
        if password is not None:
            self.send(f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        self.send("CAP REQ :server-time echo-message")
        self.send("CAP END")
        return await self.until("366")  # the welcome burst ends with the #everyone channel and its names

    async def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    db = await create_accounts(str(tmp_path / "bleeper.db"), "alice", "bob")
    started = ChatServer(make_config(db=db, irc_port=free_port(), server_name="irc.bleeper.test"))
    await started.start()
    yield started
    await started.stop(grace=0.5)


def irc_port(server: ChatServer) -> int:
    return server.irc_addresses[0][1]


async def test_an_irc_client_registers_and_chats_with_a_telnet_user(server: ChatServer) -> None:
    ben = await LineClient.connect(port_of(server))
    assert (await ben.command("NAME ben")).code == 201
    ann = await IrcConnection.connect(irc_port(server))
    burst = await ann.register("ann")
    assert [line.command for line in burst if line.command.isdigit()][:5] == ["001", "002", "003", "004", "005"]
    welcome = next(line for line in burst if line.command == "001")
    assert welcome.source == "irc.bleeper.test" and welcome.params[0] == "ann"
    online = await ben.event("ONLINE")
    assert online.args == ("ann",)
    ann.send("PRIVMSG ben :hello from irssi")
    echo = await ann.read()
    assert (echo.command, echo.params, echo.hostmask.nickname) == ("PRIVMSG", ["ben", "hello from irssi"], "ann")
    assert "time" in (echo.tags or {})
    message = await ben.message()
    assert (message.sender, message.text) == ("ann", "hello from irssi")
    assert (await ben.command("TELL ann hello from telnet")).code == 250
    got = await ann.read()
    assert (got.command, got.params, got.hostmask.nickname) == ("PRIVMSG", ["ann", "hello from telnet"], "ben")
    await ann.close()
    offline = await ben.event("OFFLINE")
    assert offline.args[0] == "ann"


async def test_channels_are_groups_over_the_wire(server: ChatServer) -> None:
    ben = await LineClient.connect(port_of(server))
    await ben.command("NAME ben")
    await ben.command("JOIN #icu")
    ann = await IrcConnection.connect(irc_port(server))
    await ann.register("ann")
    ann.send("JOIN #icu")
    joined = await ann.until("366")
    assert [line.command for line in joined] == ["JOIN", "353", "366"]
    assert sorted(joined[1].params[-1].split()) == ["ann", "ben"]
    ann.send("PRIVMSG #icu :rounds at nine")
    await ann.read()  # the echo
    message = await ben.message()
    assert (message.to, message.text) == ("#icu", "rounds at nine")


async def test_an_account_signs_in_with_pass_and_gets_what_waited(server: ChatServer) -> None:
    bob = await LineClient.connect(port_of(server))
    assert (await bob.command("LOGIN bob bob-password")).code == 202
    assert (await bob.command("TELL alice while you were away")).code == 250
    alice = await IrcConnection.connect(irc_port(server))
    await alice.register("alice", password="alice-password")
    waited = await alice.until("PRIVMSG")
    assert waited[-1].params == ["alice", "while you were away"]
    wrong = await IrcConnection.connect(irc_port(server))
    wrong.send("PASS nope")
    wrong.send("NICK bob")
    wrong.send("USER bob 0 * :bob")
    refused = await wrong.until("464")
    assert refused[-1].command == "464"


async def test_bad_input_gets_a_numeric_and_the_connection_stays(server: ChatServer) -> None:
    ann = await IrcConnection.connect(irc_port(server))
    await ann.register("ann")
    ann.send("PRIVMSG ann :" + "x" * 600)  # past 512 bytes
    assert (await ann.until("417"))[-1].command == "417"
    ann.send(b"PRIVMSG ann :" + b"y" * 10_000 + b"\r\n")  # past what the framer keeps
    assert (await ann.until("417"))[-1].command == "417"
    ann.send(b"PRIVMSG ann :\xc3\x28 not UTF-8\r\n")
    assert "UTF-8" in (await ann.until("NOTICE"))[-1].params[-1]
    ann.send("PING still-here")
    pong = await ann.until("PONG")
    assert pong[-1].params[-1] == "still-here"


def test_serve_help_names_the_irc_options() -> None:
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "bleeper", "serve", "--help"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert "--irc-port" in shown and "--irc-tls-port" in shown


async def test_sasl_plain_signs_an_account_in_and_what_waited_follows_the_welcome(server: ChatServer) -> None:
    import base64

    bob = await LineClient.connect(port_of(server))
    await bob.command("LOGIN bob bob-password")
    assert (await bob.command("URGENT alice come to bay 2")).code == 250
    alice = await IrcConnection.connect(irc_port(server))
    alice.send("CAP LS 302")
    ls = await alice.until("CAP")
    assert "sasl=PLAIN" in ls[-1].params[-1].split()
    alice.send("NICK alice")
    alice.send("USER alice 0 * :Alice")
    alice.send("CAP REQ :sasl")
    await alice.until("CAP")
    alice.send("AUTHENTICATE PLAIN")
    assert (await alice.read()).params == ["+"]
    alice.send("AUTHENTICATE " + base64.b64encode(b"\0alice\0wrong").decode())
    assert (await alice.until("904"))[-1].command == "904"
    alice.send("AUTHENTICATE PLAIN")
    await alice.read()
    alice.send("AUTHENTICATE " + base64.b64encode(b"alice\0alice\0alice-password").decode())
    signed_in = await alice.until("903")
    assert [line.command for line in signed_in] == ["900", "903"] and signed_in[0].params[2] == "alice"
    alice.send("CAP END")
    burst = await alice.until("366")  # (the welcome, #everyone and its names)
    assert burst[0].command == "001" and burst[0].params[0] == "alice"
    page = await alice.read()
    assert (page.command, page.hostmask.nickname) == ("NOTICE", "bob")
    message_id = page.params[-1].split()[1].rstrip("]")
    assert page.params[-1] == f"[URGENT {message_id}] come to bay 2 (acknowledge: /quote ACK {message_id})"
    alice.send(f"ACK {message_id}")
    acked = await alice.until("NOTICE")
    assert acked[-1].params[-1].startswith(f"206 {message_id} acknowledged")
    assert (await bob.event("ACKED")).args == (message_id, "alice")


async def test_message_ids_and_account_tags_over_the_wire(server: ChatServer) -> None:
    bob = await LineClient.connect(port_of(server))
    await bob.command("LOGIN bob bob-password")
    ben = await LineClient.connect(port_of(server))
    await ben.command("NAME ben")
    ann = await IrcConnection.connect(irc_port(server))
    ann.send("CAP REQ :message-tags account-tag")
    await ann.register("ann")
    sent = await bob.command("TELL ann from an account")
    got = await ann.until("PRIVMSG")
    assert got[-1].tags == {"msgid": sent.text.split()[0], "account": "bob", "time": got[-1].tags["time"]}
    await ben.command("TELL ann from a guest")
    got = await ann.until("PRIVMSG")
    assert "account" not in got[-1].tags and "msgid" in got[-1].tags


async def test_an_account_signing_in_is_shown_its_groups_and_everyone_online(server: ChatServer) -> None:
    """An account's groups are joined at sign-in: the IRC client sees a JOIN and NAMES for each, and who is
    in #everyone (found by a review: messages came for channels the client never saw a JOIN for)."""
    first = await LineClient.connect(port_of(server))
    await first.command("LOGIN alice alice-password")
    assert (await first.command("JOIN #icu")).code == 203
    await first.command("QUIT")
    ben = await LineClient.connect(port_of(server))
    await ben.command("NAME ben")
    await ben.command("JOIN #icu")
    alice = await IrcConnection.connect(irc_port(server))
    alice.send("PASS alice-password")
    alice.send("NICK alice")
    alice.send("USER alice 0 * :Alice")
    lines = await alice.until("001")
    lines += await alice.until("366")  # #everyone's names
    lines += await alice.until("366")  # #icu's
    joins = [line.params[0] for line in lines if line.command == "JOIN"]
    names = {line.params[2]: sorted(line.params[3].split()) for line in lines if line.command == "353"}
    assert joins == ["#everyone", "#icu"]
    assert names == {"#everyone": ["alice", "ben"], "#icu": ["alice", "ben"]}


async def test_the_message_of_the_day_comes_from_a_file(tmp_path: Path) -> None:
    motd = tmp_path / "motd.txt"
    motd.write_text("Bleeper for ward 7\nIn an emergency call 2222\n")
    started = ChatServer(make_config(irc_port=free_port(), irc_motd=str(motd), server_name="irc.bleeper.test"))
    await started.start()
    try:
        ann = await IrcConnection.connect(irc_port(started))
        burst = await ann.register("ann")
        shown = [line.params[-1] for line in burst if line.command == "372"]
        assert shown == ["- Bleeper for ward 7", "- In an emergency call 2222"]
        assert "422" not in [line.command for line in burst]
        ann.send("MOTD")
        assert [line.command for line in await ann.until("376")] == ["375", "372", "372", "376"]
    finally:
        await started.stop(grace=0.5)


async def test_irc_connections_are_counted_in_metrics() -> None:
    import httpx

    started = ChatServer(make_config(irc_port=free_port(), http=True, server_name="irc.bleeper.test"))
    await started.start()
    try:
        ann = await IrcConnection.connect(irc_port(started))
        await ann.register("ann")
        host, port = started.http_addresses[0]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://{host}:{port}/metrics")).text
        assert 'bleeper_connections{transport="irc"} 1' in metrics
        assert 'bleeper_connections{transport="tcp"} 0' in metrics
    finally:
        await started.stop(grace=0.5)
