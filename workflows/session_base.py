"""What every part of ``AgentSession`` shares: its state, and the few things all do with it.

The session workflow is one class (:class:`~workflows.agent_session.AgentSession`, the state
machine and its handlers) with two parts beside it: :class:`~workflows.session_runs.SessionRuns`
(submitting, admitting, starting and settling runs) and
:class:`~workflows.session_transitions.SessionTransitions` (the session's own status changes).
Each is a :class:`SessionBase` over the *same* three objects, the spec, the
:class:`SessionState` and the :class:`~workflows.session_execution.Execution`, which are set
once in ``__init__`` and never rebound (only mutated), so there is still one state object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

from agent_session_manager.workflows.lifecycle import record
from agent_session_manager.workflows.session_execution import Execution
from agent_session_manager.workflows.session_visibility import show

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.capabilities import Negotiation
    from agent_session_manager.core.contract import (
        LifecycleRecord,
        RunPatch,
        RunRef,
        RunView,
        SessionPatch,
        SessionSpec,
        SessionState,
        SessionSummary,
        SessionView,
        run_workflow_id,
    )
    from agent_session_manager.core.events import EventType, lifecycle_event_id
    from agent_session_manager.core.status import RunStatus, SessionStatus


class SessionBase:
    """The session's spec, state and execution, and what every part does with them."""

    def __init__(self, spec: SessionSpec, state: SessionState, execution: Execution) -> None:
        self._spec = spec
        self._state = state
        self._execution = execution

    def _draining(self) -> bool:
        """Time to continue-as-new: new runs wait in the (carried) queue until we have.

        After ``continue_as_new_after_runs`` runs, when Temporal suggests it, or (patch
        ``lean-runs``) when this execution's history has grown past the replay budget: what
        a worker that lost the session from its cache replays before the next run is then
        bounded by the budget, not by the session's age. At least one run per execution, so
        a large carried state can never make it continue in a loop.
        """
        execution, spec, info = self._execution, self._spec, workflow.info()
        if (
            execution.runs_started >= spec.continue_as_new_after_runs
            or info.is_continue_as_new_suggested()
        ):
            return True
        if not execution.lean or execution.runs_started == 0:
            return False
        return (
            info.get_current_history_length() - execution.base_events
            >= spec.continue_as_new_after_events
            or info.get_current_history_size() - execution.base_bytes
            >= spec.continue_as_new_after_bytes
        )

    def _view(self, cls: type[SessionView]) -> SessionView:
        s = self._state
        return cls(
            session_id=s.session_id,
            agent_id=s.agent_id,
            provider=s.provider,
            status=s.status,
            runs=list(s.runs),
            queued=[r.run_id or "" for r in s.queue],
            usage=s.usage,
            cost_micros=s.cost_micros,
            run_count=s.run_count,
            continued=s.continued,
            error=s.error,
            ready=self._execution.phase == "serving",
            outcomes=dict(s.outcomes),
        )

    def _summary(self) -> SessionSummary:
        summary = self._view(SessionSummary)
        assert isinstance(summary, SessionSummary)
        return summary

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run per-run work in the background; draining and shutdown wait for all of it."""
        task = asyncio.create_task(coro, name=name)
        watchers = self._execution.watchers
        watchers.add(task)  # a task nobody references may be garbage-collected
        task.add_done_callback(watchers.discard)

    async def _cancel_child(self, run_id: str, reason: str | None = None) -> None:
        """Ask a run to cancel; one that has just ended is not an error (its watcher settles it).

        The reason (patch ``ui-truth``) rides on the cancel request: the run reads it, records
        it in its ``run_cancelled`` event, and the request's cause shows it in the Temporal UI.
        Without the catch, a run finishing in the same moment would raise out of the main
        loop and fail the whole session.
        """
        handle = workflow.get_external_workflow_handle(run_workflow_id(run_id))
        try:
            if self._execution.ui_truth:
                await handle.cancel(reason=reason or "cancelled by its session")
            else:
                await handle.cancel()
        except FailureError as exc:
            workflow.logger.info("run %s could not be cancelled (already ended?): %s", run_id, exc)

    def _find(self, run_id: str) -> RunView | None:
        return next((r for r in reversed(self._state.runs) if r.run_id == run_id), None)

    def _ref(
        self, view: RunView, *, negotiation: Negotiation | None = None, note: str | None = None
    ) -> RunRef:
        return RunRef(
            run_id=view.run_id,
            session_id=self._state.session_id,
            workflow_id=run_workflow_id(view.run_id),
            status=view.status,
            turn=view.turn,
            negotiation=negotiation,
            note=note,
        )

    def _describe(self, note: str | None = None) -> None:
        """Current details and search attributes."""
        show(
            self._state,
            running=len(self._execution.active),
            tags=self._spec.tags,
            counted=self._execution.ui_truth,
            note=note,
        )

    def _ended(self, view: RunView, status: RunStatus) -> None:
        """``view`` ends ``status``: the one place a run's outcome is set and counted."""
        view.status = status
        outcomes = self._state.outcomes
        outcomes[status] = outcomes.get(status, 0) + 1

    async def _record(
        self,
        type: EventType,
        data: dict[str, Any],
        *,
        run_id: str | None = None,
        session_status: SessionStatus | None = None,
        run_status: RunStatus | None = None,
        session_row: SessionPatch | None = None,
        run_row: RunPatch | None = None,
    ) -> None:
        self._state.event_counter += 1
        await record(
            LifecycleRecord(
                event_id=lifecycle_event_id(
                    self._state.session_id, self._state.event_counter, type
                ),
                session_id=self._state.session_id,
                run_id=run_id,
                type=type.value,
                data=data,
                provider=self._state.provider,
                session_status=session_status,
                run_status=run_status,
                session_row=session_row,
                run_row=run_row,
            )
        )


__all__ = ["SessionBase"]
