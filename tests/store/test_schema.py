"""Migrations: upgrade to head on both backends, schema check on open, models == migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import agent_session_manager.store._migrate as migrate
from agent_session_manager.store import SchemaOutOfDate, open_store, upgrade
from agent_session_manager.store._engine import make_migration_engine
from agent_session_manager.store._schema import METADATA, VERSION_TABLE
from tests.store.drafts import deltas

EmptyDb = Callable[[], Awaitable[str]]


async def _on(url: str, fn: Callable[[sa.Connection], object]) -> object:
    engine = make_migration_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent_and_returns_the_head(empty_db: EmptyDb) -> None:
    url = await empty_db()
    head = migrate.head_revision()
    assert await upgrade(url) == head
    assert await upgrade(url) == head


async def test_migrated_schema_matches_the_models(empty_db: EmptyDb) -> None:
    url = await empty_db()
    await upgrade(url)

    def diff(conn: sa.Connection) -> object:
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return compare_metadata(ctx, METADATA)

    assert await _on(url, diff) == []


async def test_downgrade_to_base_and_upgrade_again(empty_db: EmptyDb) -> None:
    url = await empty_db()
    await upgrade(url)
    cfg = migrate.alembic_config(url)

    def down(conn: sa.Connection) -> list[str]:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        return sa.inspect(conn).get_table_names()

    tables = await _on(url, down)
    assert isinstance(tables, list) and set(tables) <= {VERSION_TABLE}
    assert await upgrade(url) == migrate.head_revision()


async def test_concurrent_upgrades_of_a_fresh_database_all_succeed(empty_db: EmptyDb) -> None:
    url = await empty_db()
    revisions = await asyncio.gather(*(upgrade(url) for _ in range(4)))
    assert set(revisions) == {migrate.head_revision()}


async def test_open_store_refuses_an_unmigrated_database(empty_db: EmptyDb) -> None:
    url = await empty_db()
    with pytest.raises(SchemaOutOfDate) as err:
        await open_store(url)
    assert err.value.code == "storage_error"
    assert "`asm db upgrade`" in err.value.message and "no asm schema" in err.value.message
    s = await open_store(url, check_schema=False)
    await s.close()


async def test_open_store_refuses_an_older_schema(
    empty_db: EmptyDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await empty_db()
    await upgrade(url)
    current = migrate.head_revision()
    monkeypatch.setattr(migrate, "head_revision", lambda: "0002_future")
    monkeypatch.setattr(migrate, "known_revisions", lambda: frozenset({current, "0002_future"}))
    with pytest.raises(SchemaOutOfDate) as err:
        await open_store(url)
    assert "out of date" in err.value.message and "`asm db upgrade`" in err.value.message
    assert err.value.details["current_revision"] == current


async def test_open_store_refuses_a_schema_from_a_newer_version(empty_db: EmptyDb) -> None:
    url = await empty_db()
    await upgrade(url)
    await _on(url, lambda c: c.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'zz'")))
    with pytest.raises(SchemaOutOfDate) as err:
        await open_store(url)
    assert "newer than this version" in err.value.message


async def test_default_url_is_a_sqlite_file_under_dot_asm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASM_DATABASE_URL", raising=False)
    await upgrade()
    assert (tmp_path / ".asm" / "asm.db").is_file()
    s = await open_store()
    try:
        assert s.url == "sqlite+aiosqlite:///.asm/asm.db"
        assert [e.seq for e in await s.append(deltas("s", "r", 2))] == [1, 2]
    finally:
        await s.close()
