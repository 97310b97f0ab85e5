"""Cancelled writers and locked SQLite files never leave gaps or half-written batches."""

from __future__ import annotations

import asyncio
import random
import sqlite3

import pytest

import agent_session_manager.store._engine as engine_mod
from agent_session_manager.core.errors import StorageError
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas


async def test_cancelled_appends_leave_no_gaps_and_no_partial_batches(
    store: EventStore, sid: str
) -> None:
    rng = random.Random(3)
    batches = [deltas(sid, f"w{i}", 5) for i in range(60)]
    tasks = [asyncio.create_task(store.append(b)) for b in batches]
    for t in tasks:
        if rng.random() < 0.5:
            await asyncio.sleep(rng.uniform(0, 0.002))
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The store is still healthy, and every batch is all-or-nothing.
    await store.append(deltas(sid, "after", 1))
    events = await store.events(sid, limit=10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    by_run: dict[str | None, int] = {}
    for e in events:
        by_run[e.run_id] = by_run.get(e.run_id, 0) + 1
    assert set(by_run.values()) <= {5, 1}


def _sqlite_path(store: EventStore) -> str:
    return store.url.removeprefix("sqlite+aiosqlite:///")


async def test_sqlite_write_waits_for_another_process_holding_the_lock(
    backend: str, store: EventStore, sid: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite file locking")
    other = sqlite3.connect(_sqlite_path(store), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(store.append(deltas(sid, "a", 3)))
        await asyncio.sleep(0.3)
        assert not task.done()
        other.execute("ROLLBACK")
        assert [e.seq for e in await asyncio.wait_for(task, 10)] == [1, 2, 3]
    finally:
        other.close()


async def test_sqlite_lock_held_past_the_retry_budget_is_retryable_connection_failure(
    backend: str, db_url: str, sid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite file locking")
    from agent_session_manager.store import open_store

    monkeypatch.setattr(engine_mod, "SQLITE_BUSY_TIMEOUT_MS", 50)
    s = await open_store(db_url)
    s.sqlite_lock_retry_s = 0.2
    other = sqlite3.connect(_sqlite_path(s), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError) as err:
            await s.append(deltas(sid, "a", 1))
        assert err.value.code == "storage_connection_failed" and err.value.retryable
        assert "locked" in err.value.message
        other.execute("ROLLBACK")
        assert [e.seq for e in await s.append(deltas(sid, "a", 1))] == [1]
    finally:
        other.close()
        await s.close()
