"""Session and Run: ids, required fields, transitions with timestamps, usage, strictness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.errors import ConcurrencyError, StateError, ValidationError, error
from agent_session_manager.core.models import (
    Run,
    Session,
    SessionContext,
    new_run_id,
    new_session_id,
)
from agent_session_manager.core.status import RunStatus, SessionStatus, allowed_targets
from agent_session_manager.core.usage import TokenUsage

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PROPERTY = settings(database=None, deadline=None, max_examples=200)


def t(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session(**kw: object) -> Session:
    return Session.new(agent_id="agent", now=T0, id_source="abc", **kw)  # type: ignore[arg-type]


def run() -> Run:
    return Run.new(session_id="ses_abc", now=T0, id_source="r1", input={"prompt": "hi"})


# --- ids --------------------------------------------------------------------------------


def test_session_id_is_ses_plus_the_uuid_hex() -> None:
    assert new_session_id(UUID(int=255)) == "ses_" + "0" * 30 + "ff"


def test_run_id_is_run_plus_the_given_suffix() -> None:
    assert new_run_id("turn-1_a") == "run_turn-1_a"


@pytest.mark.parametrize("suffix", ["", "a b", "x/y", "ü"])
def test_an_id_suffix_outside_letters_digits_dash_underscore_is_invalid_format(
    suffix: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        new_session_id(suffix)
    assert caught.value.code == "invalid_format"


def test_session_id_without_its_prefix_is_invalid_format() -> None:
    with pytest.raises(ValidationError) as caught:
        Session(id="run_1", agent_id="a", created_at=T0, updated_at=T0)
    assert caught.value.code == "invalid_format"


def test_run_id_and_its_session_id_must_carry_their_prefixes() -> None:
    with pytest.raises(ValidationError):
        Run(id="ses_1", session_id="ses_1", created_at=T0, updated_at=T0)
    with pytest.raises(ValidationError):
        Run(id="run_1", session_id="1", created_at=T0, updated_at=T0)


def test_same_inputs_build_the_same_session() -> None:
    assert session() == session()


# --- session ----------------------------------------------------------------------------


@pytest.mark.parametrize("agent_id", ["", "   "])
def test_session_agent_id_is_required_and_not_blank(agent_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Session.new(agent_id=agent_id, now=T0, id_source="a")
    assert caught.value.code == "missing_required_field"


def test_new_session_is_pending_with_creation_timestamps() -> None:
    s = session()
    assert (s.status, s.created_at, s.updated_at, s.started_at, s.ended_at) == (
        SessionStatus.PENDING,
        T0,
        T0,
        None,
        None,
    )


def test_session_context_holds_the_system_prompt() -> None:
    assert session(system_prompt="be brief").context == SessionContext(system_prompt="be brief")


def test_system_prompt_and_context_together_is_a_programmer_error() -> None:
    with pytest.raises(TypeError):
        session(system_prompt="x", context=SessionContext())


def test_session_tags_are_deduplicated_in_order() -> None:
    assert session(tags=["b", "a", "b"]).tags == ("b", "a")


def test_a_blank_tag_is_invalid_input() -> None:
    with pytest.raises(ValidationError) as caught:
        session(tags=["ok", " "])
    assert caught.value.code == "invalid_input"


def test_activation_sets_started_at_and_updated_at() -> None:
    s = session().activate(now=t(1))
    assert (s.status, s.started_at, s.updated_at) == (SessionStatus.ACTIVE, t(1), t(1))


def test_pause_and_resume_keep_the_first_start_time() -> None:
    s = session().activate(now=t(1)).pause(now=t(2)).resume(now=t(3))
    assert (s.status, s.started_at, s.updated_at) == (SessionStatus.ACTIVE, t(1), t(3))


def test_completing_a_session_sets_ended_at() -> None:
    s = session().activate(now=t(1)).complete(now=t(5))
    assert (s.status, s.ended_at) == (SessionStatus.COMPLETED, t(5))


def test_failing_a_session_records_the_error() -> None:
    s = session().activate(now=t(1)).fail(now=t(2), error=error("provider_error", "x"))
    assert s.status is SessionStatus.FAILED
    assert s.error is not None and s.error["code"] == "provider_error"


def test_a_pending_session_can_be_cancelled_without_ever_starting() -> None:
    s = session().cancel(now=t(1))
    assert (s.status, s.started_at, s.ended_at) == (SessionStatus.CANCELLED, None, t(1))


def test_a_pending_session_cannot_be_paused() -> None:
    with pytest.raises(StateError) as caught:
        session().pause(now=t(1))
    assert caught.value.code == "invalid_transition"


def test_resuming_an_active_session_is_an_invalid_transition() -> None:
    with pytest.raises(StateError):
        session().activate(now=t(1)).resume(now=t(2))


def test_a_completed_session_rejects_every_change_of_status() -> None:
    done = session().activate(now=t(1)).complete(now=t(2))
    for target in SessionStatus:
        with pytest.raises(StateError):
            done.transition(target, now=t(3))


def test_a_transition_never_mutates_the_original_session() -> None:
    s = session()
    s.activate(now=t(1))
    assert s.status is SessionStatus.PENDING


def test_session_usage_accumulates() -> None:
    s = session().add_usage(TokenUsage(input_tokens=3), now=t(1))
    s = s.add_usage(TokenUsage(output_tokens=4, cache_read_input_tokens=1), now=t(2))
    assert s.token_usage.total_tokens == 8
    assert s.updated_at == t(2)


def test_usage_is_accepted_after_the_session_ended() -> None:
    s = session().cancel(now=t(1)).add_usage(TokenUsage(output_tokens=2), now=t(2))
    assert s.token_usage.output_tokens == 2


def test_a_naive_timestamp_is_invalid_input() -> None:
    with pytest.raises(ValidationError) as caught:
        session().activate(now=datetime(2025, 1, 1))
    assert caught.value.code == "invalid_input"
    with pytest.raises(ValidationError):
        Session.new(agent_id="a", now=datetime(2025, 1, 1), id_source="a")


def test_a_loaded_terminal_session_without_ended_at_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Session(id="ses_1", agent_id="a", status="completed", created_at=T0, updated_at=T0)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(PydanticValidationError):
        Session.model_validate({**session().model_dump(), "colour": "red"})


def test_session_survives_a_json_round_trip() -> None:
    s = session(tags=["x"], metadata={"k": 1}).activate(now=t(1))
    s = s.add_usage(TokenUsage(input_tokens=2), now=t(2))
    assert Session.model_validate_json(s.model_dump_json()) == s


# --- run --------------------------------------------------------------------------------


def test_new_run_is_pending_with_its_input() -> None:
    r = run()
    assert (r.status, r.input, r.turn_count, r.started_at) == (
        RunStatus.PENDING,
        {"prompt": "hi"},
        0,
        None,
    )


def test_starting_a_run_sets_started_at() -> None:
    r = run().start(now=t(1))
    assert (r.status, r.started_at, r.ended_at) == (RunStatus.RUNNING, t(1), None)


def test_completing_a_run_sets_output_and_ended_at() -> None:
    r = run().start(now=t(1)).complete(now=t(4), output={"text": "done"})
    assert (r.status, r.output, r.ended_at) == (RunStatus.COMPLETED, {"text": "done"}, t(4))


def test_a_failed_run_records_its_error_and_end() -> None:
    r = run().start(now=t(1)).fail(now=t(2), error=error("provider_unavailable"))
    assert r.status is RunStatus.FAILED
    assert r.error is not None and r.error["code"] == "provider_unavailable"
    assert r.ended_at == t(2)


def test_a_run_cancelled_before_starting_ends_without_a_start() -> None:
    r = run().cancel(now=t(1), reason="user")
    assert (r.status, r.started_at, r.ended_at) == (RunStatus.CANCELLED, None, t(1))
    assert r.error is not None and r.error["code"] == "cancelled"
    assert r.error["message"] == "user"


def test_a_timed_out_run_records_a_timeout_error() -> None:
    r = run().start(now=t(1)).time_out(now=t(9))
    assert (r.status, r.ended_at) == (RunStatus.TIMEOUT, t(9))
    assert r.error is not None and r.error["code"] == "timeout"


def test_a_pending_run_cannot_time_out_or_complete() -> None:
    with pytest.raises(StateError):
        run().time_out(now=t(1))
    with pytest.raises(StateError):
        run().complete(now=t(1))


def test_a_terminal_run_rejects_every_change_of_status() -> None:
    done = run().start(now=t(1)).complete(now=t(2))
    for target in RunStatus:
        with pytest.raises(StateError):
            done.transition(target, now=t(3))


def test_turns_count_up_while_running() -> None:
    r = run().start(now=t(1)).record_turn(now=t(2)).record_turn(now=t(3))
    assert r.turn_count == 2


def test_a_run_that_is_not_running_takes_no_turn() -> None:
    with pytest.raises(ConcurrencyError) as caught:
        run().record_turn(now=t(1))
    assert caught.value.code == "invalid_operation"


def test_run_usage_accumulates_with_a_total() -> None:
    r = run().start(now=t(1))
    r = r.add_usage(TokenUsage(input_tokens=10, cache_creation_input_tokens=5), now=t(2))
    r = r.add_usage(TokenUsage(output_tokens=7), now=t(3))
    assert r.token_usage == TokenUsage(
        input_tokens=10, output_tokens=7, cache_creation_input_tokens=5
    )
    assert r.token_usage.total_tokens == 22


def test_an_end_before_the_start_is_invalid_input() -> None:
    with pytest.raises(ValidationError) as caught:
        run().start(now=t(5)).complete(now=t(1))
    assert caught.value.code == "invalid_input"


def test_a_loaded_running_run_without_started_at_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Run(id="run_1", session_id="ses_1", status="running", created_at=T0, updated_at=T0)


def test_a_loaded_pending_run_with_started_at_is_rejected() -> None:
    with pytest.raises(ValidationError):
        Run(id="run_1", session_id="ses_1", created_at=T0, updated_at=T0, started_at=T0)


def test_negative_turn_count_is_rejected() -> None:
    with pytest.raises(PydanticValidationError):
        Run(id="run_1", session_id="ses_1", created_at=T0, updated_at=T0, turn_count=-1)


def test_run_survives_a_json_round_trip() -> None:
    r = run().start(now=t(1)).add_usage(TokenUsage(input_tokens=1), now=t(2))
    r = r.complete(now=t(3), output={"text": "x"})
    assert Run.model_validate_json(r.model_dump_json()) == r


@PROPERTY
@given(st.lists(st.sampled_from(list(RunStatus)), max_size=20))
def test_no_sequence_of_run_changes_reopens_an_ended_run(targets: list[RunStatus]) -> None:
    r = run()
    ended: Run | None = None
    for i, target in enumerate(targets, start=1):
        if target in allowed_targets(r.status):
            assert ended is None
            r = r.transition(target, now=t(i))
            assert (r.ended_at is not None) == r.status.is_terminal
            if r.status.is_terminal:
                ended = r
        else:
            with pytest.raises(StateError):
                r.transition(target, now=t(i))
    if ended is not None:
        assert r is ended
