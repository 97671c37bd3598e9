"""TLS beside the plain listener: certificates made on the fly with trustme, real handshakes."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from bleeper.client import ChatClient
from bleeper.client.errors import ConnectionClosed
from bleeper.client.events import Message
from bleeper.config import ConfigError
from bleeper.server import ChatServer
from tests.conftest import Start, make_config, port_of
from tests.helpers import ROOT, LineClient, free_port, server_process


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pem(ca: trustme.CA, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(server certificate and key in one PEM file, the CA's certificate)."""
    server_pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    yield str(server_pem), str(ca_pem)


def trusting(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_pem)


async def test_tls_and_plain_clients_talk_to_each_other(start_server: Start, pem: tuple[str, str]) -> None:
    server = await start_server(tls_cert=pem[0], tls_key=pem[0], tls_port=0)
    ((_, tls_port),) = server.tls_addresses
    async with ChatClient("127.0.0.1", tls_port, ssl=trusting(pem[1]), reconnect=False) as secure:
        await secure.register("dr.tls")
        plain = await LineClient.connect(port_of(server))
        await plain.command("NAME nurse.plain")
        assert (await secure.tell("nurse.plain", "over TLS")).reached == 1
        assert (await plain.message()).text == "over TLS"
        await plain.send("TELL dr.tls and back")
        received = await secure.next_event(timeout=5)
        while not isinstance(received, Message):
            received = await secure.next_event(timeout=5)
        assert received.text == "and back"


async def test_an_untrusted_certificate_is_refused_with_advice(start_server: Start, pem: tuple[str, str]) -> None:
    server = await start_server(tls_cert=pem[0], tls_key=pem[0], tls_port=0)
    ((_, tls_port),) = server.tls_addresses
    client = ChatClient("127.0.0.1", tls_port, ssl=ssl.create_default_context(), reconnect=False)
    with pytest.raises(ConnectionClosed, match=r"certificate is not trusted .*pass --ca"):
        await client.connect()


async def test_plain_text_on_the_tls_port_is_dropped_and_hurts_nobody(
    start_server: Start, pem: tuple[str, str]
) -> None:
    server = await start_server(tls_cert=pem[0], tls_key=pem[0], tls_port=0)
    ((_, tls_port),) = server.tls_addresses
    reader, writer = await asyncio.open_connection("127.0.0.1", tls_port)
    writer.write(b"NAME telnet-user\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # no TLS handshake: closed
    writer.close()
    async with ChatClient("127.0.0.1", tls_port, ssl=trusting(pem[1]), reconnect=False) as fine:
        await fine.register("still.works")


async def test_the_plain_listener_can_be_kept_to_loopback(start_server: Start, pem: tuple[str, str]) -> None:
    server = await start_server(host="127.0.0.2", plain_host="127.0.0.1", tls_cert=pem[0], tls_key=pem[0], tls_port=0)
    assert server.addresses[0][0] == "127.0.0.1" and server.tls_addresses[0][0] == "127.0.0.2"


def test_bad_certificates_stop_the_start_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ChatServer(make_config(tls_cert=str(tmp_path / "none.pem"), tls_key=str(tmp_path / "none.pem")))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match="both must be PEM"):
        ChatServer(make_config(tls_cert=str(junk), tls_key=str(junk)))
    with pytest.raises(ConfigError, match="needs both"):
        make_config(tls_cert=str(junk))


def test_serve_and_send_over_tls_from_the_command_line(pem: tuple[str, str]) -> None:
    tls_port = free_port()
    with server_process("--tls-cert", pem[0], "--tls-key", pem[0], "--tls-port", str(tls_port)) as _:
        send = [sys.executable, "-m", "bleeper", "send", "--port", str(tls_port), "--to", "*", "hello"]
        ok = subprocess.run([*send, "--ca", pem[1]], capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert ok.returncode == 0 and "sent message" in ok.stdout, ok.stderr
        untrusted = subprocess.run([*send, "--tls"], capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert untrusted.returncode != 0 and "pass --ca" in untrusted.stderr
        bad_ca = subprocess.run([*send, "--ca", "/nonexistent.pem"], capture_output=True, text=True, cwd=ROOT,
                                timeout=30)  # fmt: skip
        assert bad_ca.returncode == 2 and "cannot use --ca" in bad_ca.stderr
    bad = subprocess.run([sys.executable, "-m", "bleeper", "serve", "--db", ":memory:", "--tls-cert", "/nope.pem",
                          "--tls-key", "/nope.pem"], capture_output=True, text=True, cwd=ROOT, timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "does not exist" in bad.stderr


async def test_irc_over_tls_uses_the_servers_certificate(start_server: Start, pem: tuple[str, str]) -> None:
    irc_tls = free_port()
    server = await start_server(tls_cert=pem[0], tls_key=pem[0], tls_port=0, irc_tls_port=irc_tls)
    assert ("127.0.0.1", irc_tls) in server.irc_addresses
    reader, writer = await asyncio.open_connection("127.0.0.1", irc_tls, ssl=trusting(pem[1]))
    writer.write(b"NICK tls.irc\r\nUSER t 0 * :t\r\n")
    welcome = b""
    while b" 001 " not in welcome:
        welcome += await asyncio.wait_for(reader.read(4096), 5)
    assert b":Welcome to the Bleeper network, tls.irc" in welcome
    writer.close()


def test_irc_over_tls_needs_the_certificate() -> None:
    with pytest.raises(ConfigError, match="irc_tls_port needs the server's certificate"):
        make_config(irc_tls_port=6697)
