"""The web client through HAProxy in front of two cluster nodes (real Chromium, real HAProxy, real NATS and
PostgreSQL): the page survives the death of the node it was on, and misses nothing."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.cluster_nodes import nodes
from tests.haproxy import haproxy
from tests.helpers import LineClient, create_accounts, login
from tests.nats_cluster import nats_cluster
from tests.services import postgres_database
from tests.test_web_browser import browser, messages, say, sign_in

__all__ = ["browser"]  # the fixture, shared with the web client's own tests

pytestmark = pytest.mark.timeout(180)


async def test_the_web_client_through_haproxy_survives_its_nodes_death(browser: Browser) -> None:
    async with postgres_database() as db:
        await create_accounts(db, "alice", "bob")
        with nats_cluster() as bus, nodes(db, bus, 2, lease=3.0) as (a, b), haproxy([a, b]) as proxy:
            page = await sign_in(browser, proxy.url, "alice", "alice-password")  # on a: the first live node
            bob, _ = await login(b.port, "bob")
            await bob.command("TELL alice before")
            await page.locator("#conversation-list").get_by_role("button", name="bob").click()
            await expect(messages(page).last).to_contain_text("before")
            through = await LineClient.connect(proxy.tcp_port)  # the line protocol through the proxy too
            await through.register("porter")
            a.kill()
            await expect(page.locator("#connection")).to_contain_text("reconnecting")
            await bob.command("TELL alice while the node was down")  # stored for alice; sent when she is back
            await expect(page.locator("#connection")).to_have_text("connected", timeout=20_000)
            await expect(page.locator("#messages")).to_contain_text("while the node was down")
            await say(page, "back on another node")
            assert (await bob.message()).text == "back on another node"
            await expect(page.locator("#messages .text", has_text="before")).to_have_count(1)
            again = await LineClient.connect(proxy.tcp_port)  # new connections go to the live node
            assert (await again.command("NAME porter2")).code == 201
            assert "alice" in (await again.command("WHO")).items
