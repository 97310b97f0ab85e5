"""save_messages() / conversation() / mark_rolled_back(): continuity between runs."""

from __future__ import annotations

import pytest

from agent_session_manager.core.contract import LifecycleRecord, Message, RunPatch
from agent_session_manager.core.errors import ResourceError, StateError
from agent_session_manager.store import EventStore
from tests.store.drafts import deltas, run_of


def _turn(n: int) -> list[Message]:
    return [Message(role="user", content=f"q{n}"), Message(role="assistant", content=f"a{n}")]


async def _run(store: EventStore, sid: str, turn: int, status: str) -> str:
    run = run_of(sid, f"t{turn}")
    await store.record(
        LifecycleRecord(
            event_id=f"{run}/wf/{status}",
            session_id=sid,
            run_id=run,
            type="run_started",
            run_status=status,
            run_row=RunPatch(turn=turn),
        )
    )
    return run


async def test_save_messages_replaces_the_runs_messages(store: EventStore, sid: str) -> None:
    run = await _run(store, sid, 1, "completed")
    await store.save_messages(sid, run, 1, [Message(role="user", content="draft")])
    await store.save_messages(sid, run, 1, _turn(1))
    await store.save_messages(sid, run, 1, _turn(1))
    assert await store.conversation(sid, before_turn=2) == _turn(1)


async def test_save_messages_appends_its_events_in_the_same_write(
    store: EventStore, sid: str
) -> None:
    run = await _run(store, sid, 1, "running")
    final = deltas(sid, "t1", 3)
    written = await store.save_messages(sid, run, 1, _turn(1), events=final)
    assert [e.id for e in written] == [d.id for d in final]
    assert await store.save_messages(sid, run, 1, _turn(1), events=final) == []
    assert await store.last_seq(sid) == 4  # run_started + 3


async def test_conversation_counts_only_earlier_unfailed_runs(store: EventStore, sid: str) -> None:
    outcomes = {
        1: "completed",
        2: "failed",
        3: "running",
        4: "cancelled",
        5: "timeout",
        6: "completed",
    }
    for turn, status in outcomes.items():
        run = await _run(store, sid, turn, status)
        await store.save_messages(sid, run, turn, _turn(turn))
    assert await store.conversation(sid, before_turn=6) == _turn(1) + _turn(3)
    assert await store.conversation(sid, before_turn=7) == _turn(1) + _turn(3) + _turn(6)
    assert await store.conversation(sid, before_turn=1) == []


async def test_rolled_back_run_leaves_the_conversation(store: EventStore, sid: str) -> None:
    for turn in (1, 2):
        run = await _run(store, sid, turn, "completed")
        await store.save_messages(sid, run, turn, _turn(turn))
    await store.mark_rolled_back(run_of(sid, "t2"))
    await store.mark_rolled_back(run_of(sid, "t2"))  # idempotent
    assert await store.conversation(sid, before_turn=3) == _turn(1)
    row = await store.get_run(run_of(sid, "t2"))
    assert row is not None and row.rolled_back


async def test_messages_saved_before_any_lifecycle_record_count(
    store: EventStore, sid: str
) -> None:
    run = run_of(sid, "early")
    await store.save_messages(sid, run, 1, _turn(1))
    assert await store.conversation(sid, before_turn=2) == _turn(1)
    row = await store.get_run(run)
    assert row is not None and row.turn == 1


async def test_unknown_run_and_foreign_run_are_errors(store: EventStore, sid: str) -> None:
    with pytest.raises(ResourceError) as missing:
        await store.mark_rolled_back(run_of(sid, "none"))
    assert missing.value.code == "run_not_found"
    run = await _run(store, sid, 1, "running")
    with pytest.raises(StateError) as foreign:
        await store.save_messages(f"{sid}-other", run, 1, _turn(1))
    assert foreign.value.code == "run_mismatch"
