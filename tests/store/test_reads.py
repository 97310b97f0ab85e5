"""events() / last_seq(): filters, paging, and the cursor and unknown-session rules."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.contract import LifecycleRecord, SessionPatch
from agent_session_manager.core.errors import ResourceError, StateError
from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.store import EventStore
from agent_session_manager.store._reads import read_page
from tests.store.drafts import deltas, lifecycle, run_of


async def _mixed(store: EventStore, sid: str) -> None:
    await store.append([lifecycle(sid, 1, EventType.SESSION_CREATED)])  # seq 1
    await store.append(deltas(sid, "a", 3))  # 2..4
    await store.append(deltas(sid, "b", 2))  # 5..6
    await store.append([lifecycle(sid, 2, EventType.SESSION_PAUSED)])  # 7


async def test_events_filter_by_run_type_and_range(store: EventStore, sid: str) -> None:
    await _mixed(store, sid)
    assert [e.seq for e in await store.events(sid)] == list(range(1, 8))
    assert [e.seq for e in await store.events(sid, after_seq=3)] == [4, 5, 6, 7]
    assert [e.seq for e in await store.events(sid, after_seq=1, before_seq=4)] == [2, 3]
    assert [e.seq for e in await store.events(sid, run_id=run_of(sid, "b"))] == [5, 6]
    lifecycle_types = ["session_created", EventType.SESSION_PAUSED]
    assert [e.seq for e in await store.events(sid, types=lifecycle_types)] == [1, 7]
    assert [e.seq for e in await store.events(sid, run_id=run_of(sid, "a"), limit=2)] == [2, 3]


async def test_paging_with_after_seq_reads_everything_once(store: EventStore, sid: str) -> None:
    await store.append(deltas(sid, "a", 25))
    cursor, seen = 0, []
    while page := await store.events(sid, after_seq=cursor, limit=7):
        seen += [e.seq for e in page]
        cursor = page[-1].seq
    assert seen == list(range(1, 26))


async def test_last_seq_is_zero_for_a_session_without_events(store: EventStore, sid: str) -> None:
    assert await store.last_seq(sid) == 0


async def test_negative_cursor_is_invalid_cursor(store: EventStore, sid: str) -> None:
    with pytest.raises(StateError) as err:
        await store.events(sid, after_seq=-1)
    assert err.value.code == "invalid_cursor"
    assert ">= 0" in err.value.message


async def test_cursor_beyond_the_end_is_invalid_cursor_with_the_valid_range(
    store: EventStore, sid: str
) -> None:
    await store.append(deltas(sid, "a", 4))
    assert await store.events(sid, after_seq=4) == []  # the end itself is a valid cursor
    with pytest.raises(StateError) as err:
        await store.events(sid, after_seq=5)
    assert err.value.code == "invalid_cursor"
    assert "0..4" in err.value.message
    assert err.value.details["max"] == 4
    assert await store.events(sid, after_seq=5, strict=False) == []


async def test_unknown_session_reads_empty_unless_it_must_exist(
    store: EventStore, sid: str
) -> None:
    assert await store.events(sid) == []
    with pytest.raises(ResourceError) as err:
        await store.events(sid, must_exist=True)
    assert err.value.code == "session_not_found"
    assert sid in err.value.message


async def test_session_with_a_row_but_no_events_exists(store: EventStore, sid: str) -> None:
    # record() always writes an event; a bare row comes from another writer of the read model.
    await store.record(
        LifecycleRecord(
            event_id=f"{sid}/wf/0/session_created",
            session_id=sid,
            type="session_created",
            session_row=SessionPatch(agent_id="a"),
        )
    )
    assert [e.type for e in await store.events(sid, must_exist=True)] == [EventType.SESSION_CREATED]


async def test_unknown_type_filter_is_invalid_event_type(store: EventStore, sid: str) -> None:
    with pytest.raises(StateError) as err:
        await store.events(sid, types=["nope"])
    assert err.value.code == "invalid_event_type"


_kind = st.sampled_from(
    [EventType.MESSAGE_STREAMED, EventType.RUN_STARTED, EventType.TOOL_CALL_STARTED]
)


@settings(
    max_examples=25,
    deadline=None,
    # The store is shared by the examples on purpose: each example has its own session.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(st.tuples(_kind, st.sampled_from(["a", "b"])), max_size=30),
    st.sets(_kind, min_size=1),
    st.sampled_from([None, "a"]),
    st.integers(0, 8),
    st.integers(1, 6),
)
async def test_a_filtered_page_returns_what_matches_and_resumes_after_what_it_looked_at(
    store: EventStore,
    written: list[tuple[EventType, str]],
    types: set[EventType],
    run: str | None,
    after: int,
    limit: int,
) -> None:
    sid = f"s-{uuid.uuid4().hex[:12]}"
    drafts = [
        EventDraft(
            id=f"{sid}/{i}", session_id=sid, run_id=run_of(sid, r), type=kind, provider="mock"
        )
        for i, (kind, r) in enumerate(written)
    ]
    await store.append(drafts)
    after = min(after, len(drafts))
    wanted = [
        i + 1
        for i, (kind, r) in enumerate(written)
        if i + 1 > after and kind in types and (run is None or r == run)
    ]
    run_id = None if run is None else run_of(sid, run)
    names = sorted(t.value for t in types)
    events, cursor = await store._run_read(  # the page a live follower reads on each wake-up
        lambda conn: read_page(conn, sid, after, None, run_id, names, limit)
    )
    assert [e.seq for e in events] == wanted[:limit]
    # Resuming after the cursor skips nothing that matches and repeats nothing.
    assert cursor == (wanted[limit - 1] if len(wanted) >= limit else max(after, len(drafts)))
