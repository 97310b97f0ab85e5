"""Event types, categories, the envelope's validation, ids and canonical ordering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.errors import StateError, ValidationError
from agent_session_manager.core.events import (
    EVENT_CATEGORIES,
    RUN_SCOPED_CATEGORIES,
    RUN_TERMINAL_EVENTS,
    Event,
    EventDraft,
    EventType,
    activity_event_id,
    category_of,
    lifecycle_event_id,
    parse_event_type,
)
from agent_session_manager.core.status import RunStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)

DESIGN_TYPES = """
session_created session_started session_paused session_resumed session_completed
session_failed session_cancelled run_queued run_started run_completed run_failed run_cancelled
run_timeout message_sent message_received message_streamed tool_call_started
tool_call_completed tool_call_failed error_occurred error_recovered token_usage_updated
turn_completed tool_approval_requested tool_approval_granted tool_approval_denied
""".split()

RUN_SCOPED = [t for t in EventType if category_of(t) in RUN_SCOPED_CATEGORIES]
UNSCOPED = [t for t in EventType if category_of(t) not in RUN_SCOPED_CATEGORIES]


def _event(seq: int, *, at: datetime = T0, id: str | None = None) -> Event:
    return Event(
        id=id or f"e{seq}",
        session_id="ses_1",
        run_id="run_1",
        type=EventType.MESSAGE_STREAMED,
        seq=seq,
        created_at=at,
    )


def test_the_26_event_types_are_the_design_s_and_run_queued() -> None:
    # The design's 25, and run_queued (issue 16: a run waiting for a fleet-wide slot).
    assert [t.value for t in EventType] == DESIGN_TYPES


def test_every_event_type_has_one_of_the_seven_categories() -> None:
    assert set(EVENT_CATEGORIES) == set(EventType)
    assert set(EVENT_CATEGORIES.values()) == {
        "session",
        "run",
        "message",
        "tool",
        "error",
        "usage",
        "approval",
    }


@pytest.mark.parametrize(
    ("event_type", "category"),
    [
        ("session_paused", "session"),
        ("run_timeout", "run"),
        ("turn_completed", "run"),
        ("message_streamed", "message"),
        ("tool_call_failed", "tool"),
        ("error_recovered", "error"),
        ("token_usage_updated", "usage"),
        ("tool_approval_denied", "approval"),
    ],
)
def test_event_type_belongs_to_its_category(event_type: str, category: str) -> None:
    assert category_of(EventType(event_type)) == category


def test_run_message_tool_and_usage_events_are_run_scoped() -> None:
    assert {"run", "message", "tool", "usage"} <= RUN_SCOPED_CATEGORIES
    assert not {"session", "error"} & RUN_SCOPED_CATEGORIES


@pytest.mark.parametrize("event_type", RUN_SCOPED)
def test_run_scoped_event_without_run_id_is_missing_required_field(event_type: EventType) -> None:
    with pytest.raises(ValidationError) as caught:
        EventDraft(id="e", session_id="ses_1", type=event_type)
    assert caught.value.code == "missing_required_field"
    assert caught.value.details["field"] == "run_id"


@pytest.mark.parametrize("event_type", UNSCOPED)
def test_session_and_error_events_need_no_run_id(event_type: EventType) -> None:
    assert EventDraft(id="e", session_id="ses_1", type=event_type).run_id is None


def test_an_empty_run_id_counts_as_missing() -> None:
    with pytest.raises(ValidationError):
        EventDraft(id="e", session_id="ses_1", run_id="", type=EventType.RUN_STARTED)


@pytest.mark.parametrize("session_id", [None, "", "   "])
def test_event_without_session_id_is_missing_required_field(session_id: str | None) -> None:
    raw = {"id": "e", "type": "session_created"}
    if session_id is not None:
        raw["session_id"] = session_id
    with pytest.raises(ValidationError) as caught:
        EventDraft.model_validate(raw)
    assert caught.value.code == "missing_required_field"
    assert caught.value.details == {"field": "session_id"}


def test_unknown_event_type_is_invalid_event_type() -> None:
    with pytest.raises(StateError) as caught:
        EventDraft.model_validate({"id": "e", "session_id": "s", "type": "run_exploded"})
    assert caught.value.code == "invalid_event_type"
    with pytest.raises(StateError):
        parse_event_type("run_exploded")


def test_event_type_given_as_a_string_is_parsed() -> None:
    draft = EventDraft.model_validate({"id": "e", "session_id": "s", "type": "error_occurred"})
    assert draft.type is EventType.ERROR_OCCURRED


def test_attempt_must_not_be_negative() -> None:
    with pytest.raises(PydanticValidationError):
        EventDraft(id="e", session_id="s", type=EventType.ERROR_OCCURRED, attempt=-1)


def test_stored_event_seq_starts_at_one() -> None:
    with pytest.raises(PydanticValidationError):
        _event(0)


def test_a_draft_is_immutable() -> None:
    draft = EventDraft(id="e", session_id="s", type=EventType.SESSION_CREATED)
    with pytest.raises(PydanticValidationError):
        draft.session_id = "other"  # type: ignore[misc]


def test_event_category_property_matches_its_type() -> None:
    assert _event(1).category == "message"


def test_stored_event_survives_a_json_round_trip() -> None:
    event = _event(3)
    assert Event.model_validate_json(event.model_dump_json()) == event


def test_lifecycle_event_id_is_deterministic_and_distinct_per_counter() -> None:
    a = lifecycle_event_id("ses_1", 1, EventType.SESSION_STARTED)
    assert a == lifecycle_event_id("ses_1", 1, EventType.SESSION_STARTED)
    assert a != lifecycle_event_id("ses_1", 2, EventType.SESSION_STARTED)


def test_activity_event_id_differs_per_attempt_so_a_retry_never_collides() -> None:
    assert activity_event_id("run_1", 1, 1) != activity_event_id("run_1", 2, 1)
    assert activity_event_id("run_1", 1, 1) == activity_event_id("run_1", 1, 1)


def test_run_terminal_events_cover_every_terminal_run_status() -> None:
    assert set(RUN_TERMINAL_EVENTS) == {s.value for s in RunStatus if s.is_terminal}
    assert all(category_of(t) == "run" for t in RUN_TERMINAL_EVENTS.values())
