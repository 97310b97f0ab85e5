"""Session and run status machines: allowed moves, terminal finality, parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_session_manager.core.errors import StateError
from agent_session_manager.core.status import (
    RUN_TRANSITIONS,
    SESSION_TRANSITIONS,
    RunStatus,
    SessionStatus,
    allowed_targets,
    check_transition,
    parse_run_status,
    parse_session_status,
)

PROPERTY = settings(database=None, deadline=None, max_examples=300)

SESSION_EDGES = [
    ("pending", "active"),
    ("pending", "failed"),
    ("pending", "cancelled"),
    ("active", "paused"),
    ("active", "completed"),
    ("active", "failed"),
    ("active", "cancelled"),
    ("paused", "active"),
    ("paused", "completed"),
    ("paused", "failed"),
    ("paused", "cancelled"),
]
RUN_EDGES = [
    ("pending", "running"),
    ("pending", "failed"),
    ("pending", "cancelled"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "timeout"),
]
SESSION_TERMINAL = [SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.CANCELLED]
RUN_TERMINAL = [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMEOUT]


def test_session_transition_table_is_exactly_the_documented_edges() -> None:
    edges = {(a.value, b.value) for a, targets in SESSION_TRANSITIONS.items() for b in targets}
    assert edges == set(SESSION_EDGES)


def test_run_transition_table_is_exactly_the_documented_edges() -> None:
    edges = {(a.value, b.value) for a, targets in RUN_TRANSITIONS.items() for b in targets}
    assert edges == set(RUN_EDGES)


@pytest.mark.parametrize(("src", "dst"), SESSION_EDGES)
def test_allowed_session_transition_returns_the_target(src: str, dst: str) -> None:
    assert check_transition(SessionStatus(src), SessionStatus(dst)) is SessionStatus(dst)


@pytest.mark.parametrize(("src", "dst"), RUN_EDGES)
def test_allowed_run_transition_returns_the_target(src: str, dst: str) -> None:
    assert check_transition(RunStatus(src), RunStatus(dst)) is RunStatus(dst)


@pytest.mark.parametrize("terminal", SESSION_TERMINAL)
def test_terminal_session_rejects_every_transition(terminal: SessionStatus) -> None:
    assert allowed_targets(terminal) == frozenset()
    for target in SessionStatus:
        with pytest.raises(StateError) as caught:
            check_transition(terminal, target)
        assert caught.value.code == "invalid_transition"


@pytest.mark.parametrize("terminal", RUN_TERMINAL)
def test_terminal_run_rejects_every_transition(terminal: RunStatus) -> None:
    assert allowed_targets(terminal) == frozenset()
    for target in RunStatus:
        with pytest.raises(StateError, match="none \\(terminal\\)"):
            check_transition(terminal, target)


def test_pending_session_cannot_pause_or_complete() -> None:
    for target in (SessionStatus.PAUSED, SessionStatus.COMPLETED):
        with pytest.raises(StateError):
            check_transition(SessionStatus.PENDING, target)


def test_pending_run_cannot_complete_or_time_out_without_running() -> None:
    for target in (RunStatus.COMPLETED, RunStatus.TIMEOUT):
        with pytest.raises(StateError):
            check_transition(RunStatus.PENDING, target)


@pytest.mark.parametrize("status", list(SessionStatus))
def test_moving_a_session_to_the_same_status_is_an_invalid_transition(
    status: SessionStatus,
) -> None:
    with pytest.raises(StateError):
        check_transition(status, status)


@pytest.mark.parametrize("status", list(RunStatus))
def test_moving_a_run_to_the_same_status_is_an_invalid_transition(status: RunStatus) -> None:
    with pytest.raises(StateError):
        check_transition(status, status)


def test_invalid_transition_names_from_to_and_the_allowed_targets() -> None:
    with pytest.raises(StateError) as caught:
        check_transition(SessionStatus.PENDING, SessionStatus.PAUSED)
    err = caught.value
    assert err.code == "invalid_transition"
    assert err.details == {
        "kind": "session",
        "from": "pending",
        "to": "paused",
        "allowed": ["active", "cancelled", "failed"],
    }
    assert "pending to paused" in err.message
    assert "active, cancelled, failed" in err.message


def test_checking_a_session_status_against_a_run_status_is_a_type_error() -> None:
    # StrEnum values compare equal across the two enums: the check must not be fooled.
    with pytest.raises(TypeError):
        check_transition(SessionStatus.ACTIVE, RunStatus.CANCELLED)  # type: ignore[type-var]


def test_a_bare_string_status_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        allowed_targets("active")  # type: ignore[type-var]


@pytest.mark.parametrize("value", ["pending", "active", "paused", "completed", "failed"])
def test_parse_session_status_accepts_known_values(value: str) -> None:
    assert parse_session_status(value).value == value


def test_unknown_session_status_is_invalid_status_naming_the_valid_ones() -> None:
    with pytest.raises(StateError) as caught:
        parse_session_status("running")
    assert caught.value.code == "invalid_status"
    assert "pending, active, paused" in caught.value.message


def test_unknown_run_status_is_invalid_status() -> None:
    with pytest.raises(StateError) as caught:
        parse_run_status("paused")
    assert caught.value.code == "invalid_status"
    assert caught.value.details == {"status": "paused"}


def test_is_terminal_marks_exactly_the_final_statuses() -> None:
    assert {s for s in SessionStatus if s.is_terminal} == set(SESSION_TERMINAL)
    assert {s for s in RunStatus if s.is_terminal} == set(RUN_TERMINAL)


@PROPERTY
@given(st.lists(st.sampled_from(list(SessionStatus)), max_size=30))
def test_no_sequence_of_session_transitions_leaves_a_terminal_state(
    targets: list[SessionStatus],
) -> None:
    status = SessionStatus.PENDING
    ended: SessionStatus | None = None
    for target in targets:
        allowed = target in allowed_targets(status)
        if ended is not None:
            assert not allowed
        if allowed:
            status = check_transition(status, target)
            if status.is_terminal:
                ended = status
        else:
            with pytest.raises(StateError):
                check_transition(status, target)
    if ended is not None:
        assert status is ended


@PROPERTY
@given(st.lists(st.sampled_from(list(RunStatus)), max_size=30))
def test_no_sequence_of_run_transitions_leaves_a_terminal_state(targets: list[RunStatus]) -> None:
    status = RunStatus.PENDING
    ended: RunStatus | None = None
    for target in targets:
        allowed = target in allowed_targets(status)
        if ended is not None:
            assert not allowed
        if allowed:
            status = check_transition(status, target)
            if status.is_terminal:
                ended = status
        else:
            with pytest.raises(StateError):
                check_transition(status, target)
    if ended is not None:
        assert status is ended
