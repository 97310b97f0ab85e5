"""``AgentRun``: one run of a session, as a child workflow.

It runs the provider activity under a retry policy derived from the error taxonomy, enforces
the run deadline, and ends in Temporal's own terms so the UI tells the truth: completed
(result :class:`RunResult`), failed (``ApplicationError`` whose type is the taxonomy code),
timed out (type ``timeout``) or cancelled.

How a run ends is one protocol, :mod:`core.lifecycle` (drawn in ``docs/architecture.md``). On
the hot path the activity itself records ``run_started`` and ``run_completed`` and signals the
session ``run_finished``, so a successful run costs two workflow tasks, like a bare child
running one activity. The other endings are recorded here, through the ``record_lifecycle``
local activity, *after* the provider activity has let go (so no streamed delta can land after
the terminal event), and signalled to the session before this workflow ends; the result rides
on the final error (``details["run"]``) for :func:`core.lifecycle.run_result_from_error`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from agent_session_manager.workflows.agent_loop import AGENT_LOOP, AgentLoop, let_go_on_cancel
from agent_session_manager.workflows.cli_approvals import ATTEMPT_STARTED_PATCH, CliApprovals
from agent_session_manager.workflows.inputs import argument, fail, no_arguments, parse, unknown
from agent_session_manager.workflows.lifecycle import record

with workflow.unsafe.imports_passed_through():
    from agent_session_manager.core import search_attributes
    from agent_session_manager.core.contract import (
        AttemptFailed,
        AttemptStarted,
        ProviderCall,
        ProviderOutcome,
        RetrySettings,
        RunFinished,
        RunResult,
        RunSpec,
    )
    from agent_session_manager.core.errors import AsmError, error
    from agent_session_manager.core.lifecycle import completed_result, ended_result, run_ended
    from agent_session_manager.core.protocol import (
        APPROVE,
        ATTEMPT_FAILED,
        ATTEMPT_STARTED,
        CLI_APPROVAL_REQUESTED,
        DENY,
        DESCRIBE_RUN,
        RUN_FINISHED,
        RUN_STATUS,
        RUN_WORKFLOW,
        STREAM_PROVIDER_ACTIVITY,
        SUBMIT_TOOL_RESULT,
    )
    from agent_session_manager.core.status import RunStatus
    from agent_session_manager.core.temporal import from_failure, retry_policy, to_application_error
    from agent_session_manager.core.tools import (
        ApprovalDecision,
        ApprovalResolution,
        CliApprovalRequest,
        RunProgress,
        ToolResult,
        ToolResultSubmission,
    )

_FROM_WORKFLOW = re.compile(r"^Cancel requested by workflow with run id \S+ with reason: ")

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


def _cancelled() -> AsmError:
    """The error a cancelled run ends with, saying why when the cancel request said.

    The reason comes with Temporal's cancel request (``cancel_run``'s, or ``temporal workflow
    cancel --reason``'s): it lands in ``run_cancelled``, the run's row and its result.
    """
    reason = workflow.cancellation_reason()
    if not reason:
        return error("cancelled", "run cancelled")
    # A cancel sent by another workflow (the session) reaches us worded by the server:
    # "Cancel requested by workflow with run id … with reason: <reason>". Keep the reason.
    reason = _FROM_WORKFLOW.sub("", reason, count=1) or reason
    return error("cancelled", f"run cancelled: {reason[:500]}", details={"reason": reason[:500]})


@workflow.defn(name=RUN_WORKFLOW)
class AgentRun:
    """One run: provider activity, retries, deadline, cancellation, lifecycle events."""

    def __init__(self) -> None:
        self._status = RunStatus.RUNNING
        #: The agent loop, for a run with tools under the ``agent-loop`` patch; else ``None``.
        self._loop: AgentLoop | None = None
        #: Approvals an agent CLI asked for (:mod:`workflows.cli_approvals`); set by ``run``.
        self._cli: CliApprovals | None = None

    @workflow.query(name=RUN_STATUS)
    def status(self, *args: Any) -> RunStatus:
        """The run's current status (no arguments)."""
        no_arguments(args, RUN_STATUS)
        return self._status

    @workflow.query(name=DESCRIBE_RUN)
    def describe_run(self, *args: Any) -> RunProgress | None:
        """Where the agent loop is: pending approvals and client-side calls (no arguments).

        ``None`` for a run without tools (it has no loop to describe).
        """
        no_arguments(args, DESCRIBE_RUN)
        cli = self._cli
        # An ended run waits for nobody: a CLI request its dead attempt left is not listed.
        pending = cli.pending if cli is not None and not self._status.is_terminal else []
        if self._loop is not None:
            progress = self._loop.progress(self._status.value)
        elif cli is not None and cli.entries:
            progress = RunProgress(
                run_id=cli.run_id,
                session_id=cli.session_id,
                status=self._status.value,
                phase="awaiting_approval" if pending else "model",
            )
        else:
            return None
        if cli is not None and cli.entries:
            progress.pending_approvals += pending
            progress.resolved_approvals = cli.resolved
        return progress

    @workflow.query(dynamic=True)
    def _unknown_query(self, name: str, args: Sequence[RawValue]) -> None:
        """Answers every query this workflow does not define with a typed error."""
        unknown("query", name, [RUN_STATUS, DESCRIBE_RUN])

    @workflow.update(name=APPROVE)
    async def approve(self, *args: Any) -> ApprovalResolution:
        """Grant the pending approval whose digest is named (one :class:`ApprovalDecision`)."""
        return self._resolve(argument(args, ApprovalDecision, APPROVE), "granted")

    @approve.validator
    def _validate_approve(self, *args: Any) -> None:
        self._find_approval(argument(args, ApprovalDecision, APPROVE))

    @workflow.update(name=DENY)
    async def deny(self, *args: Any) -> ApprovalResolution:
        """Deny the pending approval whose digest is named (one :class:`ApprovalDecision`)."""
        return self._resolve(argument(args, ApprovalDecision, DENY), "denied")

    @deny.validator
    def _validate_deny(self, *args: Any) -> None:
        self._find_approval(argument(args, ApprovalDecision, DENY))

    def _cli_book(self, decision: ApprovalDecision) -> CliApprovals | None:
        """The CLI book when ``decision`` is for an agent CLI's approval; else ``None``."""
        cli = self._cli
        if cli is None or self._status.is_terminal:
            return None
        if self._loop is None and cli.entries:
            return cli
        return cli if decision in cli else None

    def _find_approval(self, decision: ApprovalDecision) -> None:
        cli = self._cli_book(decision)
        if cli is not None:
            cli.find(decision)
        else:
            self._looping().find_approval(decision)

    def _resolve(
        self, decision: ApprovalDecision, outcome: Literal["granted", "denied"]
    ) -> ApprovalResolution:
        cli = self._cli_book(decision)
        if cli is not None:
            resolution = cli.resolve(decision, outcome)
            self._show_cli_pending()
            return resolution
        return self._looping().resolve(decision, outcome)

    @workflow.update(name=SUBMIT_TOOL_RESULT)
    async def submit_tool_result(self, *args: Any) -> ToolResult:
        """A client-side tool call's result, from the application (a ToolResultSubmission)."""
        arg = argument(args, ToolResultSubmission, SUBMIT_TOOL_RESULT)
        return self._looping().submit(arg)

    @submit_tool_result.validator
    def _validate_submit_tool_result(self, *args: Any) -> None:
        arg = argument(args, ToolResultSubmission, SUBMIT_TOOL_RESULT)
        self._looping().check_submission(arg)

    def _looping(self) -> AgentLoop:
        if self._loop is None or self._status.is_terminal:
            fail(
                error(
                    "invalid_operation",
                    "this run has no agent loop waiting (no tools, or it has ended)",
                )
            )
        return self._loop

    @workflow.signal(dynamic=True)
    def _signal(self, name: str, args: Sequence[RawValue]) -> None:
        """Every signal arrives here, raw: ``attempt_failed``, ``attempt_started`` and
        ``cli_approval_requested``, from the provider activity.

        The signal itself is the record (the run's history keeps every attempt's error, where
        Temporal keeps only the last failure); the current details say it while retries go on.
        Anything else, or a payload that does not decode, is logged and dropped: a signal is
        applied again on every replay, so it must never raise.
        """
        if name == CLI_APPROVAL_REQUESTED:
            self._cli_approval(name, args)
            return
        if name == ATTEMPT_STARTED:
            self._attempt_started(name, args)
            return
        if name != ATTEMPT_FAILED:
            workflow.logger.warning("run: unknown signal %s dropped", name[:80])
            return
        try:
            failed = parse(args, AttemptFailed, name)
        except AsmError as err:
            workflow.logger.warning("run: signal %s dropped: %s", name, err.message)
            return
        if self._status is RunStatus.RUNNING:
            then = "retrying" if failed.retryable else "giving up"
            workflow.set_current_details(
                f"attempt {failed.attempt} failed: [{failed.code}] {failed.message[:300]} · {then}"
            )

    def _cli_approval(self, name: str, args: Sequence[RawValue]) -> None:
        """An agent CLI waits for a human (see :mod:`workflows.cli_approvals`)."""
        try:
            request = parse(args, CliApprovalRequest, name)
        except AsmError as err:
            workflow.logger.warning("run: signal %s dropped: %s", name, err.message)
            return
        if self._cli is None or self._status.is_terminal or not self._cli.add_request(request):
            workflow.logger.warning("run: signal %s dropped: not this run's request", name)
            return
        self._show_cli_pending()

    def _attempt_started(self, name: str, args: Sequence[RawValue]) -> None:
        """A retried provider attempt starts: the CLI approvals earlier attempts left are
        dead (see :meth:`CliApprovals.attempt_started`)."""
        try:
            started = parse(args, AttemptStarted, name)
        except AsmError as err:
            workflow.logger.warning("run: signal %s dropped: %s", name, err.message)
            return
        cli, attempt = self._cli, started.order()
        if cli is None or self._status.is_terminal or not cli.is_news(started.token, attempt):
            return  # not ours, re-sent, or too late: nothing changes
        if not workflow.patched(ATTEMPT_STARTED_PATCH):
            return  # a worker of the previous release dropped it here
        if cli.attempt_started(attempt):
            self._show_cli_pending()

    def _show_cli_pending(self) -> None:
        """``AsmPendingApprovals`` for a run without a loop (the loop keeps its own count)."""
        cli = self._cli
        if self._loop is not None or cli is None:
            return
        workflow.upsert_search_attributes(
            [
                search_attributes.PENDING_APPROVALS.value_set(len(cli.pending)),
                search_attributes.SESSION_ID.value_set(cli.session_id),
            ]
        )

    @workflow.update(dynamic=True)
    async def _unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        """Never runs: its validator rejects every update this workflow does not define."""

    @_unknown_update.validator
    def _reject_unknown_update(self, name: str, args: Sequence[RawValue]) -> None:
        unknown("update", name, [APPROVE, DENY, SUBMIT_TOOL_RESULT])

    @workflow.run
    async def run(self, *args: Any) -> RunResult:
        """Execute the run to a terminal status.

        Takes one :class:`RunSpec`; ``*args`` so that no input can fail the workflow task
        (see :mod:`workflows.inputs`): a bad one fails the run at once, typed.
        """
        spec = argument(args, RunSpec, RUN_WORKFLOW)
        self._cli = CliApprovals(spec.run_id, spec.session_id, spec.token)
        # Decided here, in the first activation, and only for runs with tools: runs without
        # issue exactly the commands they always did, and keep replaying.
        if (spec.tools or spec.client_tools) and workflow.patched(AGENT_LOOP):
            return await self._agent_loop(spec)
        model = spec.model or "default"
        workflow.set_current_details(f"running · {spec.provider} · {model} · turn {spec.turn}")
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
                return self._completed(spec, results[0])
            await self._end(spec, RunStatus.CANCELLED, _cancelled())
            raise
        except ActivityError as exc:
            if isinstance(exc.cause, CancelledError):
                await self._end(spec, RunStatus.CANCELLED, _cancelled())
                raise asyncio.CancelledError() from exc
            return await _decided(self._end(spec, RunStatus.FAILED, from_failure(exc)))
        return self._completed(spec, outcome)

    def _model_call(self, spec: RunSpec, deadline: timedelta) -> Any:
        """One model call of the loop: the provider activity, as the run has always run it."""
        model = spec.model or "default"

        def start(call: ProviderCall) -> Any:
            return let_go_on_cancel(
                workflow.start_activity(
                    STREAM_PROVIDER_ACTIVITY,
                    call,
                    result_type=ProviderOutcome,
                    schedule_to_close_timeout=deadline + timedelta(seconds=30),
                    heartbeat_timeout=timedelta(seconds=spec.heartbeat_timeout_seconds),
                    retry_policy=provider_retry_policy(spec.retry),
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=f"{spec.provider} · {model} · turn {spec.turn} · call {call.step}",
                )
            )

        return start

    async def _agent_loop(self, spec: RunSpec) -> RunResult:
        """The run as an agent loop (:mod:`workflows.agent_loop`), under the same deadline,
        cancellation and endings as a single model call."""
        deadline = timedelta(seconds=spec.timeout_seconds) if spec.timeout_seconds else NO_DEADLINE
        loop = self._loop = AgentLoop(spec)
        task = asyncio.ensure_future(loop.run(self._model_call(spec, deadline)))
        try:
            done, _ = await workflow.wait([task], timeout=deadline.total_seconds())
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await loop.clear("timeout")
                timeout = error(
                    "timeout",
                    f"run exceeded its deadline of {deadline.total_seconds():g}s",
                    details={"timeout_seconds": deadline.total_seconds()},
                )
                return await _decided(self._end(spec, RunStatus.TIMEOUT, timeout))
            outcome = task.result()
        except asyncio.CancelledError:
            task.cancel()
            results = await asyncio.gather(task, return_exceptions=True)
            if isinstance(results[0], ProviderOutcome):  # it finished as the cancel arrived
                return self._completed(spec, results[0])
            await loop.clear("cancelled")
            await self._end(spec, RunStatus.CANCELLED, error("cancelled", "run cancelled"))
            raise
        except ActivityError as exc:
            await loop.clear("cancelled")
            if isinstance(exc.cause, CancelledError):
                await self._end(spec, RunStatus.CANCELLED, error("cancelled", "run cancelled"))
                raise asyncio.CancelledError() from exc
            return await _decided(self._end(spec, RunStatus.FAILED, from_failure(exc)))
        except AsmError as err:  # max_turns_exceeded
            await loop.clear("cancelled")
            return await _decided(self._end(spec, RunStatus.FAILED, err))
        loop.state.phase = "ended"
        return self._completed(spec, outcome)

    def _completed(self, spec: RunSpec, outcome: ProviderOutcome) -> RunResult:
        """The activity has recorded ``run_completed`` and told the session: just say so."""
        self._status = RunStatus.COMPLETED
        workflow.set_current_details(
            f"completed · {outcome.usage.total_tokens} tokens · {outcome.attempt} attempt(s)"
        )
        return completed_result(spec, outcome)

    async def _end(self, spec: RunSpec, status: RunStatus, err: AsmError) -> RunResult:
        """Write the terminal event, then end the workflow as failed/timed out (by raising)."""
        result = ended_result(spec, status, err)
        if self._cli is not None and self._cli.pending:
            self._cli.deny_all(f"run {status.value}")
            self._show_cli_pending()
        self._status = status
        await record(run_ended(spec, result, now=workflow.now().isoformat()))
        workflow.set_current_details(f"{status.value} · {err.code}: {err.message}")
        await self._tell_parent(RunFinished.of(result, spec.token))
        if status is RunStatus.CANCELLED:
            return result  # the caller re-raises the cancellation
        # The run is over: whatever the code, retrying the *workflow* would not help.
        err.retryable = False
        err.details = {**err.details, "run": result.model_dump(mode="json")}
        # Not chained to the activity's failure: ``err`` already says what it said, and the
        # chain would carry that failure (message, stack, details) a second time.
        raise to_application_error(err) from None

    async def _tell_parent(self, result: RunFinished) -> None:
        """Let the session free the run's slot before this workflow's end is visible."""
        parent = workflow.info().parent
        if parent is None:
            return
        try:
            await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                RUN_FINISHED, result
            )
        except ApplicationError as exc:  # parent gone: it accounts from our end instead
            workflow.logger.warning(
                "could not tell the session run %s ended: %s", result.run_id, exc
            )


__all__ = ["AgentRun", "provider_retry_policy"]
