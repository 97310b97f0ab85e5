"""``AgentRun``: one run of a session, as a child workflow.

It records ``run_started``, runs the provider activity under a retry policy derived from the
error taxonomy, enforces the run deadline, and ends in Temporal's own terms so the UI tells
the truth: completed (result :class:`RunResult`), failed (``ApplicationError`` whose type is
the taxonomy code), timed out (type ``timeout``) or cancelled. Every ending writes exactly
one terminal event through a local activity *after* the provider activity has let go, so no
streamed delta can land after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from workflows.lifecycle import record

with workflow.unsafe.imports_passed_through():
    from core.contract import (
        RUN_WORKFLOW,
        STREAM_PROVIDER_ACTIVITY,
        LifecycleRecord,
        ProviderCall,
        ProviderOutcome,
        RetrySettings,
        RunResult,
        RunSpec,
    )
    from core.errors import AsmError, error
    from core.events import EventType, lifecycle_event_id
    from core.status import RunStatus
    from core.temporal import from_failure, retry_policy, to_application_error

#: Without a deadline a run still needs *some* bound; a day is far beyond any model call.
NO_DEADLINE = timedelta(hours=24)


def provider_retry_policy(settings: RetrySettings) -> RetryPolicy:
    """The provider activity's policy: the spec's numbers, the taxonomy's non-retryable types."""
    return retry_policy(
        RetryPolicy(
            initial_interval=timedelta(seconds=settings.initial_interval_seconds),
            backoff_coefficient=settings.backoff_coefficient,
            maximum_interval=timedelta(seconds=settings.maximum_interval_seconds),
            maximum_attempts=settings.max_attempts,
        )
    )


async def _decided(ending: Coroutine[Any, Any, RunResult]) -> RunResult:
    """Finish recording an outcome that is already decided, even if a cancel arrives now.

    A cancel that lands after the provider finished must not leave a completed run without
    its ``run_completed`` event (or the session without its ``run_finished`` signal).
    """
    task = asyncio.ensure_future(ending)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            workflow.logger.info("cancel arrived after the run's outcome was decided; ignored")


@workflow.defn(name=RUN_WORKFLOW)
class AgentRun:
    """One run: provider activity, retries, deadline, cancellation, lifecycle events."""

    def __init__(self) -> None:
        self._counter = 0
        self._status = RunStatus.PENDING
        self._attempts = 0

    @workflow.query(name="status")
    def status(self) -> RunStatus:
        """The run's current status."""
        return self._status

    @workflow.run
    async def run(self, spec: RunSpec) -> RunResult:
        """Execute the run to a terminal status."""
        model = spec.model or "default"
        workflow.set_current_details(f"running · {spec.provider} · {model} · turn {spec.turn}")
        await self._record(
            spec,
            EventType.RUN_STARTED,
            RunStatus.RUNNING,
            {
                "provider": spec.provider,
                "model": spec.model,
                "turn": spec.turn,
                "negotiation": spec.negotiation.model_dump() if spec.negotiation else None,
                "input": [m.model_dump() for m in spec.messages],
            },
            run_row={
                "session_id": spec.session_id,
                "turn": spec.turn,
                "input_text": spec.messages[-1].text() if spec.messages else "",
                "input_messages": [m.model_dump() for m in spec.messages],
                "provider": spec.provider,
                "model": spec.model,
                "started_at": workflow.now().isoformat(),
            },
        )
        deadline = timedelta(seconds=spec.timeout_seconds) if spec.timeout_seconds else NO_DEADLINE
        activity = workflow.start_activity(
            STREAM_PROVIDER_ACTIVITY,
            ProviderCall(spec=spec),
            result_type=ProviderOutcome,
            schedule_to_close_timeout=deadline + timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=spec.heartbeat_timeout_seconds),
            retry_policy=provider_retry_policy(spec.retry),
            # Wait for the activity to acknowledge cancellation: its final flush must land
            # before we write the terminal event.
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"{spec.provider} · {model} · turn {spec.turn}",
        )
        try:
            done, _ = await workflow.wait([activity], timeout=deadline.total_seconds())
            if not done:
                # Deadline: stop the provider, wait for it to let go, then say so.
                activity.cancel()
                await asyncio.gather(activity, return_exceptions=True)
                timeout = error(
                    "timeout",
                    f"run exceeded its deadline of {deadline.total_seconds():g}s",
                    details={"timeout_seconds": deadline.total_seconds()},
                )
                return await _decided(self._end(spec, RunStatus.TIMEOUT, timeout))
            outcome = activity.result()
        except asyncio.CancelledError:
            # Cancellation of this workflow (by the session or `temporal workflow cancel`).
            activity.cancel()
            results = await asyncio.gather(activity, return_exceptions=True)
            if isinstance(results[0], ProviderOutcome):  # it finished as the cancel arrived
                return await _decided(self._complete(spec, results[0]))
            await self._end(spec, RunStatus.CANCELLED, error("cancelled", "run cancelled"))
            raise
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                await self._end(spec, RunStatus.CANCELLED, error("cancelled", "run cancelled"))
                raise asyncio.CancelledError() from exc
            return await _decided(self._end(spec, RunStatus.FAILED, from_failure(exc)))
        return await _decided(self._complete(spec, outcome))

    async def _complete(self, spec: RunSpec, outcome: ProviderOutcome) -> RunResult:
        """Record a completed run and tell the session."""
        self._attempts = outcome.attempt
        result = RunResult(
            run_id=spec.run_id,
            session_id=spec.session_id,
            status=RunStatus.COMPLETED,
            output=outcome.output,
            output_truncated=outcome.output_truncated,
            stop_reason=outcome.stop_reason,
            usage=outcome.usage,
            attempts=outcome.attempt,
        )
        await self._record(
            spec,
            EventType.RUN_COMPLETED,
            RunStatus.COMPLETED,
            {
                "stop_reason": outcome.stop_reason,
                "usage": outcome.usage.model_dump(),
                "attempts": outcome.attempt,
            },
            run_row=self._row(result),
        )
        workflow.set_current_details(
            f"completed · {outcome.usage.total_tokens} tokens · {outcome.attempt} attempt(s)"
        )
        await self._tell_parent(result)
        return result

    async def _end(self, spec: RunSpec, status: RunStatus, err: AsmError) -> RunResult:
        """Write the terminal event, then end the workflow as failed/timed out (by raising)."""
        attempts = err.details.get("attempt")
        result = RunResult(
            run_id=spec.run_id,
            session_id=spec.session_id,
            status=status,
            error=err.to_dict(),
            attempts=attempts if isinstance(attempts, int) else 0,
        )
        event = {
            RunStatus.FAILED: EventType.RUN_FAILED,
            RunStatus.TIMEOUT: EventType.RUN_TIMEOUT,
            RunStatus.CANCELLED: EventType.RUN_CANCELLED,
        }[status]
        await self._record(spec, event, status, {"error": err.to_dict()}, run_row=self._row(result))
        workflow.set_current_details(f"{status.value} · {err.code}: {err.message}")
        await self._tell_parent(result)
        if status is RunStatus.CANCELLED:
            return result  # the caller re-raises the cancellation
        # The run is over: whatever the code, retrying the *workflow* would not help.
        err.retryable = False
        err.details = {**err.details, "run": result.model_dump(mode="json")}
        raise to_application_error(err)

    async def _tell_parent(self, result: RunResult) -> None:
        """Let the session free the run's slot before this workflow's end is visible."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                "run_finished", result
            )
        except ApplicationError as exc:  # parent gone: it accounts from our end instead
            workflow.logger.warning(
                "could not tell the session run %s ended: %s", result.run_id, exc
            )

    def _row(self, result: RunResult) -> dict[str, Any]:
        return {
            "output": result.output,
            "stop_reason": result.stop_reason,
            "usage": result.usage.model_dump(),
            "error": result.error,
            "attempts": result.attempts,
            "ended_at": workflow.now().isoformat(),
        }

    async def _record(
        self,
        spec: RunSpec,
        type: EventType,
        status: RunStatus,
        data: dict[str, Any],
        *,
        run_row: dict[str, Any] | None = None,
    ) -> None:
        self._counter += 1
        self._status = status
        await record(
            LifecycleRecord(
                event_id=lifecycle_event_id(spec.run_id, self._counter, type),
                session_id=spec.session_id,
                run_id=spec.run_id,
                type=type.value,
                data=data,
                provider=spec.provider,
                run_status=status,
                run_row=run_row,
            )
        )


__all__ = ["AgentRun", "provider_retry_policy"]
