"""Lifecycle row patches: typed, only set fields apply, and the wire shape of plain dicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_session_manager.core.contract import (
    LifecycleRecord,
    Message,
    MockScript,
    RunPatch,
    RunRequest,
    RunSpec,
    SessionPatch,
    SessionSpec,
)
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.core.usage import TokenUsage


def _through_temporal(rec: LifecycleRecord) -> tuple[LifecycleRecord, dict[str, object]]:
    payloads = data_converter.payload_converter.to_payloads([rec])
    (back,) = data_converter.payload_converter.from_payloads(payloads, [LifecycleRecord])
    assert isinstance(back, LifecycleRecord)
    return back, json.loads(payloads[0].data)


def test_a_patch_carries_only_the_fields_it_sets_through_temporal() -> None:
    rec = LifecycleRecord(
        event_id="e",
        session_id="s",
        type="turn_completed",
        session_row=SessionPatch(usage=TokenUsage(input_tokens=3), run_count=2, model=None),
    )
    back, wire = _through_temporal(rec)
    assert back == rec
    assert back.session_row is not None
    assert back.session_row.model_fields_set == {"usage", "run_count", "model"}
    row = wire["session_row"]
    assert isinstance(row, dict) and sorted(row) == ["model", "run_count", "usage"]
    assert wire["run_row"] is None


def test_a_dict_payload_of_the_old_wire_shape_validates_into_the_patches() -> None:
    # What core/lifecycle.py and the session workflow sent when the patches were dicts.
    rec = LifecycleRecord.model_validate(
        {
            "event_id": "e",
            "session_id": "s",
            "run_id": "r",
            "type": "run_started",
            "run_status": "running",
            "run_row": {
                "session_id": "s",
                "turn": 1,
                "input_text": "hi",
                "input_messages": [{"role": "user", "content": "hi"}],
                "provider": "mock",
                "model": None,
                "started_at": "2026-01-02T03:04:05+00:00",
            },
            "session_row": {"usage": {"input_tokens": 1}, "run_count": 1},
        }
    )
    assert rec.run_row is not None and rec.session_row is not None
    assert rec.run_row.input_messages == [Message(role="user", content="hi")]
    assert rec.run_row.started_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rec.run_row.model_fields_set == {
        "session_id",
        "turn",
        "input_text",
        "input_messages",
        "provider",
        "model",
        "started_at",
    }
    assert rec.session_row.usage == TokenUsage(input_tokens=1)


def test_a_naive_run_timestamp_is_utc() -> None:
    patch = RunPatch(ended_at=datetime(2026, 1, 2, 3, 4, 5))
    assert patch.ended_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_an_unknown_patch_field_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="agnet_id"):
        SessionPatch.model_validate({"agnet_id": "a"})
    with pytest.raises(pydantic.ValidationError, match="input"):
        RunPatch.model_validate({"input": "hello"})


# --- the limits inputs meet -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"session_id": "s" * 256}, "varchar(255)"),
        ({"session_id": "a/b"}, "letters, digits"),
        ({"agent_id": "a" * 256}, "varchar(255)"),
        ({"agent_id": "\U0001f600" * 200}, "search attribute"),
        ({"model": "m" * 256}, "varchar(255)"),
        ({"tags": ["t"] * 33}, "at most 32 tags"),
        ({"tags": ["t" * 65]}, "64 characters"),
        ({"tags": ["\U0001f600" * 16] * 12}, "AsmTags"),
        ({"idle_timeout_seconds": 1e12}, "a year"),
        ({"idle_timeout_seconds": 2**63}, "a year"),
        ({"run_timeout_seconds": float("inf")}, "finite"),
        ({"heartbeat_timeout_seconds": float("nan")}, "finite"),
        ({"heartbeat_timeout_seconds": 0}, "> 0"),
        ({"system_prompt": "x" * 300_000}, "2 MB"),
    ],
)
def test_a_session_spec_is_bounded_by_the_limit_each_field_meets(
    fields: dict[str, object], says: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        SessionSpec.model_validate({"agent_id": "a", **fields})
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"run_id": "r" * 256},
        {"run_id": "r 1"},
        {"timeout_seconds": 1e12},
        {"timeout_seconds": float("inf")},
        {"model": "m" * 256},
        {"prompt": "x" * 300_000},
    ],
)
def test_a_run_request_is_bounded_too(fields: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RunRequest.model_validate({"prompt": "hi", **fields})


def test_values_at_the_limits_are_accepted() -> None:
    spec = SessionSpec(
        agent_id="a" * 255,
        session_id="s" * 255,
        tags=["t" * 64] * 20,
        idle_timeout_seconds=365 * 24 * 3600,
    )
    assert len(spec.session_id or "") == 255
    assert RunRequest(prompt="x" * 200_000, run_id="run_a.b:c-d_e").run_id


@given(turn=st.integers(min_value=2**31, max_value=2**70))
def test_a_run_spec_turn_beyond_the_sql_column_is_invalid(turn: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        RunSpec.model_validate(
            {
                "run_id": "r",
                "session_id": "s",
                "agent_id": "a",
                "provider": "mock",
                "turn": turn,
                "messages": [{"role": "user", "content": "hi"}],
            }
        )


@given(tokens=st.integers(min_value=2**40 + 1, max_value=2**80))
def test_a_mock_reporting_more_than_a_trillion_tokens_is_invalid(tokens: int) -> None:
    with pytest.raises(pydantic.ValidationError):
        MockScript.model_validate({"usage": {"output_tokens": tokens}})
    assert MockScript.model_validate({"usage": {"output_tokens": 2**40}}).usage is not None
