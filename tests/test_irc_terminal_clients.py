"""Real terminal IRC clients (Debian's packages) against the server.

irssi, in tmux: it signs in with SASL, joins a channel and chats there with a telnet user and a web user, and
receives an urgent page and acknowledges it. What irssi shows is read back with ``tmux capture-pane``; what it
said on the wire with its own raw log. WeeChat (weechat-headless): it signs in with SASL, gets the message that
waited, chats both ways (typing through its FIFO), as its own logs show."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import websockets

from bleeper.server import ChatServer
from tests.conftest import make_config, port_of
from tests.helpers import LineClient, create_accounts, free_port
from tests.services import require_services

pytestmark = pytest.mark.timeout(90)

IRSSI_CONFIG = """
chatnets = {{ Bleeper = {{ type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "alice";
                           sasl_password = "alice-password"; }}; }};
servers = ( {{ address = "127.0.0.1"; chatnet = "Bleeper"; port = "{port}"; use_tls = "no"; autoconnect = "yes"; }} );
settings = {{ core = {{ real_name = "Alice"; user_name = "alice"; nick = "alice"; }};
              "fe-common/core" = {{ autolog = "no"; }}; }};
"""


def needed(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"needs {' and '.join(missing)} (apt-get install {' '.join(missing)})"
        if require_services():
            pytest.fail(message + " (BLEEPER_REQUIRE_SERVICES=1)")
        pytest.skip(message)


class Irssi:
    """irssi in a tmux session of its own (a tmux server of its own, too: -L)."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.socket = f"bleeper-test-{uuid.uuid4().hex[:8]}"
        home.mkdir()
        (home / "config").write_text(IRSSI_CONFIG.format(port=port))
        self.tmux("new-session", "-d", "-s", "irssi", "-x", "200", "-y", "50", f"irssi --home={home}")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "irssi", "-l", text)
        self.tmux("send-keys", "-t", "irssi", "Enter")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-t", "irssi", "-p", "-S", "-200")

    async def shows(self, text: str, timeout: float = 15.0) -> str:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in (screen := self.screen()):
            assert asyncio.get_running_loop().time() < deadline, f"irssi never showed {text!r}:\n{screen}"
            await asyncio.sleep(0.2)
        return screen

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChatServer]:
    db = await create_accounts(str(tmp_path / "bleeper.db"), "alice", "ward7")
    started = ChatServer(make_config(db=db, irc_port=free_port(), http=True, server_name="irc.bleeper.test"))
    await started.start()
    yield started
    await started.stop(grace=0.5)


@pytest.fixture
def irssi(tmp_path: Path, server: ChatServer) -> Iterator[Irssi]:
    needed("irssi", "tmux")
    client = Irssi(tmp_path / "irssi", server.irc_addresses[0][1])
    yield client
    client.close()


async def test_irssi_signs_in_with_sasl_chats_with_telnet_and_web_and_acknowledges_a_page(
    server: ChatServer, irssi: Irssi
) -> None:
    await irssi.shows("Welcome to the Bleeper network, alice")
    irssi.type("/rawlog open " + str(irssi.home / "raw.log"))
    raw = irssi.home / "raw.log"
    await asyncio.sleep(0.5)
    assert "AUTHENTICATE PLAIN" in raw.read_text() and " 903 " in raw.read_text()

    tom = await LineClient.connect(port_of(server))
    assert (await tom.command("NAME tom")).code == 201
    assert (await tom.command("JOIN #icu")).code == 203
    host, web_port = server.http_addresses[0]
    async with websockets.connect(f"ws://{host}:{web_port}/ws") as web:
        await web.recv()
        await web.send("NAME wendy")
        await web.recv()
        await web.send("JOIN #icu")
        await web.recv()

        irssi.type("/join #icu")
        await irssi.shows("alice [alice@irc.bleeper.test] has joined #icu")
        irssi.type("hello from irssi")
        message = await tom.message()
        assert (message.sender, message.to, message.text) == ("alice", "#icu", "hello from irssi")
        while not str(frame := await web.recv()).startswith("MSG "):
            pass
        assert str(frame).endswith("alice #icu hello from irssi")
        assert (await tom.command("TELL #icu hello from telnet")).code == 250
        await web.send("TELL #icu hello from the web")
        await irssi.shows("< tom> hello from telnet")
        await irssi.shows("< wendy> hello from the web")

    ward = await LineClient.connect(port_of(server))
    assert (await ward.command("LOGIN ward7 ward7-password")).code == 202
    sent = await ward.command("URGENT alice VT on monitor bay 2")
    assert sent.code == 250
    page_id = sent.text.split()[0]
    irssi.type("/window 1")  # irssi shows a notice from someone with no window open in its status window
    await irssi.shows(f"-ward7(ward7@irc.bleeper.test)- [URGENT {page_id}] VT on monitor bay 2 (acknowledge: "
                      f"/quote ACK {page_id})")  # fmt: skip
    irssi.type(f"/quote ACK {page_id}")
    acked = await ward.event("ACKED")
    assert acked.args == (page_id, "alice")
    screen = await irssi.shows(f"!irc.bleeper.test 206 {page_id} acknowledged; ward7 is told")
    for shown in ("Capabilities acknowledged: sasl away-notify server-time",  # (as the README shows)
                  "SASL authentication succeeded"):  # fmt: skip
        assert shown in screen


async def test_weechat_signs_in_with_sasl_gets_what_waited_and_chats(server: ChatServer, tmp_path: Path) -> None:
    needed("weechat-headless")
    ward = await LineClient.connect(port_of(server))
    assert (await ward.command("LOGIN ward7 ward7-password")).code == 202
    assert (await ward.command("TELL alice this waited for you")).code == 250
    home = tmp_path / "weechat"
    commands = ("/set logger.file.flush_delay 0;"
                f"/server add bleeper 127.0.0.1/{server.irc_addresses[0][1]} -notls;"
                "/set irc.server.bleeper.nicks alice;/set irc.server.bleeper.sasl_username alice;"
                "/set irc.server.bleeper.sasl_password alice-password;/connect bleeper")  # fmt: skip
    weechat = await asyncio.create_subprocess_exec("weechat-headless", "--stdout", "--dir", str(home), "-r", commands,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert (await ward.event("ONLINE", timeout=15)).args == ("alice",)
        assert (await ward.command("TELL alice hello weechat")).code == 250
        log = home / "logs" / "irc.bleeper.ward7.weechatlog"
        await eventually(lambda: log.exists() and "hello weechat" in log.read_text())
        lines = [line.split("\t")[1:] for line in log.read_text().splitlines()]
        assert lines[-2:] == [["ward7", "this waited for you"], ["ward7", "hello weechat"]]
        (fifo,) = home.glob("weechat_fifo_*")
        with fifo.open("w") as typing:
            typing.write("irc.bleeper.ward7 *hello from weechat\n")
        message = await ward.message()
        assert (message.sender, message.text) == ("alice", "hello from weechat")
    finally:
        weechat.terminate()
        await asyncio.wait_for(weechat.wait(), 10)


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.2)
