"""The session's own status changes: activate, pause, resume, complete, fail, cancel.

Validators ask :meth:`SessionTransitions.check` (and its siblings) before anything is
written; the handler checks again under the lock, since the state may have moved while its
update waited. :meth:`SessionTransitions.transition` is the one place the status changes and
its lifecycle event is recorded; :meth:`SessionTransitions.finish` ends the session, after
stopping every run through :class:`~workflows.session_runs.SessionRuns`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow

from agent_session_manager.workflows.inputs import argument, fail
from agent_session_manager.workflows.session_base import SessionBase
from agent_session_manager.workflows.session_execution import Execution
from agent_session_manager.workflows.session_runs import SessionRuns

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core.contract import (
        CancelSession,
        SessionSpec,
        SessionState,
        SessionSummary,
        SessionView,
        Transition,
    )
    from agent_session_manager.core.errors import AsmError, error
    from agent_session_manager.core.events import EventType
    from agent_session_manager.core.status import SessionStatus, check_transition


def transition_arg(args: Sequence[Any]) -> Transition:
    """The one :class:`Transition` a status update takes (rejecting the update if unusable)."""
    name = info.name if (info := workflow.current_update_info()) else "transition"
    return argument(args, Transition, name)


class SessionTransitions(SessionBase):
    """The session's status machine: validation, the transition itself, and the ending."""

    def __init__(
        self, spec: SessionSpec, state: SessionState, execution: Execution, runs: SessionRuns
    ) -> None:
        super().__init__(spec, state, execution)
        self._runs = runs

    # --- validation -------------------------------------------------------------------

    def check(self, target: SessionStatus) -> None:
        if self._execution.ending:
            fail(error("invalid_transition", "the session is already ending"))
        try:
            check_transition(self._state.status, target)
        except AsmError as err:
            fail(err)

    def check_resume(self) -> None:
        if self._state.status is not SessionStatus.PAUSED:
            fail(
                error(
                    "invalid_transition",
                    f"only a paused session can resume; this one is {self._state.status.value}",
                    details={"from": self._state.status.value, "to": "active"},
                )
            )

    def check_complete(self) -> None:
        self.check(SessionStatus.COMPLETED)
        active = self._execution.active
        if active:
            fail(
                error(
                    "invalid_operation",
                    f"{len(active)} run(s) still running "
                    f"({', '.join(sorted(active))}); wait for them (`asm run wait RUN_ID`) or "
                    "cancel them first (`asm run cancel RUN_ID`, the cancel_run update)",
                    details={"active_runs": sorted(active)},
                )
            )

    # --- transitions ------------------------------------------------------------------

    async def transition_update(self, target: SessionStatus, arg: Transition) -> SessionView:
        """``activate`` / ``pause`` / ``resume``: wait until serving, then move under the lock."""
        await workflow.wait_condition(lambda: self._execution.ready)
        async with self._execution.lock:
            self.check(target)  # re-checked: the state may have moved while we queued
            await self.transition(target, arg)
        return self._view(SessionView)

    async def resume(self, arg: Transition) -> SessionView:
        """``paused → active``; held runs proceed."""
        view = await self.transition_update(SessionStatus.ACTIVE, arg)
        async with self._execution.lock:
            await self._runs.pump()
        return view

    async def close(self, target: SessionStatus, arg: Transition) -> SessionView:
        """``complete`` / ``fail``: ask the main loop to end the session, wait until it has."""
        self._execution.closing = (target, arg)
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._view(SessionView)

    def cancel(self, arg: CancelSession) -> None:
        """Cancel the session and all its runs (the main loop sees it and ends the session)."""
        if self._execution.cancel is None and not self._state.status.is_terminal:
            self._execution.cancel = arg

    async def transition(self, target: SessionStatus, arg: Transition) -> None:
        check_transition(self._state.status, target)
        event = {
            SessionStatus.ACTIVE: (
                EventType.SESSION_RESUMED
                if self._state.status is SessionStatus.PAUSED
                else EventType.SESSION_STARTED
            ),
            SessionStatus.PAUSED: EventType.SESSION_PAUSED,
            SessionStatus.COMPLETED: EventType.SESSION_COMPLETED,
            SessionStatus.FAILED: EventType.SESSION_FAILED,
            SessionStatus.CANCELLED: EventType.SESSION_CANCELLED,
        }[target]
        data: dict[str, Any] = {"from": self._state.status.value, "reason": arg.reason}
        update = workflow.current_update_info()
        if update is not None:
            data["update"] = update.name
        if arg.error:
            data["error"] = arg.error
            self._state.error = arg.error
        self._state.status = target
        await self._record(event, data, session_status=target)
        self._describe(arg.reason if target.is_terminal else None)

    # --- the end ----------------------------------------------------------------------

    async def finish(
        self, target: SessionStatus, arg: Transition, *, stop_reason: str | None = None
    ) -> SessionSummary:
        """End the session ``target``: stop every run, wait until they have ended, record it."""
        async with self._execution.lock:
            if self._state.status.is_terminal:  # e.g. a workflow cancel after it ended
                return self._summary()
            waiting = await self._runs.stop_all_runs(stop_reason or arg.reason or target.value)
            if not waiting:
                await self.transition(target, arg)
        if waiting:
            # Wait with the lock released: the ended runs' accounting takes it.
            await workflow.wait_condition(
                lambda: not self._execution.active and not self._execution.watchers
            )
            async with self._execution.lock:
                await self.transition(target, arg)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    async def finish_cancelled(self, reason: str | None) -> SessionSummary:
        return await self.finish(
            SessionStatus.CANCELLED,
            Transition(reason=reason),
            stop_reason=reason or "session cancelled",
        )


__all__ = ["SessionTransitions", "transition_arg"]
