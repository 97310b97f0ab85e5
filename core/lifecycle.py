"""The lifecycle records of a run: what ``run_started`` and the terminal events say.

Two writers share them: the provider activity writes ``run_started`` and, on success,
``run_completed`` itself (in the transactions it makes anyway, which keeps local-activity
round trips off the hot path); the ``AgentRun`` workflow writes the failed, timed-out and
cancelled endings. Ids are fixed per run (started is 1, the ending is 2), so whichever writer
repeats a record, it lands once.
"""

from __future__ import annotations

from typing import Any

from agent_session_manager.core.contract import LifecycleRecord, ProviderOutcome, RunResult, RunSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType, lifecycle_event_id
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage

#: Terminal event of each ending status.
ENDING_EVENTS: dict[RunStatus, EventType] = {
    RunStatus.COMPLETED: EventType.RUN_COMPLETED,
    RunStatus.FAILED: EventType.RUN_FAILED,
    RunStatus.TIMEOUT: EventType.RUN_TIMEOUT,
    RunStatus.CANCELLED: EventType.RUN_CANCELLED,
}


def run_started(spec: RunSpec, *, now: str) -> LifecycleRecord:
    """``run_started`` with the negotiated capabilities and the run's input; status running."""
    return LifecycleRecord(
        event_id=lifecycle_event_id(spec.run_id, 1, EventType.RUN_STARTED),
        session_id=spec.session_id,
        run_id=spec.run_id,
        type=EventType.RUN_STARTED.value,
        data={
            "provider": spec.provider,
            "model": spec.model,
            "turn": spec.turn,
            "negotiation": spec.negotiation.model_dump() if spec.negotiation else None,
            "input": [m.model_dump() for m in spec.messages],
        },
        provider=spec.provider,
        run_status=RunStatus.RUNNING,
        run_row={
            "session_id": spec.session_id,
            "turn": spec.turn,
            "input_text": spec.messages[-1].text() if spec.messages else "",
            "input_messages": [m.model_dump() for m in spec.messages],
            "provider": spec.provider,
            "model": spec.model,
            "started_at": now,
        },
    )


def completed_result(spec: RunSpec, outcome: ProviderOutcome) -> RunResult:
    """The result of a run whose provider activity succeeded."""
    return RunResult(
        run_id=spec.run_id,
        session_id=spec.session_id,
        status=RunStatus.COMPLETED,
        output=outcome.output,
        output_truncated=outcome.output_truncated,
        stop_reason=outcome.stop_reason,
        usage=outcome.usage,
        attempts=outcome.attempt,
    )


def run_result_from_error(
    err: AsmError, *, run_id: str, session_id: str, usage: TokenUsage | None = None
) -> RunResult:
    """The result of a run that ended with ``err``: the run's own result when the error carries
    it (``details["run"]``), else cancelled or failed with the error and ``usage``."""
    run = err.details.get("run")
    if isinstance(run, dict):
        return RunResult.model_validate(run)
    return RunResult(
        run_id=run_id,
        session_id=session_id,
        status=RunStatus.CANCELLED if err.code == "cancelled" else RunStatus.FAILED,
        usage=usage or TokenUsage(),
        error=err.to_dict(),
    )


def run_ended(spec: RunSpec, result: RunResult, *, now: str) -> LifecycleRecord:
    """The terminal event for ``result.status`` and the run's final read-model row."""
    event = ENDING_EVENTS[result.status]
    data: dict[str, Any] = {"attempts": result.attempts}
    if result.status is RunStatus.COMPLETED:
        data |= {"stop_reason": result.stop_reason, "usage": result.usage.model_dump()}
    else:
        data["error"] = result.error
    return LifecycleRecord(
        event_id=lifecycle_event_id(spec.run_id, 2, event),
        session_id=spec.session_id,
        run_id=spec.run_id,
        type=event.value,
        data=data,
        provider=spec.provider,
        run_status=result.status,
        run_row={
            "output": result.output,
            "stop_reason": result.stop_reason,
            "usage": result.usage.model_dump(),
            "error": result.error,
            "attempts": result.attempts,
            "ended_at": now,
        },
    )
