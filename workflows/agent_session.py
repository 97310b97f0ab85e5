"""``AgentSession``: one long-lived workflow per session (an entity workflow).

It owns the session status machine, the list of runs, per-session concurrency and the
multitask strategy, and starts one ``AgentRun`` child per run. It never calls a provider and
never carries tokens: runs stream into the event store, and the session keeps only statuses
and usage totals, so its history stays small over hundreds of runs (it continues-as-new when
Temporal suggests it, or after ``continue_as_new_after_runs`` runs).

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

What to do with a submitted run is decided by :mod:`core.admission` (validator, handler and
queue pump ask the same pure function). How a run's end reaches the session is THE protocol
of :mod:`core.lifecycle` (drawn in ``docs/architecture.md``): the ``run_finished`` signal (from
the provider activity on success, from ``AgentRun`` on any other ending) or, failing that, the
child's completion; whichever comes first settles the run in :meth:`AgentSession._settle`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ChildWorkflowError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.content import request_by_reference, spec_by_reference
from agent_session_manager.workflows.inputs import argument, fail, no_arguments, parse, unknown
from agent_session_manager.workflows.lifecycle import LOCAL_TIMEOUT, record
from agent_session_manager.workflows.session_execution import Execution
from agent_session_manager.workflows.session_visibility import show

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import protocol
    from agent_session_manager.core.admission import (
        PreemptRuns,
        QueueRun,
        RejectRun,
        SessionLoad,
        StartRun,
        admit,
        admit_after_preemption,
        admit_queued,
    )
    from agent_session_manager.core.capabilities import CapabilityResolver, Negotiation
    from agent_session_manager.core.contract import (
        CancelRun,
        CancelSession,
        LifecycleRecord,
        ProviderCatalog,
        RunFinished,
        RunPatch,
        RunRef,
        RunRequest,
        RunResult,
        RunSpec,
        RunView,
        SessionPatch,
        SessionSpec,
        SessionState,
        SessionSummary,
        SessionView,
        Transition,
        check_id,
        run_workflow_id,
        session_id_from_workflow_id,
    )
    from agent_session_manager.core.errors import AsmError, error
    from agent_session_manager.core.events import EventType, lifecycle_event_id
    from agent_session_manager.core.lifecycle import run_result_from_error
    from agent_session_manager.core.models import new_run_id
    from agent_session_manager.core.protocol import (
        PROVIDER_CATALOG_ACTIVITY,
        ROLLBACK_RUN_ACTIVITY,
        RUN_FINISHED,
        SESSION_WORKFLOW,
    )
    from agent_session_manager.core.status import RunStatus, SessionStatus, check_transition
    from agent_session_manager.core.temporal import from_failure

#: How many finished runs continue-as-new carries into the next run of the workflow (the
#: rest are in the event store); keeps the carried state, and so the history, bounded.
CARRIED_RUNS = 100

#: Patch: a run is accounted (``turn_completed``, queue pumped) when it settles, not when the
#: child's completion arrives. Histories recorded before it replay the old way.
ACCOUNT_ON_SETTLE = "account-on-settle"

#: Patch: a run's spec carries a token, and only a ``run_finished`` that has it settles the
#: run (a forged or stray one is recorded and ignored). Histories before it trust the signal.
RUN_EVIDENCE = "run-evidence"


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


#: A run's error as the session keeps it (``describe``, update results, continue-as-new):
#: whole up to this size as JSON, else code and a cut message (the run's row has it all).
#: Hundreds of runs ride in one payload, refused by Temporal over 2 MB.
VIEW_ERROR_BYTES = 2048


def _size(request: RunRequest) -> int:
    return len(request.model_dump_json().encode())


def _bounded(err: dict[str, Any] | None) -> dict[str, Any] | None:
    if err is None or len(json.dumps(err, default=str)) <= VIEW_ERROR_BYTES:
        return err
    return {
        "code": err.get("code"),
        "category": err.get("category"),
        "message": str(err.get("message"))[: VIEW_ERROR_BYTES // 2],
        "retryable": err.get("retryable"),
        "details": {"truncated": True},
    }


@workflow.defn(name=SESSION_WORKFLOW)
class AgentSession:
    """One agent session: status machine, runs, queue, strategy, continuity bookkeeping."""

    @workflow.init
    def __init__(self, *args: Any) -> None:
        #: Why the input is unusable: ``run`` fails the workflow with it at once. (Raising here
        #: would fail it too, but strands the SDK's not-yet-started ``run`` coroutine.) Until
        #: then the session stands as ``failed``: validators reject, signals are dropped.
        self._invalid: AsmError | None = None
        try:
            self._spec = parse(args, SessionSpec, SESSION_WORKFLOW)
            self._state = self._initial_state(self._spec)
        except AsmError as err:
            err.retryable = False
            self._invalid = err
            self._spec = SessionSpec.model_construct(agent_id="-")
            self._state = SessionState(
                session_id="-",
                agent_id="-",
                provider="-",
                status=SessionStatus.FAILED,
                error=err.to_dict(),
            )
        # A carried session was created by an earlier execution: it serves at once.
        self._execution = Execution(phase="serving" if self._spec.carried else "starting")

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
        if self._invalid is not None:
            fail(self._invalid)
        spec = self._spec
        try:
            if spec.carried is None:
                await self._start(spec)
            else:
                async with self._execution.lock:
                    await self._pump()  # runs that arrived while the last execution drained
            self._describe()
            while True:
                woke = await self._wait_for_something()
                if self._execution.cancel is not None:
                    return await self._finish_cancelled(self._execution.cancel.reason)
                if self._execution.closing is not None:
                    return await self._finish(*self._execution.closing)
                if not woke:  # idle timeout
                    return await self._finish(
                        SessionStatus.COMPLETED, Transition(reason="idle timeout")
                    )
                if self._should_continue_as_new():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    self._continue_as_new()
        except asyncio.CancelledError:
            # Temporal's own workflow cancel: same cleanup as the signal, then end Canceled.
            await self._finish_cancelled("workflow cancellation requested")
            raise

    async def _start(self, spec: SessionSpec) -> None:
        self._spec = spec = await spec_by_reference(spec)  # content leaves the payloads
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
            await self._transition(SessionStatus.ACTIVE, Transition())
        self._execution.phase = "serving"

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

    def _draining(self) -> bool:
        """Time to continue-as-new: new runs wait in the (carried) queue until we have."""
        return (
            self._execution.runs_started >= self._spec.continue_as_new_after_runs
            or workflow.info().is_continue_as_new_suggested()
        )

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
            run_count=s.run_count,
            continued=s.continued,
            error=s.error,
            ready=self._execution.phase == "serving",
        )

    # --- session transitions ----------------------------------------------------------

    @workflow.update(name=protocol.ACTIVATE)
    async def activate(self, *args: Any) -> SessionView:
        """``pending → active``."""
        return await self._transition_update(SessionStatus.ACTIVE, self._transition_arg(args))

    @activate.validator
    def _validate_activate(self, *args: Any) -> None:
        self._transition_arg(args)
        self._check(SessionStatus.ACTIVE)

    @workflow.update(name=protocol.PAUSE)
    async def pause(self, *args: Any) -> SessionView:
        """``active → paused``: runs submitted now are held until ``resume``."""
        return await self._transition_update(SessionStatus.PAUSED, self._transition_arg(args))

    @pause.validator
    def _validate_pause(self, *args: Any) -> None:
        self._transition_arg(args)
        self._check(SessionStatus.PAUSED)

    @workflow.update(name=protocol.RESUME)
    async def resume(self, *args: Any) -> SessionView:
        """``paused → active``; held runs proceed."""
        view = await self._transition_update(SessionStatus.ACTIVE, self._transition_arg(args))
        async with self._execution.lock:
            await self._pump()
        return view

    @resume.validator
    def _validate_resume(self, *args: Any) -> None:
        self._transition_arg(args)
        if self._state.status is not SessionStatus.PAUSED:
            fail(
                error(
                    "invalid_transition",
                    f"only a paused session can resume; this one is {self._state.status.value}",
                    details={"from": self._state.status.value, "to": "active"},
                )
            )

    @workflow.update(name=protocol.COMPLETE)
    async def complete(self, *args: Any) -> SessionView:
        """End the session ``completed`` (no run may be running)."""
        self._execution.closing = (SessionStatus.COMPLETED, self._transition_arg(args))
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._view(SessionView)

    @complete.validator
    def _validate_complete(self, *args: Any) -> None:
        self._transition_arg(args)
        self._check(SessionStatus.COMPLETED)
        active = self._execution.active
        if active:
            fail(
                error(
                    "invalid_operation",
                    f"{len(active)} run(s) still running "
                    f"({', '.join(sorted(active))}); wait for them or cancel_run first",
                    details={"active_runs": sorted(active)},
                )
            )

    @workflow.update(name=protocol.FAIL)
    async def fail(self, *args: Any) -> SessionView:
        """End the session ``failed``: active and queued runs are cancelled."""
        self._execution.closing = (SessionStatus.FAILED, self._transition_arg(args))
        await workflow.wait_condition(lambda: self._state.status.is_terminal)
        return self._view(SessionView)

    @fail.validator
    def _validate_fail(self, *args: Any) -> None:
        self._transition_arg(args)
        self._check(SessionStatus.FAILED)

    def _transition_arg(self, args: Sequence[Any]) -> Transition:
        name = info.name if (info := workflow.current_update_info()) else "transition"
        return argument(args, Transition, name)

    def _check(self, target: SessionStatus) -> None:
        if self._execution.ending:
            fail(error("invalid_transition", "the session is already ending"))
        try:
            check_transition(self._state.status, target)
        except AsmError as err:
            fail(err)

    async def _transition_update(self, target: SessionStatus, arg: Transition) -> SessionView:
        await workflow.wait_condition(lambda: self._execution.ready)
        async with self._execution.lock:
            self._check(target)  # re-checked: the state may have moved while we queued
            await self._transition(target, arg)
        return self._view(SessionView)

    async def _transition(self, target: SessionStatus, arg: Transition) -> None:
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
        self._describe()

    async def _finish(
        self, target: SessionStatus, arg: Transition, *, stop_reason: str | None = None
    ) -> SessionSummary:
        """End the session ``target``: stop every run, wait until they have ended, record it."""
        async with self._execution.lock:
            if self._state.status.is_terminal:  # e.g. a workflow cancel after it ended
                return self._summary()
            waiting = await self._stop_all_runs(stop_reason or arg.reason or target.value)
            if not waiting:
                await self._transition(target, arg)
        if waiting:
            # Wait with the lock released: the ended runs' accounting takes it.
            await workflow.wait_condition(
                lambda: not self._execution.active and not self._execution.watchers
            )
            async with self._execution.lock:
                await self._transition(target, arg)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary()

    async def _finish_cancelled(self, reason: str | None) -> SessionSummary:
        return await self._finish(
            SessionStatus.CANCELLED,
            Transition(reason=reason),
            stop_reason=reason or "session cancelled",
        )

    def _summary(self) -> SessionSummary:
        summary = self._view(SessionSummary)
        assert isinstance(summary, SessionSummary)
        return summary

    # --- runs -------------------------------------------------------------------------

    @workflow.update(name=protocol.SUBMIT_RUN)
    async def submit_run(self, *args: Any) -> RunRef:
        """Validate, negotiate, admit (:mod:`core.admission`), and start or queue the run.

        Takes one :class:`RunRequest`.
        """
        request = argument(args, RunRequest, protocol.SUBMIT_RUN)
        request = await request_by_reference(request)  # content leaves the payloads
        await workflow.wait_condition(lambda: self._execution.ready)
        async with self._execution.lock:
            if request.run_id is not None and (existing := self._find(request.run_id)):
                return self._ref(existing, note="already submitted")  # idempotent by run id
            decision = self._admit(request)  # re-decided: the state may have moved meanwhile
            negotiation = self._negotiate(request)
            run_id = request.run_id or new_run_id(workflow.uuid4())
            request = request.model_copy(update={"run_id": run_id})
            self._state.run_count += 1
            view = RunView(run_id=run_id, turn=self._state.run_count, status=RunStatus.PENDING)
            self._state.runs.append(view)
            if not isinstance(decision, PreemptRuns):
                return await self._place(request, view, negotiation, decision)
            victims = await self._cancel_active()
        # Wait with the lock released: the victims' accounting takes it.
        await self._until_ended(victims)
        async with self._execution.lock:
            if decision.rollback:
                for victim in victims:
                    await workflow.execute_local_activity(
                        ROLLBACK_RUN_ACTIVITY, victim, start_to_close_timeout=LOCAL_TIMEOUT
                    )
            after = admit_after_preemption(self._load())
            return await self._place(request, view, negotiation, after)

    async def _place(
        self,
        request: RunRequest,
        view: RunView,
        negotiation: Negotiation,
        decision: QueueRun | StartRun,
    ) -> RunRef:
        """Queue or start an admitted run (caller holds the lock)."""
        if isinstance(decision, QueueRun):
            self._state.queue.append(request)
            self._describe()
            return self._ref(view, negotiation=negotiation, note="queued")
        await self._start_run(request, view, negotiation)
        return self._ref(view, negotiation=negotiation)

    @submit_run.validator
    def _validate_submit_run(self, *args: Any) -> None:
        request = argument(args, RunRequest, protocol.SUBMIT_RUN)
        if request.run_id is not None and self._find(request.run_id):
            return  # an idempotent repeat is answered by the handler
        self._admit(request)
        if self._execution.ready:
            self._negotiate(request)

    def _admit(self, request: RunRequest) -> PreemptRuns | QueueRun | StartRun:
        """:func:`core.admission.admit` for ``request``; a rejection fails the update."""
        load = self._load(incoming=request)
        decision = admit(request.strategy or self._spec.multitask_strategy, load)
        if isinstance(decision, RejectRun):
            fail(decision.error)
        return decision

    def _load(self, incoming: RunRequest | None = None) -> SessionLoad:
        return SessionLoad(
            queued_bytes=sum(_size(r) for r in self._state.queue) if incoming else 0,
            incoming_bytes=_size(incoming) if incoming else 0,
            status=self._state.status,
            active=len(self._execution.active),
            queued=len(self._state.queue),
            max_active=self._spec.max_concurrent_runs,
            max_queued=self._spec.max_queued_runs,
            ending=self._execution.ending,
            draining=self._draining(),
        )

    def _negotiate(self, request: RunRequest) -> Negotiation:
        try:
            return CapabilityResolver(
                request.required_capabilities, request.optional_capabilities
            ).negotiate(self._state.capabilities)
        except AsmError as err:
            fail(err)

    async def _start_run(
        self, request: RunRequest, view: RunView, negotiation: Negotiation | None
    ) -> None:
        assert request.run_id is not None
        spec = self._spec
        messages = request.input_messages()
        token: str | None = None
        if workflow.patched(RUN_EVIDENCE):
            token = self._execution.tokens[request.run_id] = str(workflow.uuid4())
        run_spec = RunSpec(
            run_id=request.run_id,
            session_id=self._state.session_id,
            agent_id=self._state.agent_id,
            provider=self._state.provider,
            model=request.model or spec.model or self._state.default_model,
            turn=view.turn,
            system_prompt=spec.system_prompt,
            system_prompt_ref=spec.system_prompt_ref,
            messages=messages,
            prompt_ref=request.prompt_ref,
            provider_options={**spec.provider_options, **request.provider_options},
            mock=request.mock or spec.mock,
            retry=request.retry or spec.retry,
            timeout_seconds=request.timeout_seconds or spec.run_timeout_seconds,
            heartbeat_timeout_seconds=spec.heartbeat_timeout_seconds,
            negotiation=negotiation,
            token=token,
        )
        try:
            handle = await workflow.start_child_workflow(
                AgentRun.run,
                run_spec,
                id=run_workflow_id(request.run_id),
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                static_summary=f"turn {view.turn}: {request.preview()}",
            )
        except Exception as exc:  # e.g. the run id is taken by another session's run
            self._execution.tokens.pop(request.run_id, None)
            view.status = RunStatus.FAILED
            view.error = _bounded(error("already_exists", f"could not start run: {exc}").to_dict())
            self._describe()
            fail(error("already_exists", f"run {request.run_id} could not start: {exc}"))
        self._execution.runs_started += 1
        if not view.status.is_terminal:  # it may have finished already (run_finished)
            view.status = RunStatus.RUNNING
            self._execution.active[request.run_id] = handle
        self._describe()
        self._spawn(self._watch(view, handle), f"watch {request.run_id}")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run per-run work in the background; draining and shutdown wait for all of it."""
        task = asyncio.create_task(coro, name=name)
        watchers = self._execution.watchers
        watchers.add(task)  # a task nobody references may be garbage-collected
        task.add_done_callback(watchers.discard)

    @workflow.update(dynamic=True)
    async def _unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        """Never runs: its validator rejects every update this workflow does not define."""

    @_unknown_update.validator
    def _reject_unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        unknown("update", name, _UPDATES)

    @workflow.query(dynamic=True)
    def _unknown_query(self, name: str, args: Sequence[RawValue]) -> None:
        """Answers every query this workflow does not define with a typed error."""
        unknown("query", name, [protocol.DESCRIBE])

    # --- signals ----------------------------------------------------------------------

    @workflow.signal(dynamic=True)
    async def _signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal arrives here, raw: ``cancel``, ``cancel_run`` and ``run_finished``.

        A signal is stored in history and applied again on every replay, so one that cannot
        apply (no payload, two, ``null``, garbage, an unknown name) must never raise: it is
        recorded as ``error_occurred`` and dropped.
        """
        if self._invalid is not None:
            return  # the workflow is failing for its input: nothing to apply to
        try:
            if name == protocol.CANCEL:
                self.cancel(parse(args, CancelSession, name))
            elif name == protocol.CANCEL_RUN:
                await self.cancel_run_signal(parse(args, CancelRun, name))
            elif name == RUN_FINISHED:
                self.run_finished(parse(args, RunFinished, name))
            else:
                raise error(
                    "validation_error",
                    f"unknown signal {name[:80]!r}; this workflow takes "
                    f"{protocol.CANCEL}, {protocol.CANCEL_RUN} and {RUN_FINISHED}",
                )
        except AsmError as err:
            workflow.logger.warning("signal %s dropped: %s", name[:80], err.message)
            await self._record(EventType.ERROR_OCCURRED, {**err.to_dict(), "signal": name[:80]})

    def run_finished(self, result: RunFinished) -> None:
        """Sent by a run just before it ends, so the slot is free before anyone sees the end.

        Without it a client that saw ``run-…`` complete could submit the next run before
        this workflow processed the child's completion, and be told the slot is busy.
        """
        view = self._find(result.run_id)
        if view is None:  # not one of ours (a stray or hand-sent signal): say so, go on
            workflow.logger.warning("run_finished signal for unknown run %s", result.run_id)
            err = error("run_not_found", f"run_finished: no run {result.run_id!r}")
            self._spawn(self._record(EventType.ERROR_OCCURRED, err.to_dict()), "stray signal")
            return
        if view.status.is_terminal:
            return  # settled already (by its completion, or an earlier signal)
        if not self._is_evidence(result):
            workflow.logger.warning("run_finished for run %s without its token", result.run_id)
            err = error(
                "validation_error",
                f"run_finished for run {result.run_id!r} does not carry the run's token: "
                "ignored (the run settles when it ends)",
                details={"run_id": result.run_id, "status": view.status.value},
            )
            self._spawn(self._record(EventType.ERROR_OCCURRED, err.to_dict()), "forged signal")
            return
        # A fast run can finish before we have even seen it start: settle it all the same,
        # and _start_run will not count it as active.
        self._settle(view, result)

    def _is_evidence(self, result: RunFinished) -> bool:
        """Did the run itself send this? Only it knows the token its spec carries."""
        expected = self._execution.tokens.get(result.run_id)
        if expected is not None:
            return result.token == expected
        # No token issued: a run started before the patch (trusted as it was then), or a
        # run that never started (queued, or not one of ours): nothing it says is evidence.
        return not workflow.patched(RUN_EVIDENCE) or result.run_id in self._execution.active

    def _settle(self, view: RunView, result: RunResult) -> None:
        """The one place a started run ends: its view, its slot, the session's totals, then
        (:meth:`_account`) its ``turn_completed`` and the queue."""
        view.status = result.status
        view.usage = result.usage
        self._state.usage = self._state.usage + result.usage
        view.stop_reason = result.stop_reason
        view.error = _bounded(result.error)
        self._execution.active.pop(view.run_id, None)
        self._execution.tokens.pop(view.run_id, None)
        # Account at once instead of when the child's completion arrives (which comes later:
        # the run tells us it is over before it ends), so a caller that submits its next run
        # as soon as it has this run's result does not wait behind this run's bookkeeping.
        if workflow.patched(ACCOUNT_ON_SETTLE):
            self._spawn(self._account(view), f"account {view.run_id}")

    async def _watch(self, view: RunView, handle: ChildWorkflowHandle[AgentRun, RunResult]) -> None:
        """Await a run's end; settle it here if its ``run_finished`` signal never came."""
        try:
            result = await handle
        except ChildWorkflowError as exc:
            result = run_result_from_error(
                from_failure(exc), run_id=view.run_id, session_id=self._state.session_id
            )
        if view.run_id in self._execution.active:  # the run_finished signal did not arrive
            self._settle(view, result)
        if not workflow.patched(ACCOUNT_ON_SETTLE):  # histories from before the patch
            await self._account(view)

    async def _account(self, view: RunView) -> None:
        """Record the turn with the session's new totals, then start what the queue holds."""
        async with self._execution.lock:
            await self._record(
                EventType.TURN_COMPLETED,
                {
                    "turn": view.turn,
                    "status": view.status.value,
                    "usage": view.usage.model_dump(),
                    "session_usage": self._state.usage.model_dump(),
                },
                run_id=view.run_id,
                session_row=SessionPatch(
                    usage=self._state.usage.model_copy(), run_count=self._state.run_count
                ),
            )
            await self._pump()
        self._describe()

    async def _pump(self) -> None:
        """Start queued runs while there are free slots (caller holds the lock)."""
        while self._state.queue and isinstance(admit_queued(self._load()), StartRun):
            request = self._state.queue.pop(0)
            assert request.run_id is not None
            view = self._find(request.run_id)
            if view is None or view.status is not RunStatus.PENDING:
                continue
            await self._start_run(request, view, self._negotiate(request))

    async def _cancel_active(self) -> list[str]:
        """Ask every active run to cancel (caller holds the lock); the runs asked."""
        victims = list(self._execution.active)
        for run_id in victims:
            await self._cancel_child(run_id)
        return victims

    async def _until_ended(self, run_ids: list[str]) -> None:
        """Wait until these runs have settled; call it without the lock."""
        await workflow.wait_condition(lambda: not any(r in self._execution.active for r in run_ids))

    @workflow.update(name=protocol.CANCEL_RUN)
    async def cancel_run(self, *args: Any) -> RunRef:
        """Cancel one run; a queued run never reaches the provider. Finished: a no-op.

        Takes one :class:`CancelRun`.
        """
        arg = argument(args, CancelRun, protocol.CANCEL_RUN)
        view = self._find(arg.run_id)
        assert view is not None  # the validator guarantees it
        if view.status.is_terminal:
            return self._ref(view, note=f"run already {view.status.value}; nothing to cancel")
        await self._cancel_run(view, arg.reason)
        await workflow.wait_condition(lambda: view.status.is_terminal)
        return self._ref(view)

    @cancel_run.validator
    def _validate_cancel_run(self, *args: Any) -> None:
        arg = argument(args, CancelRun, protocol.CANCEL_RUN)
        if self._find(arg.run_id) is None:
            fail(
                error(
                    "run_not_found",
                    f"session {self._state.session_id} has no run {arg.run_id!r}",
                    details={"run_id": arg.run_id},
                )
            )

    async def cancel_run_signal(self, arg: CancelRun) -> None:
        """Fire-and-forget ``cancel_run``; an unknown run is recorded as ``error_occurred``."""
        view = self._find(arg.run_id)
        if view is None:
            workflow.logger.warning("cancel_run signal for unknown run %s", arg.run_id)
            await self._record(
                EventType.ERROR_OCCURRED,
                error("run_not_found", f"cancel_run: no run {arg.run_id!r}").to_dict(),
            )
            return
        if not view.status.is_terminal:
            await self._cancel_run(view, arg.reason)

    async def _cancel_run(self, view: RunView, reason: str | None) -> None:
        queued = next((r for r in self._state.queue if r.run_id == view.run_id), None)
        if queued is not None:
            self._state.queue.remove(queued)
            view.status = RunStatus.CANCELLED
            await self._record(
                EventType.RUN_CANCELLED,
                {"reason": reason, "queued": True},
                run_id=view.run_id,
                run_status=RunStatus.CANCELLED,
                run_row=RunPatch(turn=view.turn, session_id=self._state.session_id),
            )
            self._describe()
        elif view.run_id in self._execution.active:
            await self._cancel_child(view.run_id)

    @workflow.update(name=protocol.INTERRUPT)
    async def interrupt(self, *args: Any) -> SessionView:
        """Cancel the running run(s); the session stays active and the queue proceeds."""
        async with self._execution.lock:
            victims = await self._cancel_active()
            if not victims:
                await self._pump()
                return self._view(SessionView)
        # Wait with the lock released: the victims' accounting takes it.
        await self._until_ended(victims)
        async with self._execution.lock:
            await self._pump()
        return self._view(SessionView)

    @interrupt.validator
    def _validate_interrupt(self, *args: Any) -> None:
        self._transition_arg(args)
        if self._state.status not in (SessionStatus.ACTIVE, SessionStatus.PAUSED):
            fail(
                error(
                    "invalid_operation",
                    f"nothing to interrupt: the session is {self._state.status.value}",
                )
            )
        if not any(c.enabled and c.name == "interrupt" for c in self._state.capabilities):
            fail(
                error(
                    "capability_not_supported",
                    f"provider {self._state.provider!r} does not support interrupt",
                )
            )

    def cancel(self, arg: CancelSession) -> None:
        """Cancel the session and all its runs."""
        if self._execution.cancel is None and not self._state.status.is_terminal:
            self._execution.cancel = arg

    async def _stop_all_runs(self, reason: str) -> bool:
        """Cancel queued and active runs (caller holds the lock); True while some must end."""
        for request in list(self._state.queue):
            view = self._find(request.run_id or "")
            if view is not None:
                await self._cancel_run(view, reason)
        self._state.queue.clear()
        victims = await self._cancel_active()
        return bool(victims or self._execution.watchers)

    # --- helpers ----------------------------------------------------------------------

    async def _cancel_child(self, run_id: str) -> None:
        """Ask a run to cancel; one that has just ended is not an error (its watcher settles it).

        Without the catch, a run finishing in the same moment would raise out of the main
        loop and fail the whole session.
        """
        try:
            await workflow.get_external_workflow_handle(run_workflow_id(run_id)).cancel()
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

    def _describe(self) -> None:
        show(self._state, running=len(self._execution.active), tags=self._spec.tags)

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


__all__ = ["AgentSession"]
