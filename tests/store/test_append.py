"""append(): gap-free seqs, idempotency by event id, one transaction per batch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent_session_manager.core.errors import StateError
from agent_session_manager.core.events import EventType
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas, lifecycle


async def test_append_assigns_gap_free_seq_from_one_without_a_session_row(
    store: EventStore, sid: str
) -> None:
    written = await store.append(deltas(sid, "r1", 5))
    assert [e.seq for e in written] == [1, 2, 3, 4, 5]
    written = await store.append(deltas(sid, "r1", 3, start=5))
    assert [e.seq for e in written] == [6, 7, 8]
    assert await store.last_seq(sid) == 8
    assert await store.get_session(sid) is None


async def test_appended_event_round_trips_every_field(store: EventStore, sid: str) -> None:
    before = datetime.now(UTC)
    (written,) = await store.append(deltas(sid, "r1", 1, attempt=3))
    (read,) = await store.events(sid)
    assert read == written
    assert read.id == f"{sid}:r1/a3/0" and read.attempt == 3 and read.run_id == f"{sid}:r1"
    assert read.type is EventType.MESSAGE_STREAMED
    assert read.data == {"text": "chunk 0", "index": 0} and read.provider == "mock"
    assert read.created_at.tzinfo is not None and read.created_at >= before


async def test_retried_write_with_the_same_ids_changes_nothing(store: EventStore, sid: str) -> None:
    batch = deltas(sid, "r1", 10)
    first = await store.append(batch)
    assert await store.append(batch) == []
    assert await store.events(sid) == first
    assert await store.last_seq(sid) == 10


async def test_partially_written_batch_writes_only_the_missing_events(
    store: EventStore, sid: str
) -> None:
    batch = deltas(sid, "r1", 6)
    await store.append(batch[:3])
    written = await store.append(batch)
    assert [(e.id, e.seq) for e in written] == [(d.id, i + 4) for i, d in enumerate(batch[3:])]
    assert [e.id for e in await store.events(sid)] == [d.id for d in batch]


async def test_duplicate_ids_within_a_batch_are_written_once(store: EventStore, sid: str) -> None:
    batch = deltas(sid, "r1", 3)
    written = await store.append([*batch, batch[0], batch[2]])
    assert [e.seq for e in written] == [1, 2, 3]


async def test_empty_batch_writes_nothing(store: EventStore, sid: str) -> None:
    assert await store.append([]) == []
    assert await store.last_seq(sid) == 0


async def test_batch_spanning_sessions_numbers_each_session_from_one(
    store: EventStore, sid: str
) -> None:
    other = f"{sid}-b"
    batch = [
        lifecycle(sid, 1, EventType.SESSION_CREATED),
        lifecycle(other, 1, EventType.SESSION_CREATED),
        lifecycle(sid, 2, EventType.SESSION_STARTED),
    ]
    written = await store.append(batch)
    assert [(e.session_id, e.seq) for e in written] == [(sid, 1), (other, 1), (sid, 2)]


async def test_id_existing_in_another_session_is_session_mismatch_and_writes_nothing(
    store: EventStore, sid: str
) -> None:
    await store.append(deltas(sid, "r1", 2))
    other = f"{sid}-b"
    clash = [
        *deltas(other, "r2", 2),
        deltas(sid, "r1", 1)[0].model_copy(update={"session_id": other}),
    ]
    with pytest.raises(StateError) as err:
        await store.append(clash)
    assert err.value.code == "session_mismatch"
    assert await store.last_seq(other) == 0
    assert await store.events(other) == []


async def test_event_data_round_trips_exactly(store: EventStore, sid: str) -> None:
    data = {
        "text": 'héllo ✓ 🚀 "quoted" \\ back\\u0000slash \n tab\t',
        "nested": {"list": [1, 2.5, True, None, {"k": "v"}], "empty": {}},
        "big": 2**53 + 1,
        "neg": -0.000123,
    }
    draft = deltas(sid, "r1", 1)[0].model_copy(update={"data": data})
    (written,) = await store.append([draft])
    (read,) = await store.events(sid)
    assert read.data == data == written.data


async def test_nul_characters_in_event_data_do_not_fail_the_write(
    store: EventStore, sid: str
) -> None:
    # Tool output can contain NUL; PostgreSQL text/JSONB cannot store it: it becomes U+FFFD
    # there (SQLite keeps it). Failing the write would fail the run for a cosmetic byte.
    draft = deltas(sid, "r1", 1)[0].model_copy(update={"data": {"out": "a\x00b", "k\x00": 1}})
    await store.append([draft])
    (read,) = await store.events(sid)
    if store.backend == "postgresql":
        assert read.data == {"out": "a\ufffdb", "k\ufffd": 1}
    else:
        assert read.data == {"out": "a\x00b", "k\x00": 1}
