"""How a run ends: THE protocol, its lifecycle records, and the result each ending yields.

One run, from ``submit_run`` to the session settling it (drawn in ``docs/architecture.md``)::

    session ── start child ──▶ AgentRun ── activity ──▶ stream_provider
                                                         │ records run_started (1)
                                                         │ success: records run_completed (2)
    session ◀──────────── run_finished(RunResult) ───────┘ with the assistant message
    session ◀── run_finished(RunResult) ── AgentRun: failed / timeout / cancelled, recorded
                                           (2) through ``record_lifecycle``, then signalled
    session ◀── the child's completion ── the fallback, for a run whose signal never came

Writers: the provider activity writes ``run_started`` and, on success, ``run_completed`` (in
the transactions it makes anyway: no local-activity round trip on the hot path); the
``AgentRun`` workflow writes the failed, timed-out and cancelled endings, after the activity
has let go, so no streamed delta lands after the terminal event. Ids are fixed per run
(started is 1, the ending is 2), so whichever writer repeats a record, it lands once.

Settling: whichever of ``run_finished`` and the child's completion reaches the session first
settles the run (its slot, its usage, its ``turn_completed``); the other is a no-op. The
signal exists for latency: it frees the slot *before* the run's end is visible to a client,
so a client that saw run N end and submits run N+1 at once never finds the slot busy. The
completion covers a run whose signal never came (a retried attempt found the run already
completed by an earlier one, the signal could not be delivered, the run was terminated) and
carries the same result: :func:`run_result_from_error` turns a failed child back into the
:class:`RunResult` it reported, for the session and the client alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from agent_session_manager.core.contract import (
    LifecycleRecord,
    ProviderOutcome,
    RunPatch,
    RunResult,
    RunSpec,
)
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


def run_started(spec: RunSpec, *, now: str, prompt: str | None = None) -> LifecycleRecord:
    """``run_started`` with the negotiated capabilities and the run's input; status running.

    A prompt stored by reference appears in the event as its reference (``input_ref``), so
    readers of the event log never receive megabytes in one event; ``prompt`` (its text, read
    by the caller) goes to the run's read model, where a reader of the run finds its input.
    """
    data: dict[str, Any] = {
        "provider": spec.provider,
        "model": spec.model,
        "turn": spec.turn,
        "negotiation": spec.negotiation.model_dump() if spec.negotiation else None,
        "input": [m.model_dump() for m in spec.messages],
    }
    if spec.prompt_ref is not None:
        data["input_ref"] = spec.prompt_ref.model_dump()
    if prompt is None:
        prompt = spec.messages[-1].text() if spec.messages else ""
    return LifecycleRecord(
        event_id=lifecycle_event_id(spec.run_id, 1, EventType.RUN_STARTED),
        session_id=spec.session_id,
        run_id=spec.run_id,
        type=EventType.RUN_STARTED.value,
        data=data,
        provider=spec.provider,
        run_status=RunStatus.RUNNING,
        run_row=RunPatch(
            session_id=spec.session_id,
            turn=spec.turn,
            input_text=prompt,
            input_messages=spec.messages,
            provider=spec.provider,
            model=spec.model,
            started_at=datetime.fromisoformat(now),
        ),
    )


def completed_result(spec: RunSpec, outcome: ProviderOutcome) -> RunResult:
    """The result of a run whose provider activity succeeded."""
    return RunResult(
        run_id=spec.run_id,
        session_id=spec.session_id,
        status=RunStatus.COMPLETED,
        output=outcome.output,
        output_ref=outcome.output_ref,
        output_truncated=outcome.output_truncated,
        stop_reason=outcome.stop_reason,
        usage=outcome.usage,
        attempts=outcome.attempt,
        cost_micros=outcome.cost_micros,
        billed_usage=outcome.billed_usage,
    )


def ended_result(spec: RunSpec, status: RunStatus, err: AsmError) -> RunResult:
    """The result of a run that ended ``status`` (failed, timeout, cancelled) because of ``err``.

    The run decides its own ending (it knows a deadline from a failure), so the status is
    given; the attempts come from the provider activity's error.
    """
    attempts = err.details.get("attempt")
    cost = err.details.get("cost_micros")
    billed = err.details.get("billed_usage")
    try:
        billed_usage = TokenUsage.model_validate(billed) if billed is not None else None
    except PydanticValidationError:  # not a detail this code wrote
        billed_usage = None
    return RunResult(
        run_id=spec.run_id,
        session_id=spec.session_id,
        status=status,
        error=err.to_dict(),
        attempts=attempts if isinstance(attempts, int) else 0,
        # The provider activity's word on what the run's attempts cost (the ledger's sum).
        cost_micros=cost if type(cost) is int and cost >= 0 else 0,
        billed_usage=billed_usage,
    )


def run_result_from_error(
    err: AsmError, *, run_id: str, session_id: str, usage: TokenUsage | None = None
) -> RunResult:
    """The result of a run whose workflow failed with ``err``, as the session or a client sees it.

    ``AgentRun`` attaches its own :class:`RunResult` to the error it ends with
    (``details["run"]``): that one wins, it is the run's word. Without it (the run was
    terminated, or never got to say), the run is ``cancelled`` if ``err`` says so and
    ``failed`` otherwise, with ``usage`` as far as the caller knows it.
    """
    run = err.details.get("run")
    if isinstance(run, dict):
        try:
            return RunResult.model_validate(run)
        except PydanticValidationError:
            pass  # not a result this code wrote: judge by the error alone
    return RunResult(
        run_id=run_id,
        session_id=session_id,
        status=RunStatus.CANCELLED if err.code == "cancelled" else RunStatus.FAILED,
        usage=usage or TokenUsage(),
        error=err.to_dict(),
    )


def run_ended(
    spec: RunSpec, result: RunResult, *, now: str, output: str | None = None
) -> LifecycleRecord:
    """The terminal event for ``result.status`` and the run's final read-model row.

    ``output`` is the reply's full text when ``result`` carries it by reference: the run's
    read model holds the text, the event only the reference.
    """
    event = ENDING_EVENTS[result.status]
    data: dict[str, Any] = {"attempts": result.attempts}
    if result.cost_micros or result.billed_usage is not None:
        data["cost_micros"] = result.cost_micros
    if result.status is RunStatus.COMPLETED:
        data |= {"stop_reason": result.stop_reason, "usage": result.usage.model_dump()}
        if result.output_ref is not None:
            data["output_ref"] = result.output_ref.model_dump()
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
        run_row=RunPatch(
            output=result.output if output is None else output,
            stop_reason=result.stop_reason,
            usage=result.usage,
            error=result.error,
            attempts=result.attempts,
            ended_at=datetime.fromisoformat(now),
        ),
    )
