"""How a run ends: the result a failure yields, and the records each ending writes."""

from __future__ import annotations

from agent_session_manager.core.contract import Message, RunResult, RunSpec
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.lifecycle import ended_result, run_ended, run_result_from_error
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage

#: A valid ISO timestamp: the run patch parses it.
NOW = "2026-12-02T20:00:00+00:00"
SPEC = RunSpec(
    run_id="run_1",
    session_id="ses_1",
    agent_id="agent",
    provider="mock",
    turn=1,
    messages=[Message(role="user", content="hi")],
)


def test_the_result_a_run_attached_to_its_error_wins() -> None:
    own = RunResult(
        run_id="run_1",
        session_id="ses_1",
        status=RunStatus.TIMEOUT,
        usage=TokenUsage(input_tokens=3, output_tokens=4),
        attempts=2,
        error={"code": "timeout"},
    )
    err = error("timeout", "deadline", details={"run": own.model_dump(mode="json")})
    got = run_result_from_error(
        err, run_id="run_1", session_id="ses_1", usage=TokenUsage(input_tokens=99)
    )
    assert got == own


def test_a_cancelled_error_without_a_result_is_a_cancelled_run() -> None:
    got = run_result_from_error(error("cancelled", "gone"), run_id="run_1", session_id="ses_1")
    assert got.status is RunStatus.CANCELLED
    assert got.error is not None and got.error["code"] == "cancelled"
    assert (got.run_id, got.session_id) == ("run_1", "ses_1")


def test_any_other_error_without_a_result_is_a_failed_run_with_the_callers_usage() -> None:
    usage = TokenUsage(input_tokens=5, output_tokens=6)
    got = run_result_from_error(
        error("internal_error", "terminated"), run_id="run_1", session_id="ses_1", usage=usage
    )
    assert got.status is RunStatus.FAILED
    assert got.usage == usage
    assert got.error is not None and got.error["code"] == "internal_error"


def test_a_malformed_attached_result_is_ignored_not_raised() -> None:
    # Raised inside the session workflow, a pydantic error would fail the workflow task.
    err = error("internal_error", "odd", details={"run": {"status": "exploded"}})
    got = run_result_from_error(err, run_id="run_1", session_id="ses_1")
    assert got.status is RunStatus.FAILED
    assert got.run_id == "run_1"


def test_a_run_ending_carries_the_attempts_the_provider_reported() -> None:
    err = error("provider_unavailable", "down", details={"attempt": 3})
    result = ended_result(SPEC, RunStatus.FAILED, err)
    assert (result.status, result.attempts) == (RunStatus.FAILED, 3)
    assert ended_result(SPEC, RunStatus.CANCELLED, error("cancelled")).attempts == 0


def test_the_round_trip_through_the_error_gives_back_the_runs_own_result() -> None:
    # AgentRun attaches ended_result to the error it raises; the session reads it back.
    result = ended_result(SPEC, RunStatus.TIMEOUT, error("timeout", "deadline"))
    err = error("timeout", "deadline", details={"run": result.model_dump(mode="json")})
    assert run_result_from_error(err, run_id="x", session_id="y") == result


def test_each_ending_writes_its_own_terminal_event() -> None:
    ids = set()
    for status, event in [
        (RunStatus.FAILED, EventType.RUN_FAILED),
        (RunStatus.TIMEOUT, EventType.RUN_TIMEOUT),
        (RunStatus.CANCELLED, EventType.RUN_CANCELLED),
    ]:
        record = run_ended(SPEC, ended_result(SPEC, status, error("cancelled")), now=NOW)
        assert (record.type, record.run_status) == (event.value, status)
        ids.add(record.event_id)
    assert len(ids) == 3
