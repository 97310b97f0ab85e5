"""The EventNormalizer: aliases, status refinement, strictness and the drafts it builds."""

from __future__ import annotations

from typing import Any

import pytest

from agent_session_manager.core.errors import StateError, ValidationError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.normalize import DEFAULT_ALIASES, EventNormalizer, normalize_name

N = EventNormalizer()


def _normalize(raw: dict[str, Any], **kw: Any) -> Any:
    kw.setdefault("run_id", "run_1")
    return N.normalize(raw, event_id="e1", session_id="ses_1", **kw)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("delta", "message_streamed"),
        ("content_block_delta", "message_streamed"),
        ("tool_use", "tool_call_started"),
        ("function_call", "tool_call_started"),
        ("function_call_output", "tool_call_completed"),
        ("run_end", "run_completed"),
        ("done", "run_completed"),
        ("usage", "token_usage_updated"),
        ("error", "error_occurred"),
        ("permission_request", "tool_approval_requested"),
        ("turn.completed", "turn_completed"),
    ],
)
def test_provider_alias_maps_to_its_canonical_type(name: str, expected: str) -> None:
    assert N.resolve(name) is EventType(expected)


@pytest.mark.parametrize("event_type", list(EventType))
def test_canonical_names_map_to_themselves(event_type: EventType) -> None:
    assert N.resolve(event_type.value) is event_type


def test_every_default_alias_targets_a_canonical_type() -> None:
    assert all(isinstance(t, EventType) for t in DEFAULT_ALIASES.values())


def test_names_match_regardless_of_case_and_separators() -> None:
    assert N.resolve("Content-Block.Delta") is EventType.MESSAGE_STREAMED
    assert N.resolve("  TOOL USE ") is EventType.TOOL_CALL_STARTED
    assert normalize_name("Response.Output_Text-Delta") == "response_output_text_delta"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("completed", "run_completed"),
        ("failed", "run_failed"),
        ("cancelled", "run_cancelled"),
        ("timeout", "run_timeout"),
        ("canceled", "run_cancelled"),
        ("error", "run_failed"),
        ("timed_out", "run_timeout"),
        ("success", "run_completed"),
    ],
)
def test_run_end_is_refined_by_its_status(status: str, expected: str) -> None:
    assert N.resolve("run_end", status=status) is EventType(expected)


def test_run_end_without_status_is_run_completed() -> None:
    assert N.resolve("done") is EventType.RUN_COMPLETED


def test_an_explicit_run_ending_is_not_refined_by_status() -> None:
    assert N.resolve("run_cancelled", status="failed") is EventType.RUN_CANCELLED


def test_status_does_not_change_non_ending_events() -> None:
    assert N.resolve("delta", status="weird") is EventType.MESSAGE_STREAMED


@pytest.mark.parametrize("status", ["running", "pending"])
def test_run_end_with_a_non_terminal_status_is_invalid_status(status: str) -> None:
    with pytest.raises(StateError) as caught:
        N.resolve("run_end", status=status)
    assert caught.value.code == "invalid_status"


def test_run_end_with_an_unknown_status_is_invalid_status() -> None:
    with pytest.raises(StateError) as caught:
        N.resolve("run_end", status="exploded")
    assert caught.value.code == "invalid_status"


def test_unknown_raw_name_is_invalid_event_type() -> None:
    with pytest.raises(StateError) as caught:
        N.resolve("content_block_wobble")
    assert caught.value.code == "invalid_event_type"
    assert caught.value.details == {"type": "content_block_wobble"}


@pytest.mark.parametrize("raw", [{}, {"type": ""}, {"type": 3}])
def test_raw_event_without_a_type_is_invalid_event_type(raw: dict[str, Any]) -> None:
    with pytest.raises(StateError) as caught:
        _normalize(raw)
    assert caught.value.code == "invalid_event_type"


def test_normalize_builds_a_draft_with_the_given_envelope() -> None:
    draft = N.normalize(
        {"type": "delta", "text": "hi"},
        event_id="e9",
        session_id="ses_1",
        run_id="run_1",
        attempt=2,
        provider="anthropic",
    )
    assert (draft.id, draft.session_id, draft.run_id, draft.attempt, draft.provider) == (
        "e9",
        "ses_1",
        "run_1",
        2,
        "anthropic",
    )
    assert draft.type is EventType.MESSAGE_STREAMED


def test_normalize_keeps_payload_and_the_original_alias() -> None:
    draft = _normalize({"type": "content_block_delta", "index": 0, "delta": {"text": "h"}})
    assert draft.data == {"index": 0, "delta": {"text": "h"}, "raw_type": "content_block_delta"}


def test_normalize_uses_a_data_dict_as_payload_and_adds_the_other_keys() -> None:
    draft = _normalize({"type": "usage", "data": {"input_tokens": 3}, "model": "m"})
    assert draft.data == {"input_tokens": 3, "model": "m", "raw_type": "usage"}


def test_canonical_name_adds_no_raw_type() -> None:
    assert "raw_type" not in _normalize({"type": "message_streamed", "text": "x"}).data


def test_envelope_keys_never_enter_data() -> None:
    raw = {"type": "delta", "id": "x", "seq": 4, "session_id": "ses_1", "run_id": "run_1"}
    assert set(_normalize(raw).data) == {"raw_type"}


def test_the_event_key_names_the_type_when_type_is_absent() -> None:
    assert _normalize({"event": "tool_use"}).type is EventType.TOOL_CALL_STARTED


def test_refined_run_end_stores_the_canonical_status() -> None:
    draft = _normalize({"type": "run_end", "status": "canceled"})
    assert draft.type is EventType.RUN_CANCELLED
    assert draft.data["status"] == "cancelled"


def test_raw_event_of_another_session_is_session_mismatch() -> None:
    with pytest.raises(StateError) as caught:
        _normalize({"type": "delta", "session_id": "ses_2"})
    assert caught.value.code == "session_mismatch"


def test_raw_event_of_another_run_is_run_mismatch() -> None:
    with pytest.raises(StateError) as caught:
        _normalize({"type": "delta", "run_id": "run_2"})
    assert caught.value.code == "run_mismatch"


def test_run_id_is_taken_from_the_raw_event_when_not_given() -> None:
    assert _normalize({"type": "delta", "run_id": "run_7"}, run_id=None).run_id == "run_7"


def test_run_scoped_event_without_any_run_id_is_missing_required_field() -> None:
    with pytest.raises(ValidationError):
        _normalize({"type": "delta"}, run_id=None)


def test_custom_aliases_extend_the_defaults() -> None:
    custom = EventNormalizer({"Wobble": "message_received", "ping": EventType.ERROR_RECOVERED})
    assert custom.resolve("wobble") is EventType.MESSAGE_RECEIVED
    assert custom.resolve("ping") is EventType.ERROR_RECOVERED
    assert custom.resolve("delta") is EventType.MESSAGE_STREAMED


def test_custom_alias_to_an_unknown_type_is_invalid_event_type() -> None:
    with pytest.raises(StateError):
        EventNormalizer({"wobble": "not_a_type"})


def test_a_canonical_name_cannot_be_aliased_to_another_type() -> None:
    with pytest.raises(ValueError, match="canonical"):
        EventNormalizer({"run_started": "run_failed"})


def test_the_alias_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        N.aliases["delta"] = EventType.RUN_FAILED  # type: ignore[index]
