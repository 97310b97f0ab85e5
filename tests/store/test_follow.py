"""follow() and wait_events(): every event exactly once, in order, from any cursor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from agent_session_manager.core.errors import ResourceError, StateError, ValidationError
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas, run_of

TIMEOUT = 10.0


async def _collect(it: AsyncIterator[Event], n: int) -> list[Event]:
    out: list[Event] = []
    async with contextlib.aclosing(it):  # type: ignore[type-var]
        async with asyncio.timeout(TIMEOUT):
            async for ev in it:
                out.append(ev)
                if len(out) == n:
                    break
    return out


async def _write(store: EventStore, sid: str, batches: int, per: int) -> None:
    for b in range(batches):
        await store.append(deltas(sid, "w", per, start=b * per))
        await asyncio.sleep(0.002)


async def test_followers_started_before_during_and_after_writing_see_every_event_once(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    batches, per = 30, 4
    total = batches * per
    # Followers on another store instance wake up like another process would (LISTEN/polling).
    before = asyncio.create_task(_collect(other_store.follow(sid), total))
    await asyncio.sleep(0.05)
    writing = asyncio.create_task(_write(store, sid, batches, per))
    await asyncio.sleep(0.02)
    during = asyncio.create_task(_collect(other_store.follow(sid), total))
    same_store = asyncio.create_task(_collect(store.follow(sid), total))
    await writing
    after = await _collect(other_store.follow(sid), total)
    for got in (await before, await during, await same_store, after):
        assert [e.seq for e in got] == list(range(1, total + 1))


async def test_follow_resumes_after_any_seq(store: EventStore, sid: str) -> None:
    await store.append(deltas(sid, "a", 10))
    got = await _collect(store.follow(sid, after_seq=7), 3)
    assert [e.seq for e in got] == [8, 9, 10]
    tail = asyncio.create_task(_collect(store.follow(sid, after_seq=10), 2))
    await asyncio.sleep(0.02)
    await store.append(deltas(sid, "a", 2, start=10))
    assert [e.seq for e in await tail] == [11, 12]


async def test_filtered_follow_skips_other_runs_and_types(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    it = other_store.follow(sid, run_id=run_of(sid, "b"), types=[EventType.MESSAGE_STREAMED])
    task = asyncio.create_task(_collect(it, 4))
    for i in range(4):
        await store.append(deltas(sid, "a", 3, start=3 * i))
        await store.append(deltas(sid, "b", 1, start=i))
    got = await task
    assert [e.data["index"] for e in got] == [0, 1, 2, 3]
    assert {e.run_id for e in got} == {run_of(sid, "b")}


async def test_follow_rejects_bad_cursors(store: EventStore, sid: str) -> None:
    with pytest.raises(StateError) as neg:
        store.follow(sid, after_seq=-1)  # raised at the call, before iterating
    assert neg.value.code == "invalid_cursor"
    await store.append(deltas(sid, "a", 2))
    with pytest.raises(StateError) as beyond:
        await _collect(store.follow(sid, after_seq=3), 1)
    assert beyond.value.code == "invalid_cursor" and "0..2" in beyond.value.message
    with pytest.raises(ResourceError) as missing:
        await _collect(store.follow(f"{sid}-none", must_exist=True), 1)
    assert missing.value.code == "session_not_found"


async def test_follow_of_a_session_not_yet_written_waits_for_its_first_event(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    task = asyncio.create_task(_collect(other_store.follow(sid), 1))
    await asyncio.sleep(0.05)
    assert not task.done()
    await store.append(deltas(sid, "a", 1))
    assert [e.seq for e in await task] == [1]


async def test_closing_the_store_ends_followers_with_stream_closed(db_url: str, sid: str) -> None:
    from agent_session_manager.store import open_store

    s = await open_store(db_url)
    task = asyncio.create_task(_collect(s.follow(sid), 1))
    await asyncio.sleep(0.05)
    await s.close()
    with pytest.raises(StateError) as err:
        await task
    assert err.value.code == "stream_closed"


async def test_wait_events_returns_at_once_when_events_exist(store: EventStore, sid: str) -> None:
    await store.append(deltas(sid, "a", 3))
    got = await store.wait_events(sid, 1, timeout=5)
    assert [e.seq for e in got] == [2, 3]


async def test_wait_events_wakes_on_a_write_from_elsewhere(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(other_store.wait_events(sid, 0, timeout=5))
    await asyncio.sleep(0.05)
    start = loop.time()
    await store.append(deltas(sid, "a", 2))
    got = await task
    assert [e.seq for e in got] == [1, 2]
    assert loop.time() - start < 1.0


async def test_wait_events_times_out_empty(store: EventStore, sid: str) -> None:
    await store.append(deltas(sid, "a", 1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await store.wait_events(sid, 1, timeout=0.2) == []
    assert 0.15 < loop.time() - start < 2.0


async def test_newer_events_reads_many_sessions_after_their_heads_in_one_call(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    a, b, quiet = f"{sid}a", f"{sid}b", f"{sid}q"
    await store.append(deltas(a, "r", 5) + deltas(b, "r", 3) + deltas(quiet, "r", 2))
    woken: list[str] = []
    got = asyncio.Event()

    def wake(session_id: str) -> None:
        woken.append(session_id)
        got.set()

    watch = await store.watch(a, wake)
    try:
        found = await store.newer_events({a: 2, b: 0, quiet: 2}, page=2)
        assert [e.seq for e in found[a]] == [3, 4]  # at most `page` per session
        assert [e.seq for e in found[b]] == [1, 2]
        assert quiet not in found  # nothing new there
        assert all(e.session_id == a for e in found[a])
        # A write from another process (store) wakes the watcher of that session.
        await other_store.append(deltas(a, "r", 1, start=5))
        async with asyncio.timeout(TIMEOUT):
            await got.wait()
        assert a in woken
        assert [e.seq for e in (await store.newer_events({a: 5}))[a]] == [6]
    finally:
        store.unwatch(watch)
    assert await store.newer_events({}) == {}
    with pytest.raises(ValidationError):
        await store.newer_events({a: 0}, page=0)


async def test_every_write_from_elsewhere_wakes_a_watch_without_the_safety_reread(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    # SQLite's poller skips its query while PRAGMA data_version says nothing was committed:
    # with the once-a-second safety query pushed out of reach, each write must still wake.
    hub = other_store._hub  # the poller (SQLite) or the listener (PostgreSQL)
    hub.safety_interval = 3600.0
    woken = asyncio.Event()
    watch = await other_store.watch(sid, lambda _sid: woken.set())
    try:
        for i in range(15):
            await asyncio.sleep(0.001 * (i % 4))  # some writes land between polls, some not
            woken.clear()
            await store.append(deltas(sid, "w", 1, start=i))
            async with asyncio.timeout(TIMEOUT):
                await woken.wait()
    finally:
        other_store.unwatch(watch)
