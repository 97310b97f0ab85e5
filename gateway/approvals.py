"""``/v1/sessions/{id}/approvals`` and ``/v1/sessions/{id}/runs/{run_id}/…``: the agent loop's
human side — pending approvals, approve, deny — and client-side tool results.

Everything goes through the public :class:`SessionClient` API (``describe_run``, ``approve``,
``deny``, ``submit_tool_result``) behind the same tenancy check as every endpoint: the session
must be the caller's tenant's (:data:`OwnedSession`) and the run one of that session's
(``run_not_found`` otherwise), so another tenant's run id answers 404 like an unknown one.
Decisions record the deciding key (``by``: ``key:<key id>``, never the key) for the audit
trail the run's events keep.
"""

from __future__ import annotations

from fastapi import APIRouter

from agent_session_manager.core.tools import (
    ApprovalResolution,
    PendingApproval,
    RunProgress,
    ToolResult,
)
from agent_session_manager.gateway.deps import Caller, OwnedSession, Parts
from agent_session_manager.gateway.models import ApprovalList, Decision, SubmitToolResult
from agent_session_manager.gateway.runs import owned_run

router = APIRouter(prefix="/v1/sessions/{session_id}", tags=["approvals"])


async def _progress(gw: Parts, session_id: str, run_id: str) -> RunProgress:
    run = await owned_run(gw, session_id, run_id)
    progress = await gw.client.describe_run(run_id)
    if progress is not None:
        return progress
    # A run without tools has no loop to describe: it waits for nobody.
    return RunProgress(
        run_id=run_id,
        session_id=session_id,
        status=run.status,
        phase="ended" if run.status.is_terminal else "model",
    )


@router.get("/approvals", response_model=ApprovalList)
async def session_approvals(session_id: OwnedSession, gw: Parts) -> ApprovalList:
    """The approvals every live run of the session waits for, asked of each run (not of
    visibility, which lags)."""
    view = await gw.client.describe(session_id)
    pending: list[PendingApproval] = []
    for run in view.runs:
        if not run.status.is_terminal:  # an ended run resolved all its approvals
            progress = await gw.client.describe_run(run.run_id)
            if progress is not None:
                pending.extend(progress.pending_approvals)
    return ApprovalList(approvals=pending)


@router.get("/runs/{run_id}/progress", response_model=RunProgress)
async def run_progress(session_id: OwnedSession, run_id: str, gw: Parts) -> RunProgress:
    """Where the run's agent loop is: phase, pending approvals, client-side calls it waits
    for, the tool results so far."""
    return await _progress(gw, session_id, run_id)


@router.get("/runs/{run_id}/approvals", response_model=ApprovalList)
async def run_approvals(session_id: OwnedSession, run_id: str, gw: Parts) -> ApprovalList:
    """The approvals the run waits for."""
    return ApprovalList(approvals=(await _progress(gw, session_id, run_id)).pending_approvals)


@router.post("/runs/{run_id}/approve", response_model=ApprovalResolution)
async def approve(
    session_id: OwnedSession, run_id: str, body: Decision, caller: Caller, gw: Parts
) -> ApprovalResolution:
    """Grant the pending approval named by its digest: exactly one decision takes effect
    (409 ``approval_already_resolved`` for a second), a digest for other arguments is 409
    ``approval_mismatch`` (with ``call_id``) or 404 ``approval_not_found``."""
    await owned_run(gw, session_id, run_id)
    return await gw.client.approve(
        run_id, body.digest, call_id=body.call_id, reason=body.reason, by=f"key:{caller.key_id}"
    )


@router.post("/runs/{run_id}/deny", response_model=ApprovalResolution)
async def deny(
    session_id: OwnedSession, run_id: str, body: Decision, caller: Caller, gw: Parts
) -> ApprovalResolution:
    """Deny the pending approval named by its digest (the model is told it was not approved)."""
    await owned_run(gw, session_id, run_id)
    return await gw.client.deny(
        run_id, body.digest, call_id=body.call_id, reason=body.reason, by=f"key:{caller.key_id}"
    )


@router.post("/runs/{run_id}/tool-results", response_model=ToolResult)
async def submit_tool_result(
    session_id: OwnedSession, run_id: str, body: SubmitToolResult, gw: Parts
) -> ToolResult:
    """Hand the run the result of a client-side tool call it waits for (404
    ``tool_call_not_found`` for a call it does not wait for, 409
    ``tool_result_already_submitted`` for a second result)."""
    await owned_run(gw, session_id, run_id)
    return await gw.client.submit_tool_result(
        run_id, body.call_id, body.output, is_error=body.is_error
    )
