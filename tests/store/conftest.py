"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL runs when ``ASM_TEST_DATABASE_URL`` names a server (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``): a fresh database is created for the
test session and dropped at the end. Without it the PostgreSQL variants are skipped, saying why.
Each test uses fresh session ids (``sid``), so tests never see each other's events.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs published
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from agent_session_manager.store import EventStore, open_store, upgrade
from tests.postgres import PG_ENV, PgServer, asyncpg_kwargs, pg_base_url

BACKENDS = ["sqlite", "postgresql"]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_server() -> AsyncIterator[PgServer]:
    base = pg_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL store tests need {PG_ENV}=postgresql+asyncpg://user@host/db")
    server = PgServer(base)
    try:
        yield server
    finally:
        await server.drop_all()


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def empty_db(
    request: pytest.FixtureRequest, backend: str, sqlite_dir: Path
) -> Callable[[], Awaitable[str]]:
    """A factory of fresh, unmigrated databases of the test's backend."""
    # Resolved here, outside the event loop (an async fixture cannot be set up from inside it).
    server: PgServer | None = (
        request.getfixturevalue("pg_server") if backend == "postgresql" else None
    )

    async def make() -> str:
        if server is None:
            return f"sqlite+aiosqlite:///{sqlite_dir / f'{uuid.uuid4().hex[:12]}.db'}"
        return await server.create()

    return make


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def sqlite_url(sqlite_dir: Path) -> str:
    url = f"sqlite+aiosqlite:///{sqlite_dir / 'events.db'}"
    await upgrade(url)
    return url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def postgresql_url(pg_server: PgServer) -> str:
    url = await pg_server.create()
    await upgrade(url)
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def db_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A migrated database of the backend, shared by the test session."""
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest_asyncio.fixture
async def store(db_url: str) -> AsyncIterator[EventStore]:
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture
async def other_store(db_url: str) -> AsyncIterator[EventStore]:
    """A second store on the same database: another process, as far as wake-ups go."""
    s = await open_store(db_url)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def sid() -> str:
    """A fresh session id."""
    return f"s-{uuid.uuid4().hex[:12]}"


@pytest_asyncio.fixture
async def pg_admin(backend: str, db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """An admin connection to the PostgreSQL test database (skips on SQLite)."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only: acts on the server's connections")
    conn = await asyncpg.connect(**asyncpg_kwargs(make_url(db_url)))
    try:
        yield conn
    finally:
        await conn.close()
