"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL runs when ``ASM_TEST_DATABASE_URL`` names a server (e.g.
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``): a fresh database is created for the
test session and dropped at the end. Without it the PostgreSQL variants are skipped, saying why.
Each test uses fresh session ids (``sid``), so tests never see each other's events.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs published
import pytest
import pytest_asyncio
from sqlalchemy.engine import URL, make_url

from store import EventStore, open_store, upgrade

PG_ENV = "ASM_TEST_DATABASE_URL"
BACKENDS = ["sqlite", "postgresql"]


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _asyncpg_kwargs(url: URL) -> dict[str, object]:
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


class PgServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, base: str) -> None:
        self.base = make_url(base)
        self.created: list[str] = []

    def url_of(self, database: str) -> str:
        return self.base.set(drivername="postgresql+asyncpg", database=database).render_as_string(
            hide_password=False
        )

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(**_asyncpg_kwargs(self.base))

    async def create(self) -> str:
        name = f"asm_test_{uuid.uuid4().hex[:12]}"
        conn = await self.admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self.url_of(name)

    async def drop_all(self) -> None:
        conn = await self.admin()
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


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
    conn = await asyncpg.connect(**_asyncpg_kwargs(make_url(db_url)))
    try:
        yield conn
    finally:
        await conn.close()
