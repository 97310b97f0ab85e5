"""A PostgreSQL server for tests: throwaway databases, created and dropped per test session.

Enabled by ``ASM_TEST_DATABASE_URL`` (``.ci/run`` sets it when a server answers on
127.0.0.1:5432); without it PostgreSQL tests skip, saying why.
"""

from __future__ import annotations

import os
import uuid

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy.engine import URL, make_url

PG_ENV = "ASM_TEST_DATABASE_URL"
SKIP_REASON = f"PostgreSQL tests need {PG_ENV}=postgresql+asyncpg://user@host/db"


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def asyncpg_kwargs(url: URL) -> dict[str, object]:
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
        return await asyncpg.connect(**asyncpg_kwargs(self.base))

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
