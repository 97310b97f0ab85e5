"""The provider activity's outage policy against a real SQLite store whose database fills up
(``max_page_count``: SQLITE_FULL, as on a full disk) and gets room again."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_session_manager.activities.sink import StoreSink
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas


async def fill_up(store: EventStore) -> None:
    """No room for another page: the next write that needs one fails ``storage_full``."""
    async with store.engine.connect() as conn:  # the writer's one connection
        pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
        await conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")


async def make_room(store: EventStore, after: float = 0.0) -> None:
    await asyncio.sleep(after)
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")


class Beats:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *details: object) -> None:
        self.count += 1


def big(sid: str, run: str, n: int) -> list[EventDraft]:
    return [d.model_copy(update={"data": {"text": "x" * 20_000}}) for d in deltas(sid, run, n)]


async def test_outlast_waits_for_room_heartbeating_and_writes_once(store: EventStore) -> None:
    await fill_up(store)
    beats = Beats()
    outage = StoreOutage(beats, initial_delay=0.05, max_delay=0.2)
    room = asyncio.create_task(make_room(store, after=1.5))
    written = await outage.outlast(lambda: store.append(big("s1", "r", 4)), "testing")
    await room
    assert len(written) == 4
    assert outage.failures >= 2
    assert beats.count >= 2  # the attempt stayed alive while it waited
    assert [e.seq for e in await store.events("s1")] == [1, 2, 3, 4]


async def test_outlast_gives_up_at_the_deadline_with_the_retryable_error(
    store: EventStore,
) -> None:
    await fill_up(store)
    outage = StoreOutage(Beats(), deadline=time.monotonic() + 0.5, initial_delay=0.05)
    with pytest.raises(AsmError) as err:
        await outage.outlast(lambda: store.append(big("s2", "r", 4)), "testing")
    assert err.value.code == "storage_full" and err.value.retryable  # Temporal's turn now


async def test_outlast_does_not_wait_for_errors_that_will_not_heal(store: EventStore) -> None:
    outage = StoreOutage(Beats())
    with pytest.raises(AsmError) as err:
        await outage.outlast(lambda: store.events("s3", after_seq=5), "testing")
    assert err.value.code == "invalid_cursor" and outage.failures == 0


async def test_sink_streams_through_a_full_store_and_loses_no_delta(store: EventStore) -> None:
    beats = Beats()
    sink = StoreSink(
        store,
        session_id="s4",
        run_id="r4",
        attempt=1,
        provider="mock",
        heartbeat=beats,
        flush_interval=0.0,  # every emit tries to write
        outage=StoreOutage(beats, initial_delay=0.05, max_delay=0.2),
    )
    await sink.emit(EventType.MESSAGE_STREAMED, {"index": 0, "kind": "text", "text": "a" * 9000})
    await fill_up(store)
    pieces = [f"{i:04d}" * 2000 for i in range(20)]
    for piece in pieces:  # none of these raises: the store is full, the stream goes on
        await sink.emit(EventType.MESSAGE_STREAMED, {"index": 0, "kind": "text", "text": piece})
        await asyncio.sleep(0.02)
    assert sink.outage.failures >= 1
    await make_room(store)
    await asyncio.sleep(0.25)  # past the sink's back-off (at most 0.2 s here)
    await sink.flush()
    assert sink.unwritten == 0
    events = await store.events("s4")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert "".join(e.data["text"] for e in events) == "a" * 9000 + "".join(pieces)
