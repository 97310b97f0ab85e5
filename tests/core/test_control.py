"""Run control operations: transitions, idempotent repeats, capability and terminal rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_session_manager.core.control import RunControl, parse_control_operation
from agent_session_manager.core.errors import ConcurrencyError

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def control(pausable: bool = True) -> RunControl:
    return RunControl(run_id="run_1", pausable=pausable)


def test_pause_then_resume_goes_paused_then_active() -> None:
    paused = control().pause(now=T0)
    assert paused.state == "paused"
    resumed = paused.resume(now=T0 + timedelta(seconds=1))
    assert resumed.state == "active"
    assert [(r.operation, r.outcome) for r in resumed.history] == [
        ("pause", "applied"),
        ("resume", "applied"),
    ]


def test_pausing_a_paused_run_is_an_idempotent_repeat() -> None:
    twice = control().pause(now=T0).pause(now=T0)
    assert twice.state == "paused"
    assert twice.last is not None and twice.last.outcome == "repeated"


def test_resuming_an_active_run_is_an_idempotent_repeat() -> None:
    resumed = control().resume(now=T0)
    assert resumed.state == "active"
    assert resumed.last is not None and resumed.last.outcome == "repeated"


@pytest.mark.parametrize("stop", ["interrupt", "cancel"])
def test_resuming_a_stopped_run_is_invalid_operation(stop: str) -> None:
    stopped = control().pause(now=T0).apply(stop, now=T0)
    with pytest.raises(ConcurrencyError) as caught:
        stopped.resume(now=T0)
    assert caught.value.code == "invalid_operation"


def test_resuming_a_finished_run_is_invalid_operation() -> None:
    with pytest.raises(ConcurrencyError) as caught:
        control().finish().resume(now=T0)
    assert caught.value.code == "invalid_operation"
    assert caught.value.details["state"] == "finished"


def test_pausing_a_finished_run_is_invalid_operation() -> None:
    with pytest.raises(ConcurrencyError) as caught:
        control().finish().pause(now=T0)
    assert caught.value.code == "invalid_operation"


@pytest.mark.parametrize("op", ["pause", "resume"])
def test_pause_and_resume_need_the_capability(op: str) -> None:
    with pytest.raises(ConcurrencyError) as caught:
        control(pausable=False).apply(op, now=T0)
    assert caught.value.code == "capability_not_supported"


def test_capability_is_checked_before_state() -> None:
    with pytest.raises(ConcurrencyError) as caught:
        control(pausable=False).cancel(now=T0).resume(now=T0)
    assert caught.value.code == "capability_not_supported"


@pytest.mark.parametrize(("op", "state"), [("interrupt", "interrupted"), ("cancel", "cancelled")])
def test_stop_operations_work_without_the_pause_capability(op: str, state: str) -> None:
    assert control(pausable=False).apply(op, now=T0).state == state


@pytest.mark.parametrize(("op", "state"), [("interrupt", "interrupted"), ("cancel", "cancelled")])
def test_a_paused_run_can_be_stopped(op: str, state: str) -> None:
    assert control().pause(now=T0).apply(op, now=T0).state == state


def test_cancelling_a_cancelled_run_is_an_idempotent_repeat() -> None:
    twice = control().cancel(now=T0).cancel(now=T0)
    assert twice.state == "cancelled"
    assert twice.last is not None and twice.last.outcome == "repeated"


def test_interrupting_a_cancelled_run_is_ignored_and_keeps_it_cancelled() -> None:
    late = control().cancel(now=T0).interrupt(now=T0)
    assert late.state == "cancelled"
    assert late.last is not None and late.last.outcome == "ignored"


def test_cancelling_a_finished_run_is_ignored() -> None:
    late = control().finish().cancel(now=T0)
    assert late.state == "finished"
    assert late.last is not None and late.last.outcome == "ignored"


def test_history_records_operation_states_time_and_reason() -> None:
    ctl = control().pause(now=T0, reason="user asked")
    record = ctl.history[0]
    assert (record.operation, record.from_state, record.to_state, record.at, record.reason) == (
        "pause",
        "active",
        "paused",
        T0,
        "user asked",
    )


def test_a_rejected_request_leaves_no_trace() -> None:
    finished = control().finish()
    with pytest.raises(ConcurrencyError):
        finished.resume(now=T0)
    assert finished.history == ()


def test_control_is_immutable_each_request_returns_a_new_one() -> None:
    start = control()
    start.pause(now=T0)
    assert start.state == "active" and start.history == ()


def test_unknown_operation_is_invalid_operation() -> None:
    with pytest.raises(ConcurrencyError) as caught:
        parse_control_operation("rewind")
    assert caught.value.code == "invalid_operation"
    with pytest.raises(ConcurrencyError):
        control().apply("rewind", now=T0)


def test_finish_adds_no_history_and_keeps_a_stopped_state() -> None:
    assert control().finish().history == ()
    assert control().interrupt(now=T0).finish().state == "interrupted"
    assert control().finish().is_terminal
