"""A session's runs: submission, admission, the child that runs each, and how each settles.

What to do with a submitted run is decided by :mod:`core.admission` (validator, handler and
queue pump ask the same pure function). How a run's end reaches the session is THE protocol
of :mod:`core.lifecycle` (drawn in ``docs/architecture.md``): the ``run_finished`` signal (from
the provider activity on success, from ``AgentRun`` on any other ending) or, failing that, the
child's completion; whichever comes first settles the run in :meth:`SessionRuns._settle`.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.inputs import fail
from agent_session_manager.workflows.lifecycle import LOCAL_TIMEOUT
from agent_session_manager.workflows.ownership import claim_run
from agent_session_manager.workflows.session_base import SessionBase

with workflow.unsafe.imports_passed_through():
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
    from agent_session_manager.core.budget import tenant_of
    from agent_session_manager.core.capabilities import CapabilityResolver, Negotiation
    from agent_session_manager.core.contract import (
        CancelRun,
        ContextPolicy,
        RunFinished,
        RunPatch,
        RunRef,
        RunRequest,
        RunResult,
        RunSpec,
        RunView,
        RunWaiting,
        SessionPatch,
        SessionView,
        run_workflow_id,
    )
    from agent_session_manager.core.errors import AsmError, error
    from agent_session_manager.core.events import EventType
    from agent_session_manager.core.lifecycle import run_result_from_error
    from agent_session_manager.core.models import new_run_id
    from agent_session_manager.core.protocol import ROLLBACK_RUN_ACTIVITY
    from agent_session_manager.core.status import RunStatus, SessionStatus
    from agent_session_manager.core.temporal import from_failure

#: Patch: a run is accounted (``turn_completed``, queue pumped) when it settles, not when the
#: child's completion arrives. Histories recorded before it replay the old way.
ACCOUNT_ON_SETTLE = "account-on-settle"

#: Patch: a run's spec carries a token, and only a ``run_finished`` that has it settles the
#: run (a forged or stray one is recorded and ignored). Histories before it trust the signal.
RUN_EVIDENCE = "run-evidence"

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


class SessionRuns(SessionBase):
    """Submit, admit, start, cancel and settle a session's runs; pump its queue."""

    # --- submission and admission -----------------------------------------------------

    async def submit(self, request: RunRequest) -> RunRef:
        """Validate, negotiate, admit (:mod:`core.admission`), and start or queue the run."""
        await workflow.wait_condition(lambda: self._execution.ready)
        async with self._execution.lock:
            if request.run_id is not None and (existing := self._find(request.run_id)):
                return self._ref(existing, note="already submitted")  # idempotent by run id
            decision = self._admit(request)  # re-decided: the state may have moved meanwhile
            negotiation = self._negotiate(request)
            if request.run_id is None:
                # An id the session draws (a random UUID) is nobody else's: no claim to make.
                request = request.model_copy(update={"run_id": new_run_id(workflow.uuid4())})
            else:
                await claim_run(
                    request.run_id, self._state.session_id, enforced=self._execution.owns_ids
                )
            run_id = request.run_id
            self._state.run_count += 1
            view = RunView(run_id=run_id, turn=self._state.run_count, status=RunStatus.PENDING)
            self._state.runs.append(view)
            if not isinstance(decision, PreemptRuns):
                return await self._place(request, view, negotiation, decision)
            victims = await self._cancel_active(f"preempted by run {run_id}")
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

    def validate_submit(self, request: RunRequest) -> None:
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
        required = list(request.required_capabilities)
        spec = self._spec
        if (spec.tools or spec.client_tools or request.tools or request.client_tools) and (
            "tool" not in required
        ):
            # A run with tools needs a provider that can call them.
            required.append("tool")
        try:
            return CapabilityResolver(required, request.optional_capabilities).negotiate(
                self._state.capabilities
            )
        except AsmError as err:
            fail(err)

    # --- starting ---------------------------------------------------------------------

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
            budget=spec.budget,
            tenant=tenant_of(spec.tags),
            tools=list(dict.fromkeys([*spec.tools, *request.tools])),
            client_tools=[*spec.client_tools, *request.client_tools],
            tool_policies={**spec.tool_policies, **request.tool_policies},
            max_turns=request.max_turns or spec.max_turns,
            # The default policy need not ride in every run's input (the activity applies it).
            context=None if spec.context == ContextPolicy() else spec.context,
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
            self._ended(view, RunStatus.FAILED)
            view.error = _bounded(error("already_exists", f"could not start run: {exc}").to_dict())
            self._describe()
            fail(error("already_exists", f"run {request.run_id} could not start: {exc}"))
        self._execution.runs_started += 1
        if not view.status.is_terminal:  # it may have finished already (run_finished)
            view.status = RunStatus.RUNNING
            self._execution.active[request.run_id] = handle
        self._describe()
        self._spawn(self._watch(view, handle), f"watch {request.run_id}")

    async def pump(self) -> None:
        """Start queued runs while there are free slots (caller holds the lock)."""
        while self._state.queue and isinstance(admit_queued(self._load()), StartRun):
            request = self._state.queue.pop(0)
            assert request.run_id is not None
            view = self._find(request.run_id)
            if view is None or view.status is not RunStatus.PENDING:
                continue
            await self._start_run(request, view, self._negotiate(request))

    # --- how a run ends ---------------------------------------------------------------

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

    def run_waiting(self, arg: RunWaiting) -> None:
        """A run's agent loop now waits for this (or nothing): ``describe`` shows it."""
        view = self._find(arg.run_id)
        expected = self._execution.tokens.get(arg.run_id)
        if view is None or view.status.is_terminal or expected is None or arg.token != expected:
            # Not from a run of ours that is still going: nothing to show.
            workflow.logger.warning("run_waiting for run %s ignored", arg.run_id)
            return
        view.waiting = arg.waiting
        view.pending_approvals = arg.pending_approvals

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
        self._ended(view, result.status)
        view.usage = result.usage
        self._state.usage = self._state.usage + result.usage
        view.cost_micros = result.cost_micros
        self._state.cost_micros += result.cost_micros
        view.stop_reason = result.stop_reason
        view.error = _bounded(result.error)
        view.waiting, view.pending_approvals = None, []
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
            await self.pump()
        self._describe()

    # --- cancelling -------------------------------------------------------------------

    async def _cancel_active(self, reason: str) -> list[str]:
        """Ask every active run to cancel (caller holds the lock); the runs asked."""
        victims = list(self._execution.active)
        for run_id in victims:
            await self._cancel_child(run_id, reason)
        return victims

    async def _until_ended(self, run_ids: list[str]) -> None:
        """Wait until these runs have settled; call it without the lock."""
        await workflow.wait_condition(lambda: not any(r in self._execution.active for r in run_ids))

    async def cancel_run(self, arg: CancelRun) -> RunRef:
        """Cancel one run; a queued run never reaches the provider. Finished: a no-op."""
        view = self._find(arg.run_id)
        assert view is not None  # the validator guarantees it
        if view.status.is_terminal:
            return self._ref(view, note=f"run already {view.status.value}; nothing to cancel")
        await self._cancel_run(view, arg.reason)
        await workflow.wait_condition(lambda: view.status.is_terminal)
        return self._ref(view)

    def validate_cancel_run(self, arg: CancelRun) -> None:
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
            self._ended(view, RunStatus.CANCELLED)
            await self._record(
                EventType.RUN_CANCELLED,
                {"reason": reason, "queued": True},
                run_id=view.run_id,
                run_status=RunStatus.CANCELLED,
                run_row=RunPatch(turn=view.turn, session_id=self._state.session_id),
            )
            self._describe()
        elif view.run_id in self._execution.active:
            await self._cancel_child(view.run_id, reason)

    async def interrupt(self) -> SessionView:
        """Cancel the running run(s); the session stays active and the queue proceeds."""
        async with self._execution.lock:
            victims = await self._cancel_active("interrupted")
            if not victims:
                await self.pump()
                return self._view(SessionView)
        # Wait with the lock released: the victims' accounting takes it.
        await self._until_ended(victims)
        async with self._execution.lock:
            await self.pump()
        return self._view(SessionView)

    def check_interrupt(self) -> None:
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

    async def stop_all_runs(self, reason: str) -> bool:
        """Cancel queued and active runs (caller holds the lock); True while some must end."""
        for request in list(self._state.queue):
            view = self._find(request.run_id or "")
            if view is not None:
                await self._cancel_run(view, reason)
        self._state.queue.clear()
        victims = await self._cancel_active(reason)
        return bool(victims or self._execution.watchers)


__all__ = ["ACCOUNT_ON_SETTLE", "RUN_EVIDENCE", "VIEW_ERROR_BYTES", "SessionRuns"]
