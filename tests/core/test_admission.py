"""Admission: start, queue, preempt or reject a submitted run, and when the queue moves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.admission import (
    PreemptRuns,
    QueueRun,
    RejectRun,
    SessionLoad,
    StartRun,
    admit,
    admit_after_preemption,
    admit_queued,
)
from agent_session_manager.core.contract import MULTITASK_STRATEGIES, MultitaskStrategy
from agent_session_manager.core.status import SessionStatus

strategies = st.sampled_from(MULTITASK_STRATEGIES)


@st.composite
def loads(draw: st.DrawFn, /, **fixed: Any) -> SessionLoad:
    max_active = draw(st.integers(min_value=1, max_value=5))
    max_queued = draw(st.integers(min_value=0, max_value=5))
    load = SessionLoad(
        status=draw(st.sampled_from(list(SessionStatus))),
        active=draw(st.integers(min_value=0, max_value=max_active + 1)),
        queued=draw(st.integers(min_value=0, max_value=max_queued + 1)),
        max_active=max_active,
        max_queued=max_queued,
        ending=draw(st.booleans()),
        draining=draw(st.booleans()),
    )
    return replace(load, **fixed)


def active(**changes: Any) -> SessionLoad:
    """An active session with one slot, free, and room in the queue; ``changes`` applied."""
    load = SessionLoad(status=SessionStatus.ACTIVE, active=0, queued=0, max_active=1, max_queued=10)
    return replace(load, **changes)


@given(strategies, loads())
def test_a_session_that_is_not_active_or_paused_or_is_ending_rejects_every_run(
    strategy: MultitaskStrategy, load: SessionLoad
) -> None:
    decision = admit(strategy, load)
    if load.ending or load.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
        assert isinstance(decision, RejectRun)
        assert decision.error.code == "invalid_transition"
    else:
        assert not (isinstance(decision, RejectRun) and decision.error.code == "invalid_transition")


@given(strategies, loads())
def test_a_run_starts_only_in_an_active_session_with_a_free_slot(
    strategy: MultitaskStrategy, load: SessionLoad
) -> None:
    if isinstance(admit(strategy, load), StartRun):
        assert load.status is SessionStatus.ACTIVE
        assert not load.ending and not load.draining
        assert load.active < load.max_active


@given(strategies, loads(status=SessionStatus.ACTIVE, ending=False, draining=False))
def test_with_a_free_slot_every_strategy_starts_the_run(
    strategy: MultitaskStrategy, load: SessionLoad
) -> None:
    if load.active < load.max_active:
        assert admit(strategy, load) == StartRun()


@given(strategies, loads(ending=False))
def test_only_interrupt_and_rollback_preempt_and_only_when_every_slot_is_busy(
    strategy: MultitaskStrategy, load: SessionLoad
) -> None:
    decision = admit(strategy, load)
    accepting = load.status in (SessionStatus.ACTIVE, SessionStatus.PAUSED)
    expected = (
        accepting and load.active >= load.max_active and strategy in ("interrupt", "rollback")
    )
    assert isinstance(decision, PreemptRuns) == expected
    if isinstance(decision, PreemptRuns):
        assert decision.rollback == (strategy == "rollback")


@given(strategies, loads(ending=False, draining=True))
def test_a_draining_session_never_refuses_a_run_for_being_busy(
    strategy: MultitaskStrategy, load: SessionLoad
) -> None:
    decision = admit(strategy, load)
    if load.status in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
        assert isinstance(decision, PreemptRuns | QueueRun)


@given(loads(ending=False, draining=False))
def test_reject_strategy_refuses_exactly_when_busy(load: SessionLoad) -> None:
    decision = admit("reject", load)
    if load.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
        return
    busy = load.active >= load.max_active or load.status is SessionStatus.PAUSED
    assert isinstance(decision, RejectRun) == busy
    if isinstance(decision, RejectRun):
        assert decision.error.code == "max_runs_exceeded"
        assert decision.error.details == {"limit": load.max_active, "active": load.active}


@given(loads(ending=False, draining=False))
def test_enqueue_queues_when_busy_until_the_queue_is_full(load: SessionLoad) -> None:
    decision = admit("enqueue", load)
    if load.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
        return
    busy = load.active >= load.max_active or load.status is SessionStatus.PAUSED
    if not busy:
        assert decision == StartRun()
    elif load.queued >= load.max_queued:
        assert isinstance(decision, RejectRun)
        assert decision.error.code == "max_runs_exceeded"
        assert decision.error.details == {"limit": load.max_queued, "queued": load.queued}
    else:
        assert decision == QueueRun()


def test_paused_session_queues_an_interrupting_run_without_preempting_when_slots_are_free() -> None:
    assert admit("interrupt", active(status=SessionStatus.PAUSED)) == QueueRun()


def test_interrupt_preempts_even_a_paused_session_when_every_slot_is_busy() -> None:
    load = active(status=SessionStatus.PAUSED, active=1)
    assert admit("interrupt", load) == PreemptRuns(rollback=False)
    assert admit_after_preemption(load) == QueueRun()


def test_unknown_strategy_is_a_validation_error() -> None:
    decision = admit(cast(MultitaskStrategy, "shove"), active())
    assert isinstance(decision, RejectRun)
    assert decision.error.code == "validation_error"


def test_unknown_strategy_on_an_ended_session_is_refused_for_the_session_first() -> None:
    decision = admit(cast(MultitaskStrategy, "shove"), active(status=SessionStatus.COMPLETED))
    assert isinstance(decision, RejectRun)
    assert decision.error.code == "invalid_transition"


@given(loads())
def test_a_preempting_run_takes_the_freed_slot_unless_the_session_holds_runs(
    load: SessionLoad,
) -> None:
    held = load.status is SessionStatus.PAUSED or load.draining
    assert admit_after_preemption(load) == (QueueRun() if held else StartRun())


@given(loads())
def test_the_queue_moves_exactly_when_a_new_run_would_start_at_once(load: SessionLoad) -> None:
    # The head of the queue is treated like a run nobody waits for: no strategy applies.
    for strategy in MULTITASK_STRATEGIES:
        starts_now = isinstance(admit(strategy, load), StartRun)
        assert isinstance(admit_queued(load), StartRun) == starts_now


@given(loads())
def test_admission_is_a_function_of_its_input(load: SessionLoad) -> None:
    # The session re-decides in the handler what the validator decided: same input, same answer.
    for strategy in MULTITASK_STRATEGIES:
        first, second = admit(strategy, load), admit(strategy, load)
        assert type(first) is type(second)
        if isinstance(first, RejectRun) and isinstance(second, RejectRun):
            assert first.error.to_dict() == second.error.to_dict()
        else:
            assert first == second


@given(strategies, st.booleans())
def test_a_run_that_would_take_the_queue_over_its_byte_limit_is_refused(
    strategy: MultitaskStrategy, draining: bool
) -> None:
    load = active(active=1, draining=draining, max_queued_bytes=1000, queued_bytes=900)
    fits = admit(strategy, replace(load, incoming_bytes=100))
    over = admit(strategy, replace(load, incoming_bytes=101))
    if isinstance(fits, QueueRun):
        assert isinstance(over, RejectRun)
        assert over.error.code == "max_runs_exceeded"
        assert "1000" in over.error.message and "continue-as-new" in over.error.message
    else:  # preempting or refused for another reason: the queue's size plays no part
        assert type(over) is type(fits)


def test_a_queued_run_moving_up_is_never_refused_for_its_size() -> None:
    load = active(queued=1, queued_bytes=10**9, max_queued_bytes=1)
    assert isinstance(admit_queued(load), StartRun)
