"""``AgentRun``'s agent loop: model call → tool calls → model call … until the model ends its
turn or the run reaches ``max_turns``.

Each model call is one ``stream_provider`` activity and each tool call one ``execute_tool``
activity with the tool's own timeouts and attempts, so a worker crash mid-loop re-runs only
the activity that was in flight: a completed tool never runs again, a completed model call is
never billed again (both are in history).

Approvals (:mod:`core.tools`): a call whose policy is ``ask`` waits, durably, for an ``approve``
or ``deny`` update naming its action digest (or for its expiry, which denies it); ``never``
denies at once. A tool the application runs (``executor="client"``) waits for its
``submit_tool_result`` update. A denied, expired, failed or cancelled call still gets a result
(an error result), so the transcript always answers every ``tool_use``.

All state lives in :class:`LoopState` (queried by ``describe_run``); the run workflow owns the
deadline and cancellation and calls :meth:`AgentLoop.clear` to resolve what is still pending.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from agent_session_manager.workflows.approval_book import Approval, ApprovalBook
from agent_session_manager.workflows.inputs import fail
from agent_session_manager.workflows.lifecycle import record

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import search_attributes
    from agent_session_manager.core.contract import (
        LifecycleRecord,
        ProviderCall,
        ProviderOutcome,
        RunSpec,
        RunWaiting,
    )
    from agent_session_manager.core.errors import error
    from agent_session_manager.core.events import EventType, lifecycle_event_id
    from agent_session_manager.core.protocol import EXECUTE_TOOL_ACTIVITY, RUN_WAITING
    from agent_session_manager.core.tools import (
        ApprovalDecision,
        ApprovalResolution,
        PendingApproval,
        PendingToolCall,
        RunProgress,
        ToolCallRequest,
        ToolInvocation,
        ToolResult,
        ToolResultSubmission,
        action_digest,
        effective_policy,
        policy_version,
    )

#: Patch: ``AgentRun`` runs the agent loop (tools, approvals). Decided in the run's first
#: activation, and only for a run that has tools: runs without keep their old histories.
AGENT_LOOP = "agent-loop"


async def let_go_on_cancel(handle: Any) -> Any:
    """Await an activity; if this task is cancelled, cancel it and wait until it has let go.

    A task cancel would otherwise throw at once into the awaiting coroutine (the handle's own
    cancel waits for the activity, so it does not finish the await), and the run could end
    while its tool still runs and records.
    """
    try:
        return await asyncio.shield(handle)
    except asyncio.CancelledError:
        handle.cancel()
        await asyncio.gather(handle, return_exceptions=True)
        raise


@dataclass
class _ClientCall:
    pending: PendingToolCall
    result: ToolResult | None = None


@dataclass
class LoopState:
    """Everything the loop knows: what ``describe_run`` shows."""

    approvals: ApprovalBook
    phase: Literal["model", "tools", "awaiting_approval", "awaiting_tool_result", "ended"] = "model"
    model_calls: int = 0
    client_calls: dict[str, _ClientCall] = field(default_factory=dict)
    results: list[ToolResult] = field(default_factory=list)
    events: int = 0


class AgentLoop:
    """The loop of one run; ``model_call`` is the run's provider activity, started per call."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.state = LoopState(approvals=ApprovalBook(spec.run_id))

    # --- the loop ---------------------------------------------------------------------

    async def run(self, model_call: Any) -> ProviderOutcome:
        """Loop until an outcome without tool calls; ``max_turns_exceeded`` past the bound."""
        call = ProviderCall(spec=self.spec)
        while True:
            self._phase("model")
            outcome: ProviderOutcome = await model_call(call)
            self.state.model_calls += 1
            if not outcome.tool_calls:
                return outcome
            if call.step >= self.spec.max_turns:
                raise error(
                    "max_turns_exceeded",
                    f"the model still wanted tools after {call.step} model call(s) "
                    f"(max_turns={self.spec.max_turns}); raise max_turns or simplify the task",
                    details={"max_turns": self.spec.max_turns},
                    retryable=False,
                )
            self._phase("tools")
            # return_exceptions: on cancel, gather waits for every call to let go (a running
            # tool records its end) instead of ending with the first one cancelled.
            settled = await asyncio.gather(
                *(self._one(c) for c in outcome.tool_calls), return_exceptions=True
            )
            for r in settled:
                if isinstance(r, BaseException):
                    raise r
            results = [r for r in settled if isinstance(r, ToolResult)]
            self.state.results.extend(results)
            call = ProviderCall(
                spec=self.spec,
                step=call.step + 1,
                prefix=outcome.messages,
                tool_results=results,
                usage_before=outcome.usage,
            )

    async def _one(self, call: ToolCallRequest) -> ToolResult:
        spec = call.spec
        if spec is None:
            return self._result(call, "failed", f"no tool named {call.name!r} is available")
        policy = effective_policy(spec, self.spec.tool_policies)
        if policy == "never":
            await self._event(
                EventType.TOOL_APPROVAL_DENIED,
                call.call_id,
                {"id": call.call_id, "name": call.name, "reason": "policy: never"},
            )
            return self._result(call, "denied", "the operator's policy does not allow this tool")
        if policy == "ask":
            approval = await self._ask(call, policy)
            if approval.decision != "granted":
                status: Literal["denied", "expired"] = (
                    "expired" if approval.reason == "expired" else "denied"
                )
                return self._result(call, status, f"not approved: {approval.reason or 'denied'}")
        if spec.executor == "client":
            return await self._from_client(call)
        return await self._execute(call)

    def _result(
        self,
        call: ToolCallRequest,
        status: Literal["failed", "denied", "expired", "cancelled"],
        message: str,
    ) -> ToolResult:
        return ToolResult(call_id=call.call_id, name=call.name, status=status, output=message)

    async def _execute(self, call: ToolCallRequest) -> ToolResult:
        assert call.spec is not None
        tool = call.spec
        try:
            result: ToolResult = await let_go_on_cancel(
                workflow.start_activity(
                    EXECUTE_TOOL_ACTIVITY,
                    ToolInvocation(
                        session_id=self.spec.session_id,
                        run_id=self.spec.run_id,
                        provider=self.spec.provider,
                        call=call,
                    ),
                    result_type=ToolResult,
                    start_to_close_timeout=timedelta(seconds=tool.timeout_seconds),
                    heartbeat_timeout=timedelta(seconds=tool.heartbeat_timeout_seconds),
                    # The tool's own attempts; a non-retryable failure (bad arguments) is final.
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(milliseconds=500),
                        maximum_interval=timedelta(seconds=10),
                        maximum_attempts=tool.max_attempts,
                    ),
                    # A cancelled run waits for its tools to let go (and record it).
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"tool {call.name}",
                )
            )
            return result
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                raise asyncio.CancelledError() from exc
            # The model is told, and decides what to do next: a failed tool is not a failed run.
            message = str(exc.cause or exc)[:2000]
            return self._result(call, "failed", message)

    # --- approvals --------------------------------------------------------------------

    async def _ask(self, call: ToolCallRequest, policy: Any) -> Approval:
        assert call.spec is not None
        timeout = call.spec.approval_timeout_seconds
        expires_at = (workflow.now() + timedelta(seconds=timeout)).isoformat() if timeout else None
        version = policy_version(call.spec, policy)
        pending = PendingApproval(
            run_id=self.spec.run_id,
            session_id=self.spec.session_id,
            call_id=call.call_id,
            tool=call.name,
            arguments_sha256=call.arguments_sha256,
            policy_version=version,
            expires_at=expires_at,
            digest=action_digest(
                call_id=call.call_id,
                tool=call.name,
                arguments_sha256=call.arguments_sha256,
                policy_version=version,
                expires_at=expires_at,
            ),
            input=call.input,
            input_ref=call.input_ref,
        )
        approval = self.state.approvals.add(pending)
        self._phase("awaiting_approval")
        self._show_pending()
        await self._tell_session()
        await self._event(
            EventType.TOOL_APPROVAL_REQUESTED,
            call.call_id,
            pending.model_dump(mode="json", exclude={"input", "input_ref", "run_id"})
            | {"id": call.call_id, "name": call.name},
        )
        try:
            await workflow.wait_condition(lambda: approval.decision is not None, timeout=timeout)
        except TimeoutError:  # an approve in the same task wins
            ApprovalBook.settle(approval, "denied", "expired")
        self._show_pending()
        await self._tell_session()
        granted = approval.decision == "granted"
        await self._event(
            EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
            call.call_id,
            {
                "id": call.call_id,
                "name": call.name,
                "digest": pending.digest,
                "reason": approval.reason,
            },
        )
        self._phase("tools")
        return approval

    def find_approval(self, decision: ApprovalDecision) -> Approval:
        """The approval ``decision`` names; a typed rejection if it cannot take effect."""
        return self.state.approvals.find(decision)

    def resolve(
        self, decision: ApprovalDecision, outcome: Literal["granted", "denied"]
    ) -> ApprovalResolution:
        """Apply ``decision`` (exactly once: a second gets ``approval_already_resolved``)."""
        return self.state.approvals.resolve(decision, outcome)

    # --- client-side tools ------------------------------------------------------------

    async def _from_client(self, call: ToolCallRequest) -> ToolResult:
        waiting = self.state.client_calls[call.call_id] = _ClientCall(
            PendingToolCall(
                call_id=call.call_id, tool=call.name, input=call.input, input_ref=call.input_ref
            )
        )
        self._phase("awaiting_tool_result")
        await self._tell_session()
        await self._event(
            EventType.TOOL_CALL_STARTED,
            call.call_id,
            {"id": call.call_id, "name": call.name, "executor": "client"},
        )
        await workflow.wait_condition(lambda: waiting.result is not None)
        assert waiting.result is not None
        done = waiting.result
        await self._tell_session()
        await self._event(
            EventType.TOOL_CALL_COMPLETED
            if done.status == "completed"
            else EventType.TOOL_CALL_FAILED,
            call.call_id,
            {
                "id": call.call_id,
                "name": call.name,
                "executor": "client",
                "output": done.output[:4096],
                "status": done.status,
            },
        )
        self._phase("tools")
        return done

    def check_submission(self, arg: ToolResultSubmission) -> _ClientCall:
        """The waiting call ``arg`` answers; typed errors for an unknown id or a second result."""
        waiting = self.state.client_calls.get(arg.call_id)
        if waiting is None:
            fail(
                error(
                    "tool_call_not_found",
                    f"run {self.spec.run_id} has no client-side tool call {arg.call_id!r} "
                    "waiting for a result; describe the run to see what it waits for",
                    details={"call_id": arg.call_id},
                )
            )
        if waiting.result is not None:
            fail(
                error(
                    "tool_result_already_submitted",
                    f"call {arg.call_id!r} already has its result; nothing to do",
                    details={"call_id": arg.call_id},
                )
            )
        return waiting

    def submit(self, arg: ToolResultSubmission) -> ToolResult:
        """Hand the waiting call its result (exactly once)."""
        waiting = self.check_submission(arg)
        waiting.result = ToolResult(
            call_id=arg.call_id,
            name=waiting.pending.tool,
            status="failed" if arg.is_error else "completed",
            output=arg.output,
        )
        return waiting.result

    # --- cancellation, deadline -------------------------------------------------------

    async def clear(self, why: Literal["cancelled", "timeout"]) -> None:
        """Resolve what still waits: approvals denied, client-side calls cancelled."""
        for approval in list(self.state.approvals.entries.values()):
            if ApprovalBook.settle(approval, "denied", f"run {why}"):
                await self._event(
                    EventType.TOOL_APPROVAL_DENIED,
                    approval.pending.call_id,
                    {
                        "id": approval.pending.call_id,
                        "name": approval.pending.tool,
                        "digest": approval.pending.digest,
                        "reason": approval.reason,
                    },
                )
        for waiting in self.state.client_calls.values():
            if waiting.result is None:
                waiting.result = ToolResult(
                    call_id=waiting.pending.call_id,
                    name=waiting.pending.tool,
                    status="cancelled",
                    output=f"run {why}",
                )
                await self._event(
                    EventType.TOOL_CALL_FAILED,
                    waiting.pending.call_id,
                    {
                        "id": waiting.pending.call_id,
                        "name": waiting.pending.tool,
                        "executor": "client",
                        "error": f"run {why}",
                        "code": "cancelled",
                    },
                )
        self._show_pending()
        self.state.phase = "ended"

    # --- what the run shows -----------------------------------------------------------

    def progress(self, status: str) -> RunProgress:
        """The ``describe_run`` answer."""
        return RunProgress(
            run_id=self.spec.run_id,
            session_id=self.spec.session_id,
            status=status,
            phase=self.state.phase,
            model_calls=self.state.model_calls,
            pending_approvals=self.state.approvals.pending,
            pending_tool_calls=[
                c.pending for c in self.state.client_calls.values() if c.result is None
            ],
            tool_results=self.state.results[-50:],
        )

    def _phase(self, phase: Any) -> None:
        # One waiting call keeps the run "awaiting"; another one finishing does not hide it.
        if phase in ("model", "tools"):
            if self.state.approvals.pending:
                phase = "awaiting_approval"
            elif any(c.result is None for c in self.state.client_calls.values()):
                phase = "awaiting_tool_result"
        self.state.phase = phase
        workflow.set_current_details(f"running · {phase.replace('_', ' ')}")

    async def _tell_session(self) -> None:
        """Tell the session what the loop waits for now, so its ``describe`` lists it."""
        parent = workflow.info().parent
        if parent is None:
            return
        pending = self.state.approvals.pending
        waiting: Literal["awaiting_approval", "awaiting_tool_result"] | None = None
        if pending:
            waiting = "awaiting_approval"
        elif any(c.result is None for c in self.state.client_calls.values()):
            waiting = "awaiting_tool_result"
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                RUN_WAITING,
                RunWaiting(
                    run_id=self.spec.run_id,
                    token=self.spec.token,
                    waiting=waiting,
                    pending_approvals=pending,
                ),
            )
        except ApplicationError as exc:  # the session is gone: nobody to tell
            workflow.logger.warning("could not tell the session what run waits for: %s", exc)

    def _show_pending(self) -> None:
        count = len(self.state.approvals.pending)
        pairs: list[SearchAttributeUpdate[Any]] = [
            search_attributes.PENDING_APPROVALS.value_set(count),
            search_attributes.SESSION_ID.value_set(self.spec.session_id),
        ]
        workflow.upsert_search_attributes(pairs)

    async def _event(self, type: EventType, call_id: str, data: dict[str, Any]) -> None:
        self.state.events += 1
        await record(
            LifecycleRecord(
                event_id=lifecycle_event_id(f"{self.spec.run_id}/loop", self.state.events, type),
                session_id=self.spec.session_id,
                run_id=self.spec.run_id,
                type=type.value,
                data=data,
                provider=self.spec.provider,
            )
        )


__all__ = ["AGENT_LOOP", "AgentLoop", "LoopState"]
