"""record(): the lifecycle event and the session/run read models, in one idempotent write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_session_manager.core.contract import LifecycleRecord, RunPatch, SessionPatch
from agent_session_manager.core.errors import ValidationError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.store.drafts import run_of


def _rec(sid: str, n: int, type_: str, **kw: Any) -> LifecycleRecord:
    return LifecycleRecord(event_id=f"{sid}/wf/{n}/{type_}", session_id=sid, type=type_, **kw)


async def test_record_writes_the_event_and_creates_the_session_row(
    store: EventStore, sid: str
) -> None:
    ev = await store.record(
        _rec(
            sid,
            1,
            "session_created",
            session_status="pending",
            session_row=SessionPatch(
                agent_id="agent-7", provider="mock", model="m1", tags=["x", "y"], metadata={"k": 1}
            ),
            data={"agent_id": "agent-7"},
        )
    )
    assert ev is not None and ev.seq == 1 and ev.type is EventType.SESSION_CREATED
    assert ev.attempt == 0
    row = await store.get_session(sid)
    assert row is not None
    assert (row.agent_id, row.provider, row.model, row.status) == (
        "agent-7",
        "mock",
        "m1",
        SessionStatus.PENDING,
    )
    assert row.tags == ["x", "y"] and row.metadata == {"k": 1} and row.last_seq == 1


async def test_replayed_record_writes_nothing_and_reapplies_the_same_values(
    store: EventStore, sid: str
) -> None:
    rec = _rec(
        sid, 1, "session_started", session_status="active", session_row=SessionPatch(agent_id="a")
    )
    assert await store.record(rec) is not None
    first = await store.get_session(sid)
    assert await store.record(rec) is None
    again = await store.get_session(sid)
    assert first is not None and again is not None
    assert again.model_dump(exclude={"updated_at"}) == first.model_dump(exclude={"updated_at"})
    assert await store.last_seq(sid) == 1


async def test_run_lifecycle_fills_the_run_row(store: EventStore, sid: str) -> None:
    run = run_of(sid, "r1")
    await store.record(
        _rec(
            sid,
            1,
            "run_started",
            run_id=run,
            run_status="running",
            run_row=RunPatch(turn=1, input_text="hello", model="m1"),
        )
    )
    started = await store.get_run(run)
    assert started is not None and started.status is RunStatus.RUNNING
    assert started.started_at is not None and started.ended_at is None
    assert started.input_text == "hello" and started.session_id == sid
    usage = TokenUsage(input_tokens=10, output_tokens=5)
    await store.record(
        _rec(
            sid,
            2,
            "run_completed",
            run_id=run,
            run_status="completed",
            run_row=RunPatch(output="hi!", stop_reason="end_turn", usage=usage, attempts=2),
            session_row=SessionPatch(usage=usage, run_count=1),
        )
    )
    done = await store.get_run(run)
    assert done is not None and done.status is RunStatus.COMPLETED
    assert done.ended_at is not None and done.started_at == started.started_at
    assert (done.output, done.stop_reason, done.attempts) == ("hi!", "end_turn", 2)
    assert done.usage == usage and done.usage.total_tokens == 15
    session = await store.get_session(sid)
    assert session is not None and session.usage == usage and session.run_count == 1


async def test_terminal_statuses_are_final_in_the_read_model(store: EventStore, sid: str) -> None:
    run = run_of(sid, "r1")
    await store.record(_rec(sid, 1, "run_completed", run_id=run, run_status="completed"))
    await store.record(_rec(sid, 2, "run_started", run_id=run, run_status="running"))
    row = await store.get_run(run)
    assert row is not None and row.status is RunStatus.COMPLETED
    await store.record(_rec(sid, 3, "session_cancelled", session_status="cancelled"))
    await store.record(_rec(sid, 4, "session_resumed", session_status="active"))
    session = await store.get_session(sid)
    assert session is not None and session.status is SessionStatus.CANCELLED


async def test_only_the_fields_a_patch_sets_change(store: EventStore, sid: str) -> None:
    await store.record(
        _rec(
            sid,
            1,
            "session_created",
            session_row=SessionPatch(agent_id="a", model="m1", tags=["t"]),
        )
    )
    await store.record(_rec(sid, 2, "session_started", session_row=SessionPatch(run_count=3)))
    await store.record(_rec(sid, 3, "session_resumed", session_row=SessionPatch(model=None)))
    row = await store.get_session(sid)
    assert row is not None
    assert (row.agent_id, row.model, row.tags, row.run_count) == ("a", None, ["t"], 3)


async def test_a_run_patch_without_a_run_id_is_invalid_input(store: EventStore, sid: str) -> None:
    with pytest.raises(ValidationError) as err:
        await store.record(_rec(sid, 1, "session_created", run_row=RunPatch(turn=1)))
    assert err.value.code == "invalid_input"
    assert await store.last_seq(sid) == 0


async def test_list_sessions_newest_first_with_filters(store: EventStore, sid: str) -> None:
    agent = f"agent-{sid}"
    for i, status in enumerate(["active", "completed", "active"]):
        await store.record(
            _rec(
                f"{sid}-{i}",
                1,
                "session_created",
                session_status=status,
                session_row=SessionPatch(agent_id=agent),
            )
        )
        await asyncio.sleep(0.002)
    rows = await store.list_sessions(agent_id=agent)
    assert [r.session_id for r in rows] == [f"{sid}-2", f"{sid}-1", f"{sid}-0"]
    active = await store.list_sessions(agent_id=agent, status="active", limit=1)
    assert [r.session_id for r in active] == [f"{sid}-2"]


async def test_runs_are_ordered_by_turn(store: EventStore, sid: str) -> None:
    for n, turn in enumerate([3, 1, 2]):
        await store.record(
            _rec(
                sid,
                n,
                "run_started",
                run_id=run_of(sid, f"t{turn}"),
                run_status="running",
                run_row=RunPatch(turn=turn),
            )
        )
    assert [r.turn for r in await store.runs(sid)] == [1, 2, 3]
    assert await store.get_run(run_of(sid, "none")) is None
    assert await store.get_session(f"{sid}-none") is None


async def test_token_totals_beyond_32_bits_are_stored(store: EventStore, sid: str) -> None:
    # A busy session's total outgrows PostgreSQL's int4 (migration 0004); on int4 the write
    # itself fails.
    run = run_of(sid, "big")
    usage = TokenUsage(input_tokens=2**40, output_tokens=2**40, cache_read_input_tokens=2**40)
    await store.record(
        _rec(
            sid,
            1,
            "run_completed",
            run_id=run,
            run_status="completed",
            run_row=RunPatch(turn=1, usage=usage),
            session_row=SessionPatch(usage=usage, run_count=1),
        )
    )
    done = await store.get_run(run)
    session = await store.get_session(sid)
    assert done is not None and done.usage.total_tokens == 3 * 2**40
    assert session is not None and session.usage == usage
