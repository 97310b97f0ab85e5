"""``AgentSession``: one long-lived workflow per session (an entity workflow).

It owns the session status machine, the list of runs, per-session concurrency and the
multitask strategy, and starts one ``AgentRun`` child per run. It never calls a provider and
never carries tokens: runs stream into the event store, and the session keeps only statuses
and usage totals, so its history stays small over hundreds of runs (it continues-as-new when
Temporal suggests it, or after ``continue_as_new_after_runs`` runs).

This module is the state machine: the entry point, the main loop and every handler, each a
thin method. The work is in two parts over the same state (:mod:`workflows.session_base`):
:class:`~workflows.session_transitions.SessionTransitions` (the session's own status changes
and its ending) and :class:`~workflows.session_runs.SessionRuns` (submission, admission, the
child per run, settling its end, the queue).

Rules that keep it healthy:

* validators reject bad updates before anything is written or recorded in history;
* handlers raise only ``ApplicationError`` with a taxonomy ``type`` (anything else would
  wedge the workflow task), via :func:`~workflows.inputs.fail`;
* every entry point decodes its input itself (:mod:`workflows.inputs`): no payload a caller
  sends can make the SDK raise first; signals arrive raw through one dynamic handler;
* two state objects and nothing beside them: :class:`SessionState` (what ``describe`` shows
  and continue-as-new carries) and :class:`~workflows.session_execution.Execution` (what
  lives for one execution only);
* handlers that await take the execution's lock, only with ``async with``; waiting for runs
  to end happens with it released, since their accounting takes it; every handler finishes
  before continue-as-new or return (``all_handlers_finished``);
* a signal that cannot apply is logged and recorded as ``error_occurred``, never raised.

What to do with a submitted run is decided by :mod:`core.admission`; how a run's end reaches
the session is THE protocol of :mod:`core.lifecycle` (drawn in ``docs/architecture.md``),
applied in :mod:`workflows.session_runs`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue

from agent_session_manager.workflows.content import (
    CONTENT_BY_REFERENCE,
    request_by_reference,
    spec_by_reference,
)
from agent_session_manager.workflows.inputs import argument, fail, no_arguments, parse, unknown
from agent_session_manager.workflows.lifecycle import LIFECYCLE_RETRY, LOCAL_TIMEOUT
from agent_session_manager.workflows.ownership import claim_session
from agent_session_manager.workflows.session_base import SessionBase
from agent_session_manager.workflows.session_execution import LEAN_RUNS, Execution
from agent_session_manager.workflows.session_runs import RUN_EVIDENCE, SessionRuns
from agent_session_manager.workflows.session_transitions import SessionTransitions, transition_arg
from agent_session_manager.workflows.session_visibility import COST_LEDGER

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import protocol
    from agent_session_manager.core.budget import tenant_of
    from agent_session_manager.core.contract import (
        CancelRequest,
        CancelRun,
        CancelSession,
        ProviderCatalog,
        RunFinished,
        RunRef,
        RunRequest,
        RunWaiting,
        SessionPatch,
        SessionSpec,
        SessionState,
        SessionSummary,
        SessionView,
        Transition,
        check_id,
        session_id_from_workflow_id,
    )
    from agent_session_manager.core.errors import AsmError, error
    from agent_session_manager.core.events import EventType
    from agent_session_manager.core.protocol import (
        PROVIDER_CATALOG_ACTIVITY,
        REQUEST_CANCEL_ACTIVITY,
        RUN_FINISHED,
        SESSION_WORKFLOW,
    )
    from agent_session_manager.core.status import SessionStatus

#: How many finished runs continue-as-new carries into the next run of the workflow (the
#: rest are in the event store); keeps the carried state, and so the history, bounded.
CARRIED_RUNS = 100

#: Every update a session defines (an unknown one is rejected naming these).
_UPDATES = (
    protocol.ACTIVATE,
    protocol.PAUSE,
    protocol.RESUME,
    protocol.SUBMIT_RUN,
    protocol.CANCEL_RUN,
    protocol.INTERRUPT,
    protocol.COMPLETE,
    protocol.FAIL,
)


@workflow.defn(name=SESSION_WORKFLOW)
class AgentSession(SessionBase):
    """One agent session: status machine, runs, queue, strategy, continuity bookkeeping."""

    @workflow.init
    def __init__(self, *args: Any) -> None:
        invalid: AsmError | None = None
        try:
            spec = parse(args, SessionSpec, SESSION_WORKFLOW)
            state = self._initial_state(spec)
        except AsmError as err:
            err.retryable = False
            invalid = err  # ``run`` fails with it (see ``Execution.invalid``)
            spec = SessionSpec.model_construct(agent_id="-")
            state = SessionState(
                session_id="-",
                agent_id="-",
                provider="-",
                status=SessionStatus.FAILED,
                error=err.to_dict(),
            )
        # A carried session was created by an earlier execution: it serves at once.
        execution = Execution(phase="serving" if spec.carried else "starting", invalid=invalid)
        super().__init__(spec, state, execution)
        self._runs = SessionRuns(spec, state, execution)
        self._transitions = SessionTransitions(spec, state, execution, self._runs)
        if execution.owns_ids:
            # Every later patch is decided here too, in the first activation: a patch first
            # asked right after a local activity (a claim, a stored content) can land its
            # marker in the next workflow task when a query splits the task, and then the
            # history does not replay (see workflows/content.py).
            workflow.patched(RUN_EVIDENCE)
            workflow.patched(CONTENT_BY_REFERENCE)
            execution.lean = workflow.patched(LEAN_RUNS)
            info = workflow.info()
            execution.base_events = info.get_current_history_length()
            execution.base_bytes = info.get_current_history_size()
        # Asked before any command, in every execution: show() asks it again (memoized) at
        # each upsert of the session's attributes.
        workflow.patched(COST_LEDGER)

    @staticmethod
    def _initial_state(spec: SessionSpec) -> SessionState:
        if spec.carried is not None:
            if workflow.info().continued_run_id is None:
                raise error(
                    "validation_error",
                    "carried is internal: only the session's own continue-as-new sets it",
                )
            return spec.carried
        session_id = spec.session_id or session_id_from_workflow_id(workflow.info().workflow_id)
        try:
            check_id(session_id)
        except ValueError as exc:
            raise error(
                "validation_error",
                f"session_id {session_id[:80]!r} (taken from the workflow id): {exc}; "
                "start the workflow as session-<id> or pass session_id",
            ) from None
        return SessionState(session_id=session_id, agent_id=spec.agent_id, provider=spec.provider)

    # --- main loop --------------------------------------------------------------------

    @workflow.run
    async def run(self, *args: Any) -> SessionSummary:
        """Live until completed, failed or cancelled; continue-as-new when history grows.

        Takes one :class:`SessionSpec` (``*args`` so that no input can fail the task: see
        :mod:`workflows.inputs`; ``__init__`` has decoded it).
        """
        if self._execution.invalid is not None:
            fail(self._execution.invalid)
        spec = self._spec
        try:
            if spec.carried is None:
                await self._start(spec)
            else:
                async with self._execution.lock:
                    await self._runs.pump()  # runs that arrived while the last execution drained
            self._describe()
            while True:
                woke = await self._wait_for_something()
                if self._execution.cancel is not None:
                    if self._execution.ui_truth:
                        await self._cancel_through_temporal(self._execution.cancel.reason)
                    return await self._transitions.finish_cancelled(self._execution.cancel.reason)
                if self._execution.closing is not None:
                    return await self._transitions.finish(*self._execution.closing)
                if not woke:  # idle timeout
                    return await self._transitions.finish(
                        SessionStatus.COMPLETED, Transition(reason="idle timeout")
                    )
                if self._should_continue_as_new():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    self._continue_as_new()
        except asyncio.CancelledError:
            # Temporal's own workflow cancel (or the cancel signal's request for one): same
            # cleanup, then end Canceled.
            reason = "workflow cancellation requested"
            if self._execution.ui_truth:
                signalled = self._execution.cancel
                reason = (
                    signalled.reason if signalled is not None else workflow.cancellation_reason()
                ) or reason
            await self._transitions.finish_cancelled(reason)
            raise

    async def _start(self, spec: SessionSpec) -> None:
        await spec_by_reference(spec)  # long content leaves the payloads
        catalog: ProviderCatalog = await workflow.execute_local_activity(
            PROVIDER_CATALOG_ACTIVITY,
            result_type=ProviderCatalog,
            start_to_close_timeout=LOCAL_TIMEOUT,
        )
        provider = catalog.providers.get(spec.provider)
        if provider is None:
            # Fail before writing anything: no half-created session in the store.
            known = ", ".join(sorted(catalog.providers)) or "none"
            fail(
                error(
                    "validation_error",
                    f"unknown provider {spec.provider!r}; this worker runs: {known}",
                    details={"provider": spec.provider, "known": sorted(catalog.providers)},
                )
            )
        await claim_session(
            self._state.session_id,
            enforced=self._execution.owns_ids,
            agent_id=spec.agent_id,
            tenant=tenant_of(spec.tags) or "",
        )
        self._state.capabilities = provider.capabilities
        self._state.default_model = provider.default_model
        self._execution.phase = "creating"
        workflow.upsert_memo({"agent_id": spec.agent_id, "tags": spec.tags})
        await self._record(
            EventType.SESSION_CREATED,
            {
                "agent_id": spec.agent_id,
                "provider": spec.provider,
                "model": spec.model,
                "tags": spec.tags,
                "metadata": spec.metadata,
            },
            session_status=SessionStatus.PENDING,
            session_row=SessionPatch(
                agent_id=spec.agent_id,
                provider=spec.provider,
                model=spec.model,
                tags=spec.tags,
                metadata=spec.metadata,
            ),
        )
        if spec.activate:
            await self._transitions.transition(SessionStatus.ACTIVE, Transition())
        self._execution.phase = "serving"

    async def _cancel_through_temporal(self, reason: str | None) -> None:
        """Have Temporal cancel this execution, then wait for the cancellation to arrive.

        Only Temporal's cancel ends a workflow Canceled (returning would end it Completed, green
        in the UI and missed by its Canceled filter), and a workflow may not request its own
        cancellation: a local activity asks the server (see ``request_cancel``). The
        cancellation then interrupts the wait below, and ``run``'s handler for it does the
        cleanup.
        """
        info = workflow.info()
        await workflow.execute_local_activity(
            REQUEST_CANCEL_ACTIVITY,
            CancelRequest(
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                reason=reason or "session cancelled",
            ),
            start_to_close_timeout=LOCAL_TIMEOUT,
            retry_policy=LIFECYCLE_RETRY,
        )
        await workflow.wait_condition(lambda: False)

    async def _wait_for_something(self) -> bool:
        """Wait for a reason to act; False when the session sat idle past its idle timeout."""

        def wake() -> bool:
            return self._execution.ending or self._should_continue_as_new()

        idle = self._spec.idle_timeout_seconds
        if idle is None:
            await workflow.wait_condition(wake)
            return True
        while True:
            busy = bool(self._execution.active or self._state.queue)

            def changed(was_busy: bool = busy) -> bool:
                return wake() or bool(self._execution.active or self._state.queue) != was_busy

            try:
                await workflow.wait_condition(changed, timeout=None if busy else idle)
            except TimeoutError:
                return False
            if wake():
                return True

    def _should_continue_as_new(self) -> bool:
        return self._draining() and not self._execution.active and not self._execution.watchers

    def _continue_as_new(self) -> NoReturn:
        state = self._state.model_copy(
            update={
                "runs": self._state.runs[-CARRIED_RUNS:],
                "continued": self._state.continued + 1,
            }
        )
        workflow.continue_as_new(self._spec.model_copy(update={"carried": state}))

    # --- queries ----------------------------------------------------------------------

    @workflow.query(name=protocol.DESCRIBE)
    def describe(self, *args: Any) -> SessionView:
        """The session's status, runs with status and usage, and totals (no arguments)."""
        no_arguments(args, protocol.DESCRIBE)
        return self._view(SessionView)

    @workflow.query(dynamic=True)
    def _unknown_query(self, name: str, args: Sequence[RawValue]) -> None:
        """Answers every query this workflow does not define with a typed error."""
        unknown("query", name, [protocol.DESCRIBE])

    # --- session transitions (workflows.session_transitions) -------------------------

    @workflow.update(name=protocol.ACTIVATE)
    async def activate(self, *args: Any) -> SessionView:
        """``pending → active``."""
        return await self._transitions.transition_update(SessionStatus.ACTIVE, transition_arg(args))

    @activate.validator
    def _validate_activate(self, *args: Any) -> None:
        transition_arg(args)
        self._transitions.check(SessionStatus.ACTIVE)

    @workflow.update(name=protocol.PAUSE)
    async def pause(self, *args: Any) -> SessionView:
        """``active → paused``: runs submitted now are held until ``resume``."""
        return await self._transitions.transition_update(SessionStatus.PAUSED, transition_arg(args))

    @pause.validator
    def _validate_pause(self, *args: Any) -> None:
        transition_arg(args)
        self._transitions.check(SessionStatus.PAUSED)

    @workflow.update(name=protocol.RESUME)
    async def resume(self, *args: Any) -> SessionView:
        """``paused → active``; held runs proceed."""
        return await self._transitions.resume(transition_arg(args))

    @resume.validator
    def _validate_resume(self, *args: Any) -> None:
        transition_arg(args)
        self._transitions.check_resume()

    @workflow.update(name=protocol.COMPLETE)
    async def complete(self, *args: Any) -> SessionView:
        """End the session ``completed`` (no run may be running)."""
        return await self._transitions.close(SessionStatus.COMPLETED, transition_arg(args))

    @complete.validator
    def _validate_complete(self, *args: Any) -> None:
        transition_arg(args)
        self._transitions.check_complete()

    @workflow.update(name=protocol.FAIL)
    async def fail(self, *args: Any) -> SessionView:
        """End the session ``failed``: active and queued runs are cancelled."""
        return await self._transitions.close(SessionStatus.FAILED, transition_arg(args))

    @fail.validator
    def _validate_fail(self, *args: Any) -> None:
        transition_arg(args)
        self._transitions.check(SessionStatus.FAILED)

    # --- runs (workflows.session_runs) ------------------------------------------------

    @workflow.update(name=protocol.SUBMIT_RUN)
    async def submit_run(self, *args: Any) -> RunRef:
        """Validate, negotiate, admit (:mod:`core.admission`), and start or queue the run.

        Takes one :class:`RunRequest`.
        """
        request = argument(args, RunRequest, protocol.SUBMIT_RUN)
        return await self._runs.submit(await request_by_reference(request))

    @submit_run.validator
    def _validate_submit_run(self, *args: Any) -> None:
        self._runs.validate_submit(argument(args, RunRequest, protocol.SUBMIT_RUN))

    @workflow.update(name=protocol.CANCEL_RUN)
    async def cancel_run(self, *args: Any) -> RunRef:
        """Cancel one run; a queued run never reaches the provider. Finished: a no-op.

        Takes one :class:`CancelRun`.
        """
        return await self._runs.cancel_run(argument(args, CancelRun, protocol.CANCEL_RUN))

    @cancel_run.validator
    def _validate_cancel_run(self, *args: Any) -> None:
        self._runs.validate_cancel_run(argument(args, CancelRun, protocol.CANCEL_RUN))

    @workflow.update(name=protocol.INTERRUPT)
    async def interrupt(self, *args: Any) -> SessionView:
        """Cancel the running run(s); the session stays active and the queue proceeds."""
        return await self._runs.interrupt()

    @interrupt.validator
    def _validate_interrupt(self, *args: Any) -> None:
        transition_arg(args)
        self._runs.check_interrupt()

    @workflow.update(dynamic=True)
    async def _unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        """Never runs: its validator rejects every update this workflow does not define."""

    @_unknown_update.validator
    def _reject_unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        unknown("update", name, _UPDATES)

    # --- signals ----------------------------------------------------------------------

    @workflow.signal(dynamic=True)
    async def _signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal arrives here, raw: ``cancel``, ``cancel_run`` and ``run_finished``.

        A signal is stored in history and applied again on every replay, so one that cannot
        apply (no payload, two, ``null``, garbage, an unknown name) must never raise: it is
        recorded as ``error_occurred`` and dropped.
        """
        if self._execution.invalid is not None:
            return  # the workflow is failing for its input: nothing to apply to
        try:
            if name == protocol.CANCEL:
                self._transitions.cancel(parse(args, CancelSession, name))
            elif name == protocol.CANCEL_RUN:
                await self._runs.cancel_run_signal(parse(args, CancelRun, name))
            elif name == RUN_FINISHED:
                self._runs.run_finished(parse(args, RunFinished, name))
            elif name == protocol.RUN_WAITING:
                self._runs.run_waiting(parse(args, RunWaiting, name))
            else:
                raise error(
                    "validation_error",
                    f"unknown signal {name[:80]!r}; this workflow takes "
                    f"{protocol.CANCEL}, {protocol.CANCEL_RUN}, {RUN_FINISHED} and "
                    f"{protocol.RUN_WAITING}",
                )
        except AsmError as err:
            workflow.logger.warning("signal %s dropped: %s", name[:80], err.message)
            await self._record(EventType.ERROR_OCCURRED, {**err.to_dict(), "signal": name[:80]})


__all__ = ["AgentSession"]
