"""save_messages() / conversation() / mark_rolled_back(): continuity between runs."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_session_manager.core.contract import ContextPolicy, LifecycleRecord, Message, RunPatch
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


# --- the windowed read (core.context policy) -------------------------------------------------

_run_layout = st.lists(
    st.tuples(
        st.sampled_from(["completed", "failed", "running"]),
        st.booleans(),  # rolled back
        st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4),
    ),
    max_size=8,
)


async def _session(store: EventStore, layout: list[tuple[str, bool, list[str]]]) -> str:
    sid = f"s-{uuid.uuid4().hex[:12]}"
    for turn, (status, rolled_back, texts) in enumerate(layout, start=1):
        run = await _run(store, sid, turn, status)
        roles = ["user", "assistant"]
        msgs = [Message(role=roles[i % 2], content=t) for i, t in enumerate(texts)]  # type: ignore[arg-type]
        await store.save_messages(sid, run, turn, msgs)
        if rolled_back:
            await store.mark_rolled_back(run)
    return sid


@settings(
    max_examples=25,
    deadline=None,
    # The store is shared by the examples on purpose: each example has its own session.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_run_layout)
async def test_a_window_that_holds_everything_reads_what_the_full_read_does(
    store: EventStore, layout: list[tuple[str, bool, list[str]]]
) -> None:
    sid = await _session(store, layout)
    whole = ContextPolicy(max_messages=100_000, max_chars=50_000_000)
    before = len(layout) + 1
    full = await store.conversation(sid, before_turn=before)
    assert await store.conversation(sid, before_turn=before, policy=whole) == full


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(_run_layout, st.integers(2, 12), st.integers(1_000, 1_100))
async def test_a_window_keeps_the_newest_whole_runs_that_fit(
    store: EventStore, layout: list[tuple[str, bool, list[str]]], most: int, chars: int
) -> None:
    sid = await _session(store, layout)
    policy = ContextPolicy(max_messages=most, max_chars=chars)
    before = len(layout) + 1
    window = await store.conversation(sid, before_turn=before, policy=policy)
    # The runs that count, newest first: the full read's messages, cut by each counted run's
    # size (as stored: PostgreSQL keeps text without NUL, the store says how).
    sizes = [
        len(texts)
        for status, rolled_back, texts in layout
        if status != "failed" and not rolled_back
    ]
    full = await store.conversation(sid, before_turn=before)
    assert len(full) == sum(sizes)
    counted: list[list[Message]] = []
    start = 0
    for size in sizes:
        counted.insert(0, full[start : start + size])
        start += size
    kept = 0
    while kept < len(counted):
        candidate = counted[: kept + 1]
        n = sum(len(r) for r in candidate)
        c = sum(len(str(m.content)) for r in candidate for m in r)
        if n > most or c > chars:
            break
        kept += 1
    expected = [m for run in reversed(counted[:kept]) for m in run]
    assert window == expected
    assert len(window) <= most


async def test_a_session_with_a_system_prompt_keeps_it_when_its_conversation_is_truncated(
    store: EventStore, sid: str
) -> None:
    # The system prompt travels apart from the conversation (RunSpec.system_prompt): the
    # window only ever drops the oldest runs' messages, whole.
    for turn in range(1, 6):
        run = await _run(store, sid, turn, "completed")
        await store.save_messages(sid, run, turn, _turn(turn))
    window = await store.conversation(sid, 6, ContextPolicy(max_messages=5))
    assert window == _turn(4) + _turn(5)
