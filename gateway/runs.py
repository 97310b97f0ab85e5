"""``/v1/sessions/{id}/runs``: submit, list, get, cancel, wait.

Runs live under their session's URL, so the tenancy check of the session covers them; a run id
that is not one of that session's runs is ``run_not_found`` (404), whoever's it is.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from agent_session_manager.core.contract import RunRef, RunView, SessionView, check_id
from agent_session_manager.core.errors import AsmError, error
from agent_session_manager.core.models import new_run_id
from agent_session_manager.gateway.deps import OwnedSession, Parts
from agent_session_manager.gateway.models import Reason, RunList, RunWait, SubmitRun

router = APIRouter(prefix="/v1/sessions/{session_id}/runs", tags=["runs"])

#: The longest one ``wait`` request holds its connection (a client waits longer by asking again).
MAX_WAIT_SECONDS = 60.0


def _no_run(session_id: str, run_id: str) -> AsmError:
    shown = run_id if len(run_id) <= 64 else run_id[:64] + "…"
    return error(
        "run_not_found",
        f"no run {shown!r} in session {session_id}: list them with GET .../runs",
        details={"run_id": shown},
    )


def _find(view: SessionView, run_id: str) -> RunView | None:
    run = next((r for r in view.runs if r.run_id == run_id), None)
    if run is None and run_id in view.queued:
        return RunView(run_id=run_id, turn=0, status="pending")
    return run


async def owned_run(gw: Parts, session_id: str, run_id: str) -> RunView:
    """The run ``run_id`` of the (owned) session, or ``run_not_found`` — whoever's it is."""
    try:
        check_id(run_id)
    except ValueError:
        raise _no_run(session_id, run_id) from None
    run = _find(await gw.client.describe(session_id), run_id)
    if run is None:
        raise _no_run(session_id, run_id)
    return run


@router.post("", status_code=202, response_model=RunRef)
async def submit_run(session_id: OwnedSession, body: SubmitRun, gw: Parts) -> RunRef:
    """Submit a run; answers once it is started or queued. Follow it on the events stream."""
    return await gw.client.submit_run(
        session_id,
        body.prompt,
        run_id=new_run_id(uuid.uuid4()),
        messages=body.messages,
        model=body.model,
        timeout_seconds=body.timeout_seconds,
        retry=body.retry,
        required_capabilities=body.required_capabilities,
        optional_capabilities=body.optional_capabilities,
        strategy=body.strategy,
        provider_options=body.provider_options,
        mock=body.mock,
        metadata=body.metadata,
    )


@router.get("", response_model=RunList)
async def list_runs(session_id: OwnedSession, gw: Parts) -> RunList:
    """The session's runs, oldest first, and the ids queued behind them."""
    view = await gw.client.describe(session_id)
    return RunList(runs=view.runs, queued=view.queued)


@router.get("/{run_id}", response_model=RunView)
async def get_run(session_id: OwnedSession, run_id: str, gw: Parts) -> RunView:
    """One run's status, usage and error."""
    return await owned_run(gw, session_id, run_id)


@router.post("/{run_id}/cancel", response_model=RunRef)
async def cancel_run(
    session_id: OwnedSession, run_id: str, gw: Parts, body: Reason | None = None
) -> RunRef:
    """Cancel a run and wait until it stopped; a finished run is a no-op that says so."""
    await owned_run(gw, session_id, run_id)
    return await gw.client.cancel_run(session_id, run_id, body.reason if body else None)


@router.get("/{run_id}/wait", response_model=RunWait)
async def wait_run(
    session_id: OwnedSession,
    run_id: str,
    gw: Parts,
    # The query parameter is the long-poll budget of the API, not a wrapper's timeout.
    timeout: Annotated[  # noqa: ASYNC109
        float, Query(ge=0, le=MAX_WAIT_SECONDS, allow_inf_nan=False)
    ] = 30.0,
) -> RunWait:
    """The run's result once it ended (failed, timed-out and cancelled runs included), waiting
    up to ``timeout`` seconds; ``done: false`` with its status when it is still going."""
    await owned_run(gw, session_id, run_id)
    try:
        async with asyncio.timeout(timeout):
            result = await gw.client.wait_run(run_id, session_id)
    except TimeoutError:
        return RunWait(done=False, run=await owned_run(gw, session_id, run_id))
    return RunWait(done=True, result=result)
