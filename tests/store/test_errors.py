"""Failures reach callers as taxonomy errors: unreachable databases, dropped connections."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs published
import pytest

from agent_session_manager.core.errors import StorageError, ValidationError
from agent_session_manager.core.events import Event, EventDraft
from agent_session_manager.store import EventStore, open_store, upgrade
from tests.store.drafts import deltas


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_postgresql_is_retryable_connection_failure_with_redacted_url() -> None:
    port = _free_port()
    url = f"postgresql+asyncpg://asm:s3cret-pw@127.0.0.1:{port}/asm"
    with pytest.raises(StorageError) as err:
        await open_store(url)
    e = err.value
    assert e.code == "storage_connection_failed" and e.retryable
    assert "s3cret-pw" not in str(e) and "s3cret-pw" not in str(e.details)
    assert f"asm:***@127.0.0.1:{port}/asm" in e.message
    assert f"PostgreSQL is running and accepting connections at 127.0.0.1:{port}" in e.message


async def test_unopenable_sqlite_file_is_connection_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StorageError) as err:
        await open_store(f"sqlite+aiosqlite:///{blocker}/asm.db")
    assert err.value.code == "storage_connection_failed"
    assert "directory exists and is writable" in err.value.message


async def test_unsupported_url_is_invalid_format() -> None:
    with pytest.raises(ValidationError) as err:
        await open_store("mysql://u:pw@host/db")
    assert err.value.code == "invalid_format" and "pw" not in err.value.message


async def test_display_url_redacts_the_password() -> None:
    s = EventStore("postgresql+asyncpg://u:hunter2@db.example:5432/asm")
    try:
        assert s.display_url == "postgresql+asyncpg://u:***@db.example:5432/asm"
        assert "hunter2" not in repr(s)
    finally:
        await s.close()


async def _store_pids(admin: asyncpg.Connection) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name LIKE 'asm-store%' AND pid <> pg_backend_pid()"
    )
    return [r["pid"] for r in rows]


async def _append_retrying(
    store: EventStore, batch: list[EventDraft], failures: list[StorageError] | None = None
) -> list[Event]:
    """What Temporal does with a retryable failure: the same batch again, until it lands."""
    for _ in range(50):
        try:
            return await store.append(batch)
        except StorageError as exc:
            assert exc.code == "storage_connection_failed" and exc.retryable, exc
            if failures is not None:
                failures.append(exc)
            await asyncio.sleep(0.02)
    raise AssertionError("append never succeeded")


async def test_connection_killed_mid_write_fails_retryably_and_a_retry_writes_it_once(
    store: EventStore, pg_admin: asyncpg.Connection, sid: str
) -> None:
    await store.append(deltas(sid, "w", 5))
    batch = deltas(sid, "w", 5, start=5)
    # Hold the session's counter row so the store's append blocks inside its statement, then
    # kill the store's backend: the write dies mid-flight, as in a database restart.
    tx = pg_admin.transaction()
    await tx.start()
    await pg_admin.execute("SELECT 1 FROM asm_event_counters WHERE session_id = $1 FOR UPDATE", sid)
    task = asyncio.create_task(store.append(batch))
    async with asyncio.timeout(10):
        while not (  # noqa: ASYNC110 - the server's view of its backends can only be polled
            blocked := await pg_admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'asm-store' AND wait_event_type = 'Lock'"
            )
        ):
            await asyncio.sleep(0.01)
    await pg_admin.execute("SELECT pg_terminate_backend($1)", blocked[0]["pid"])
    with pytest.raises(StorageError) as err:
        await task
    await tx.rollback()
    assert err.value.code == "storage_connection_failed" and err.value.retryable
    assert "127.0.0.1" in err.value.message
    written = await _append_retrying(store, batch)
    assert [e.seq for e in written] == [6, 7, 8, 9, 10]
    assert await _append_retrying(store, batch) == []


async def test_connections_killed_repeatedly_while_streaming_lose_and_duplicate_nothing(
    store: EventStore, other_store: EventStore, pg_admin: asyncpg.Connection, sid: str
) -> None:
    batches = [deltas(sid, "w", 10, start=10 * b) for b in range(40)]
    total = 10 * len(batches)
    got: list[Event] = []

    async def follow() -> None:
        async with contextlib.aclosing(other_store.follow(sid)) as it:  # type: ignore[type-var]
            async for ev in it:
                got.append(ev)
                if len(got) == total:
                    return

    async def killer() -> None:
        while True:
            await asyncio.sleep(0.03)
            for pid in await _store_pids(pg_admin):
                await pg_admin.execute("SELECT pg_terminate_backend($1)", pid)

    follower = asyncio.create_task(follow())
    kill = asyncio.create_task(killer())
    failures: list[StorageError] = []
    try:
        for batch in batches:
            await _append_retrying(store, batch, failures)
            await asyncio.sleep(0.005)
    finally:
        kill.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await kill
    async with asyncio.timeout(20):
        await follower
    events = await store.events(sid, limit=10_000)
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert [e.id for e in events] == [d.id for b in batches for d in b]
    assert [e.seq for e in got] == list(range(1, total + 1))
    assert failures, "the killer never hit the writer: the test proved nothing"


async def test_in_memory_sqlite_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError) as err:
        await open_store("sqlite+aiosqlite://")
    assert err.value.code == "invalid_format" and "use a file" in err.value.message


async def test_a_full_sqlite_database_is_retryable_storage_full_and_writes_resume(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'full.db'}"
    await upgrade(url)
    s = await open_store(url)
    try:
        # The writer engine holds one connection: capping its page count fills the database
        # as a full disk would (SQLITE_FULL), without needing a tiny filesystem.
        async with s.engine.connect() as conn:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
            await conn.exec_driver_sql(f"PRAGMA max_page_count = {pages + 2}")
        big = [d.model_copy(update={"data": {"text": "x" * 50_000}}) for d in deltas("s", "r", 8)]
        with pytest.raises(StorageError) as err:
            await s.append(big)
        assert err.value.code == "storage_full" and err.value.retryable
        assert "free disk space" in err.value.message
        async with s.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")
        assert len(await s.append(big)) == 8  # room again: the same write now lands, once
        assert [e.seq for e in await s.events("s")] == list(range(1, 9))
    finally:
        await s.close()
