"""``/v1/sessions``: create, list (the tenant's, with filters), get, complete, cancel."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import SessionView
from agent_session_manager.core.errors import error
from agent_session_manager.core.models import new_session_id
from agent_session_manager.core.status import SessionStatus
from agent_session_manager.gateway.deps import Caller, OwnedSession, Parts
from agent_session_manager.gateway.models import (
    CreateSession,
    Reason,
    SessionItem,
    SessionList,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])

#: Filter values go into a visibility query inside double quotes: no quote, backslash or
#: control character can get in, so a filter cannot widen the query beyond its tenant.
_FILTER = r"^[^\"'\\\x00-\x1f]{1,255}$"
_FILTER_RE = re.compile(_FILTER)
Filter = Annotated[str | None, Query(pattern=_FILTER, max_length=255)]


@router.post("", status_code=201, response_model=SessionView)
async def create_session(body: CreateSession, caller: Caller, gw: Parts) -> SessionView:
    """Start a session of the caller's tenant (the gateway draws its id)."""
    # The session's claim records its tenant (``EventStore.claim_session``), in the same
    # transaction that makes the id the session's, before anything else is written for it:
    # the same path as a session started from Python with ``tenant=``.
    return await gw.client.start_session(
        agent_id=body.agent_id,
        session_id=new_session_id(uuid.uuid4()),
        provider=body.provider,
        model=body.model,
        system_prompt=body.system_prompt,
        metadata=body.metadata,
        tags=body.tags,
        provider_options=body.provider_options,
        mock=body.mock,
        activate=body.activate,
        retry=body.retry,
        run_timeout_seconds=body.run_timeout_seconds,
        idle_timeout_seconds=body.idle_timeout_seconds,
        max_concurrent_runs=body.max_concurrent_runs,
        max_queued_runs=body.max_queued_runs,
        multitask_strategy=body.multitask_strategy,
        tools=body.tools,
        client_tools=body.client_tools,
        tool_policies=body.tool_policies,
        max_turns=body.max_turns,
        tenant=caller.tenant,
    )


@router.get("", response_model=SessionList)
async def list_sessions(
    caller: Caller,
    gw: Parts,
    status: Annotated[SessionStatus | None, Query()] = None,
    agent_id: Filter = None,
    provider: Filter = None,
    tag: Filter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SessionList:
    """The tenant's sessions, newest first (Temporal visibility: a just-started session can
    take a moment to appear)."""
    clauses = [f'{search_attributes.TENANT.name} = "{caller.tenant}"']
    for key, value in (
        (search_attributes.STATUS, status.value if status else None),
        (search_attributes.AGENT_ID, agent_id),
        (search_attributes.PROVIDER, provider),
        (search_attributes.TAGS, tag),
    ):
        if value is not None:
            if not _FILTER_RE.match(value):  # the Query pattern guarantees it: say so twice
                raise error("validation_error", f"bad filter value for {key.name}")
            clauses.append(f'{key.name} = "{value}"')
    rows = await gw.client.list_sessions(" AND ".join(clauses), limit=limit)
    return SessionList(
        sessions=[
            SessionItem(
                session_id=r.session_id,
                agent_id=r.agent_id,
                provider=r.provider,
                status=r.status,
                total_tokens=r.total_tokens,
                workflow_status=r.workflow_status,
                started_at=r.started_at,
            )
            for r in rows
        ]
    )


@router.get("/{session_id}", response_model=SessionView)
async def get_session(session_id: OwnedSession, gw: Parts) -> SessionView:
    """Status, runs, usage (the ``describe`` query)."""
    return await gw.client.describe(session_id)


@router.post("/{session_id}/complete", response_model=SessionView)
async def complete_session(
    session_id: OwnedSession, gw: Parts, body: Reason | None = None
) -> SessionView:
    """End the session ``completed``."""
    return await gw.client.complete_session(session_id, body.reason if body else None)


@router.post("/{session_id}/cancel", status_code=202, response_model=SessionView)
async def cancel_session(
    session_id: OwnedSession, gw: Parts, body: Reason | None = None
) -> SessionView:
    """Cancel the session and its runs (a signal: the answer is the status as it was sent;
    follow the events for ``session_cancelled``)."""
    await gw.client.cancel_session(session_id, body.reason if body else None)
    return await gw.client.describe(session_id)
