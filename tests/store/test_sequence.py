"""Sequence allocation under concurrency: gap-free, no duplicates, no lock errors."""

from __future__ import annotations

import asyncio

from agent_session_manager.store import EventStore
from tests.store.drafts import deltas, run_of


async def test_twenty_concurrent_writers_on_one_session_are_gap_free(
    store: EventStore, sid: str
) -> None:
    writers, batches, per_batch = 20, 10, 5

    async def writer(w: int) -> None:
        for b in range(batches):
            await store.append(deltas(sid, f"run-{w}", per_batch, start=b * per_batch))

    await asyncio.gather(*(writer(w) for w in range(writers)))
    events = await store.events(sid, limit=10_000)
    total = writers * batches * per_batch
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert len({e.id for e in events}) == total
    # Each writer's own events keep their order.
    for w in range(writers):
        mine = [e.data["index"] for e in events if e.run_id == run_of(sid, f"run-{w}")]
        assert mine == list(range(batches * per_batch))


async def test_concurrent_retries_of_one_batch_write_it_once(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    batch = deltas(sid, "r1", 20)
    results = await asyncio.gather(*(s.append(batch) for s in [store, other_store] * 5))
    assert sorted(len(r) for r in results) == [0] * 9 + [20]
    assert [e.seq for e in await store.events(sid)] == list(range(1, 21))


async def test_writers_in_two_stores_interleave_without_gaps(
    store: EventStore, other_store: EventStore, sid: str
) -> None:
    async def writer(s: EventStore, run: str) -> None:
        for b in range(20):
            await s.append(deltas(sid, run, 3, start=b * 3))

    await asyncio.gather(
        *(writer(s, f"{i}-{n}") for i, s in enumerate([store, other_store]) for n in range(5))
    )
    seqs = [e.seq for e in await store.events(sid, limit=10_000)]
    assert seqs == list(range(1, 2 * 5 * 20 * 3 + 1))
