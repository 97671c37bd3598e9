"""The server's HTTP side without a browser: the page and its headers, /ws with the TCP rules, /healthz and
/metrics, and the origin check."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest
import websockets

from bleeper.server import ChatServer
from tests.conftest import Start
from tests.helpers import LineClient, free_port


async def web_server(start_server: Start, **settings: object) -> tuple[ChatServer, str]:
    server = await start_server(http=True, **settings)
    host, port = server.http_addresses[0]
    return server, f"{host}:{port}"


async def test_the_page_is_served_with_a_strict_content_security_policy(start_server: Start) -> None:
    _, where = await web_server(start_server)
    async with httpx.AsyncClient(base_url=f"http://{where}") as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="/static/app.js">' in page.text and "<script>" not in page.text
        script = await http.get("/static/app.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert "innerHTML" not in script.text and "insertAdjacentHTML" not in script.text  # text only, never markup
        assert (await http.get("/static/../app.py")).status_code == 404


async def test_a_websocket_speaks_the_same_protocol_with_a_tcp_client(start_server: Start) -> None:
    server, where = await web_server(start_server)
    tcp = await LineClient.connect(server.addresses[0][1])
    await tcp.register("carol")
    async with websockets.connect(f"ws://{where}/ws") as ws:
        assert (await ws.recv()).startswith("220 ")
        await ws.send("NAME alice")
        assert str(await ws.recv()).startswith("201 alice welcome")
        assert (await tcp.event("ONLINE")).args == ("alice",)  # type: ignore[union-attr]
        await ws.send("SAY hello from the browser")
        assert str(await ws.recv()).startswith("250 ")
        assert (await tcp.message()).text == "hello from the browser"
        await tcp.command("TELL alice and back")
        frame = str(await ws.recv())
        assert frame.startswith("MSG ") and frame.endswith(" carol @alice and back") and "\r" not in frame
        await ws.send("x" * 5000)  # the same line limit as TCP
        assert str(await ws.recv()).startswith("413 line too long")
        await ws.send(b"SAY caf\xe9 in latin-1")  # a binary frame gets the framer's check
        assert str(await ws.recv()).startswith("400 invalid UTF-8")
        await ws.send("WHO")
        items = [str(await ws.recv()) for _ in range(3)]
        assert items == ["212-alice", "212-carol", "212 2 people online"]
        await ws.send("QUIT")
        assert str(await ws.recv()).startswith("221 ")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert (await tcp.event("OFFLINE")).args[0] == "alice"  # type: ignore[union-attr]


async def test_websocket_floods_are_limited_like_tcp(start_server: Start) -> None:
    _, where = await web_server(start_server, rate=5, burst=10)
    async with websockets.connect(f"ws://{where}/ws") as ws:
        await ws.recv()
        await ws.send("NAME flooder")
        await ws.recv()
        for _ in range(40):
            await ws.send("PING")
        frames = []
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                frames.append(str(await asyncio.wait_for(ws.recv(), 5)))
        assert any(frame.startswith("429 ") for frame in frames)
        assert frames[-1].startswith("CLOSING flood")


async def test_a_page_from_another_site_may_not_open_the_websocket(start_server: Start) -> None:
    _, where = await web_server(start_server, http_origins="https://bleeper.ward7.example")
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"ws://{where}/ws", origin="https://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    for origin in (f"http://{where}", "https://bleeper.ward7.example"):  # its own page, and a listed proxy
        async with websockets.connect(f"ws://{where}/ws", origin=origin) as ws:  # type: ignore[arg-type]
            assert str(await ws.recv()).startswith("220 ")


async def test_healthz_and_metrics(start_server: Start) -> None:
    server, where = await web_server(start_server)
    tcp = await LineClient.connect(server.addresses[0][1])
    await tcp.register("carol")
    bob = await LineClient.connect(server.addresses[0][1])
    await bob.register("bob")
    await tcp.command("SAY counted")
    await bob.message()
    async with websockets.connect(f"ws://{where}/ws") as ws:
        await ws.recv()
        async with httpx.AsyncClient(base_url=f"http://{where}") as http:
            health = await http.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert health.json()["connections"] == 3
            text = (await http.get("/metrics")).text
    assert 'bleeper_connections{transport="tcp"} 2' in text
    assert 'bleeper_connections{transport="websocket"} 1' in text
    assert "bleeper_messages_total 1" in text and "bleeper_deliveries_total 1" in text
    assert "# TYPE bleeper_store_commit_seconds gauge" in text
    await bob.command("QUIT")
    await asyncio.sleep(0.1)
    async with httpx.AsyncClient(base_url=f"http://{where}") as http:
        assert 'bleeper_disconnects_total{reason="client"} 1' in (await http.get("/metrics")).text


def test_a_busy_http_port_stops_the_start_with_advice() -> None:
    port = free_port()
    import socket

    with socket.create_server(("127.0.0.1", port)):
        result = subprocess.run([sys.executable, "-m", "bleeper", "serve", "--db", ":memory:", "--port", "0",
                                 "--http-port", str(port)], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr and "--http-port" in result.stderr


async def test_a_stopping_server_refuses_new_web_sessions(start_server: Start) -> None:
    """While it drains (a client that does not hang up holds it for seconds), a new page must not be greeted
    and named only to be dropped: it is told 503, as the TCP listener refuses, and retries later."""
    server, where = await web_server(start_server)
    lingering = await LineClient.connect(server.addresses[0][1])
    await lingering.register("lingering")
    stopping = asyncio.ensure_future(server.stop(grace=3.0))
    assert (await lingering.event("CLOSING")).args == ("server", "shutting", "down")  # type: ignore[union-attr]
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"ws://{where}/ws") as ws:
            await ws.send("NAME latecomer")
            pytest.fail(f"a stopping server answered: {await ws.recv()}")
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["retry-after"]
    assert not stopping.done()  # still draining: the refusal came from the stopping server, not a closed port
    await lingering.close()
    await stopping


async def test_the_page_learns_the_servers_settings(start_server: Start) -> None:
    for text, expected in ((False, False), (True, True)):
        _, where = await web_server(start_server, web_notification_text=text)
        async with httpx.AsyncClient(base_url=f"http://{where}") as http:
            settings = await http.get("/config.json")
            assert settings.status_code == 200 and settings.json()["notificationText"] is expected
