from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvloop

from bleeper.config import ServeConfig
from bleeper.server import ChatServer
from tests.helpers import create_accounts, free_port
from tests.services import location

Start = Callable[..., Awaitable[ChatServer]]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    """Run the async tests on uvloop, the loop the server uses in production."""
    return {"uvloop": uvloop.new_event_loop}


# Servers started as subprocesses put their web listener on a free port, so tests never fight over 8080.
os.environ["BLEEPER_HTTP_PORT"] = "0"


def make_config(**overrides: object) -> ServeConfig:
    """In-process servers leave the web listener off unless a test asks for it (``http=True``)."""
    config = ServeConfig(host="127.0.0.1", port=0, max_per_ip=0, log_level="warning", db=":memory:", http=False,
                         http_port=0)  # fmt: skip
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    return config


@asynccontextmanager
async def starting(**fixed: object) -> AsyncIterator[Start]:
    """A function that starts in-process servers with *fixed* settings (and its own overrides); all are
    stopped afterwards."""
    started: list[ChatServer] = []

    async def start(**overrides: object) -> ChatServer:
        server = ChatServer(make_config(**{**fixed, **overrides}))
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(grace=0.5)


@pytest.fixture
async def start_server() -> AsyncIterator[Start]:
    """Start in-process chat servers on free ports: ``server = await start_server(rate=5)``."""
    async with starting() as start:
        yield start


@pytest.fixture
async def server(start_server: Start) -> ChatServer:
    return await start_server()


def port_of(server: ChatServer) -> int:
    return server.addresses[0][1]


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store on each backend, with the accounts alice, bob and carol (password ``<name>-password``)."""
    async with location(request.param, tmp_path) as where:
        yield await create_accounts(where, "alice", "bob", "carol")


@pytest.fixture
async def start(db: str) -> AsyncIterator[Start]:
    """Start servers on *db*, one after another on the same port (a restart keeps the address)."""
    async with starting(db=db, port=free_port()) as start:
        yield start
