"""Gateway fixtures: a real uvicorn serving the gateway on a free port, over this test's real
Temporal dev server, worker, task queue and SQLite store; keys of two tenants."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from agent_session_manager.client import SessionClient
from agent_session_manager.gateway import GatewaySettings, create_app
from agent_session_manager.store import EventStore


@dataclass
class Served:
    """A running gateway: its base URL and the keys of tenants ``a`` and ``b``."""

    url: str
    key_a: str
    key_b: str
    server: uvicorn.Server

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key_a}"}


@contextlib.asynccontextmanager
async def serving(
    client: SessionClient, store: EventStore, settings: GatewaySettings, port: int = 0
) -> AsyncIterator[tuple[str, uvicorn.Server]]:
    app = create_app(client, store, settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=True,
        # Open event streams never end on their own: cut them after a second.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # Not uvicorn's signal handling inside pytest: the test decides when it stops.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    host, bound = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{bound}", server
    finally:
        server.should_exit = True
        await task


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def gateway(
    run_worker: Callable[..., Any], client: SessionClient, store: EventStore
) -> AsyncIterator[Served]:
    """A worker and a gateway (generous rate limit) for this test."""
    _, key_a = await store.create_api_key("tenant-a", "test")
    _, key_b = await store.create_api_key("tenant-b", "test")
    settings = GatewaySettings(rate_per_second=1000, rate_burst=1000, keepalive_seconds=1.0)
    async with run_worker(), serving(client, store, settings) as (url, server):
        yield Served(url=url, key_a=key_a, key_b=key_b, server=server)


@pytest.fixture
async def http(gateway: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        yield c
