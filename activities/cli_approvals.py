"""How an agent CLI's approval request (Codex, Claude Code) reaches a human and back.

The CLI asks while the provider activity runs. :class:`RunApprovals` (the provider request's
``approvals``) decides by the session's tool policy (``tool_policies``, keyed by the CLI's
tool name, e.g. ``command_execution``, ``file_change``, ``Bash``): ``always`` / ``never``
answer at once; ``ask`` computes the action digest (:func:`core.tools.action_digest` over the
CLI's call id, tool and canonical arguments), emits ``tool_approval_requested``, tells the run
(signal ``cli_approval_requested``) and the session (``run_waiting``, so ``describe`` lists
it), and polls the run's ``describe_run`` until the digest is resolved by ``approve`` /
``deny`` (see :mod:`workflows.cli_approvals`). Expiry is this side's own ``deny`` with reason
``expired``: the run still takes exactly one resolution. A cancelled attempt resolves as
denied (the run denies whatever is pending as it ends). The request names its attempt: when a
worker dies while its CLI waits, the retried attempt tells the run it started
(:func:`attempt_started`), the run resolves the dead attempt's request as superseded, and
the retried attempt records that end in the log (the dead one cannot).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import (
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError

from agent_session_manager.activities.providers.base import EventSink
from agent_session_manager.core.contract import (
    AttemptStarted,
    RunSpec,
    RunWaiting,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.core.protocol import (
    ATTEMPT_STARTED,
    CLI_APPROVAL_REQUESTED,
    DENY,
    DESCRIBE_RUN,
    RUN_WAITING,
)
from agent_session_manager.core.tools import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalResolution,
    CliApprovalRequest,
    PendingApproval,
    RunProgress,
    action_digest,
    sha256_of,
)
from agent_session_manager.store import EventStore

log = logging.getLogger(__name__)

#: How often the waiting activity asks the run whether the approval was decided.
POLL_SECONDS = 0.5
#: How long a retried attempt's background recording waits for the run to settle what its
#: predecessors asked (a query may wait seconds for a worker after a crash).
_RECORD_SECONDS = 60.0
_RECORD_POLL_SECONDS = 0.2
#: The events that tell whether a request was answered.
_APPROVAL_EVENTS = (
    EventType.TOOL_APPROVAL_REQUESTED.value,
    EventType.TOOL_APPROVAL_GRANTED.value,
    EventType.TOOL_APPROVAL_DENIED.value,
)


def cli_policy_version(tool: str, policy: ApprovalPolicy) -> str:
    """The policy version of a CLI tool: the CLI defines the tool, we only know its name."""
    return sha256_of({"cli_tool": tool, "policy": policy})[7:23]


class RunApprovals:
    """Approvals for one provider attempt of one run (the ``approvals`` of its request)."""

    def __init__(self, spec: RunSpec, sink: EventSink, poll_seconds: float = POLL_SECONDS):
        self.spec = spec
        self.sink = sink
        self.poll_seconds = poll_seconds

    def policy(self, tool: str, default: ApprovalPolicy) -> ApprovalPolicy:
        """The session's or run's override for ``tool``, else the provider's default."""
        return self.spec.tool_policies.get(tool, default)

    async def decide(
        self,
        *,
        call_id: str,
        tool: str,
        arguments: dict[str, Any],
        default: ApprovalPolicy,
        timeout_seconds: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[bool, str | None]:
        """Whether the CLI may go on, and why (the reason the human or the policy gave)."""
        policy = self.policy(tool, default)
        arguments_sha256 = sha256_of(arguments)
        version = cli_policy_version(tool, policy)
        expires_at = None
        if policy == "ask" and timeout_seconds:
            expires_at = (datetime.now(UTC) + timedelta(seconds=timeout_seconds)).isoformat()
        digest = action_digest(
            call_id=call_id,
            tool=tool,
            arguments_sha256=arguments_sha256,
            policy_version=version,
            expires_at=expires_at,
        )
        data = {
            **(extra or {}),
            "id": call_id,
            "name": tool,
            "digest": digest,
            "arguments_sha256": arguments_sha256,
            "policy": policy,
            "policy_version": version,
            "expires_at": expires_at,
        }
        await self.sink.emit(EventType.TOOL_APPROVAL_REQUESTED, data)
        if policy != "ask":
            granted = policy == "always"
            reason = f"policy {policy}"
            await self._resolved(data, granted, reason, "policy")
            return granted, reason
        pending = PendingApproval(
            run_id=self.spec.run_id,
            session_id=self.spec.session_id,
            call_id=call_id,
            tool=tool,
            arguments_sha256=arguments_sha256,
            policy_version=version,
            expires_at=expires_at,
            digest=digest,
            input=arguments,
        )
        await self.sink.flush()
        try:
            granted, said = await self._wait(pending, timeout_seconds)
        except asyncio.CancelledError:
            await asyncio.shield(self._resolved(data, False, "run cancelled", "cancel"))
            raise
        await self._resolved(data, granted, said, "human")
        return granted, said

    async def _resolved(
        self, data: dict[str, Any], granted: bool, reason: str | None, by: str
    ) -> None:
        await self.sink.emit(
            EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
            {**data, "decided_by": by, "reason": reason},
        )

    async def _wait(
        self, pending: PendingApproval, timeout_seconds: float | None
    ) -> tuple[bool, str | None]:
        client = activity.client()
        run = client.get_workflow_handle(run_workflow_id(self.spec.run_id))
        session = client.get_workflow_handle(session_workflow_id(self.spec.session_id))
        info = activity.info()
        request = CliApprovalRequest(
            token=self.spec.token,
            approval=pending,
            activity_id=info.activity_id,
            attempt=info.attempt,
        )
        await run.signal(CLI_APPROVAL_REQUESTED, request)
        await _tell_session(self.spec, session, [pending])
        loop = asyncio.get_running_loop()
        expires = None if not timeout_seconds else loop.time() + timeout_seconds
        try:
            while True:
                raw = await run.query(DESCRIBE_RUN)
                progress = None if raw is None else RunProgress.model_validate(raw)
                for done in progress.resolved_approvals if progress else []:
                    if done.digest == pending.digest:
                        return done.decision == "granted", done.reason
                if expires is not None and loop.time() >= expires:
                    expires = None  # one attempt: whatever the run says next is the answer
                    try:
                        await run.execute_update(
                            DENY, ApprovalDecision(digest=pending.digest, reason="expired")
                        )
                    except WorkflowUpdateFailedError:
                        pass  # a human resolved it first: the next poll reads how
                activity.heartbeat()
                await asyncio.sleep(self.poll_seconds)
        finally:
            await asyncio.shield(_tell_session(self.spec, session, []))


async def attempt_started(spec: RunSpec, store: EventStore) -> None:
    """A retried provider attempt starts: tell the run (``attempt_started``), which resolves
    what earlier attempts' CLIs still wait for as superseded even if this attempt's never asks
    again (a dead attempt cannot expire its own), and the session, which lists nothing waiting
    for the run until this attempt asks. Only retries: a model call's first attempt follows a
    call that ended, and a CLI that ends has had its every request resolved.

    The attempts that asked are gone and cannot record how their requests ended: what the log
    shows asked and never ended is recorded in the background once the run has settled it
    (:func:`_record_ends`), without holding up this attempt."""
    info = activity.info()
    started = AttemptStarted(token=spec.token, activity_id=info.activity_id, attempt=info.attempt)
    try:
        client = activity.client()
    except RuntimeError as exc:  # no client (a unit test)
        log.info("run %s: attempt %d start not signalled: %s", spec.run_id, info.attempt, exc)
        return
    orphaned = await _unended(store, spec)
    run = client.get_workflow_handle(run_workflow_id(spec.run_id))
    try:
        await run.signal(ATTEMPT_STARTED, started)
    except RPCError as exc:  # the run is gone
        log.info("run %s: attempt %d start not signalled: %s", spec.run_id, info.attempt, exc)
        return
    await _tell_session(spec, client.get_workflow_handle(session_workflow_id(spec.session_id)), [])
    if orphaned:
        task = asyncio.create_task(_record_ends(run, store, spec, info.attempt, orphaned))
        _RECORDING.add(task)
        task.add_done_callback(_RECORDING.discard)


#: The background recordings of superseded requests' ends (held: the loop keeps weak refs).
_RECORDING: set[asyncio.Task[None]] = set()


async def _unended(store: EventStore, spec: RunSpec) -> dict[str, dict[str, Any]]:
    """The data of the run's ``tool_approval_requested`` events that no grant or denial
    followed in the log, by digest."""
    try:
        events = await store.events(
            spec.session_id, run_id=spec.run_id, types=_APPROVAL_EVENTS, strict=False
        )
    except AsmError as err:  # the log is unreachable: the run's resolutions still stand
        log.warning("run %s: its approval requests not read: %s", spec.run_id, err.message)
        return {}
    asked: dict[str, dict[str, Any]] = {}
    for event in events:
        digest = str(event.data.get("digest", ""))
        if event.type is not EventType.TOOL_APPROVAL_REQUESTED:
            asked.pop(digest, None)
        elif event.data.get("policy") == "ask":  # others are answered by the policy at once
            asked[digest] = event.data
    return asked


async def _record_ends(
    run: Any, store: EventStore, spec: RunSpec, attempt: int, asked: dict[str, dict[str, Any]]
) -> None:
    """Record how the run settled ``asked`` (requests of attempts that are gone), once it has:
    ``tool_approval_denied`` (``decided_by`` ``supersede``), or what a human decided just
    before. Each id names the request, so a second retried attempt writes nothing twice."""
    left = dict(asked)
    try:
        async with asyncio.timeout(_RECORD_SECONDS):
            while left:
                progress = await _describe(run)
                settled = [
                    done
                    for done in (progress.resolved_approvals if progress else [])
                    if done.digest in left
                ]
                if settled:
                    try:
                        await store.append(
                            [_ended(spec, attempt, left[done.digest], done) for done in settled]
                        )
                    except AsmError as err:  # an outage: written on a later round
                        log.info("run %s: approval ends not written yet: %s", spec.run_id, err)
                    else:
                        for done in settled:
                            left.pop(done.digest, None)
                if left:
                    await asyncio.sleep(_RECORD_POLL_SECONDS)
    except TimeoutError:
        log.warning(
            "run %s: %d approval ends not recorded: not settled by the run, or not written, "
            "within %.0f s",
            spec.run_id,
            len(left),
            _RECORD_SECONDS,
        )


def _ended(
    spec: RunSpec, attempt: int, asked: dict[str, Any], done: ApprovalResolution
) -> EventDraft:
    superseded = done.reason is not None and done.reason.startswith("superseded")
    granted = done.decision == "granted"
    return EventDraft(
        id=f"{spec.run_id}/approval-ended/{done.digest}",
        session_id=spec.session_id,
        run_id=spec.run_id,
        attempt=attempt,
        type=EventType.TOOL_APPROVAL_GRANTED if granted else EventType.TOOL_APPROVAL_DENIED,
        provider=spec.provider,
        data={
            **asked,
            "decided_by": "supersede" if superseded else "human",
            "reason": done.reason,
        },
    )


async def _describe(run: Any) -> RunProgress | None:
    """The run's ``describe_run``; None when it cannot say (gone, or no worker answers)."""
    try:
        raw = await run.query(DESCRIBE_RUN)
    except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        log.info("describe_run of %s failed: %s", run.id, exc)
        return None
    return None if raw is None else RunProgress.model_validate(raw)


async def _tell_session(spec: RunSpec, session: Any, pending: list[PendingApproval]) -> None:
    waiting = RunWaiting(
        run_id=spec.run_id,
        token=spec.token,
        waiting="awaiting_approval" if pending else None,
        pending_approvals=pending,
    )
    try:
        await session.signal(RUN_WAITING, waiting)
    except RPCError as exc:  # a run started on its own: no session to tell
        log.info("run %s: session not told of its approval: %s", spec.run_id, exc)


__all__ = ["POLL_SECONDS", "RunApprovals", "attempt_started", "cli_policy_version"]
