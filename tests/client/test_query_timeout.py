"""A call Temporal does not answer in time is a typed, retryable ``timeout``, not an
``internal_error``: the SDK reports its own RPC deadline as ``CANCELLED`` "Timeout expired"
(30 s for a query by default), e.g. while no worker polls the session's task queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.client.session_client import SessionClient, _translated
from agent_session_manager.core.contract import SessionSpec, session_workflow_id
from agent_session_manager.core.errors import CODES, AsmError, RuntimeFailure
from agent_session_manager.workflows.agent_session import AgentSession


def _assert_timeout(err: AsmError, session_id: str) -> None:
    assert err.code == "timeout" and err.retryable and isinstance(err, RuntimeFailure)
    assert "worker" in err.message and "try again" in err.message
    assert err.details["session_id"] == session_id
    # The SDK's deadline, or the server's own answer when its deadline came first (load).
    cause = err.details["cause"]
    assert "Timeout expired" in cause or "query timed out before a worker" in cause


async def test_a_query_no_worker_answers_is_a_retryable_timeout(
    temporal: Client, task_queue: str
) -> None:
    # A real session workflow on a queue no worker polls: the query is never answered.
    sid = f"s-{uuid.uuid4().hex[:12]}"
    handle = await temporal.start_workflow(
        AgentSession.run,
        SessionSpec(agent_id="a", provider="mock", session_id=sid),
        id=session_workflow_id(sid),
        task_queue=task_queue,
    )
    try:
        with pytest.raises(AsmError) as info, _translated(sid):
            await handle.query(AgentSession.describe, rpc_timeout=timedelta(seconds=1))
        _assert_timeout(info.value, sid)
    finally:
        await handle.terminate("test over")


async def test_start_session_without_a_worker_fails_typed_after_the_query_timeout(
    client: SessionClient,
) -> None:
    # No worker on this test's queue: _wait_started's describe query times out (30 s).
    sid = f"s-{uuid.uuid4().hex[:12]}"
    try:
        with pytest.raises(AsmError) as info:
            await asyncio.wait_for(
                client.start_session(agent_id="a", provider="mock", session_id=sid), 90
            )
        _assert_timeout(info.value, sid)
    finally:
        await client.temporal.get_workflow_handle(session_workflow_id(sid)).terminate("over")


@given(
    status=st.sampled_from(list(RPCStatusCode)),
    message=st.text(max_size=80),
    timeout_text=st.booleans(),
)
def test_rpc_failures_always_come_out_typed(
    status: RPCStatusCode, message: str, timeout_text: bool
) -> None:
    text = f"{message} Timeout expired" if timeout_text else message
    with pytest.raises(AsmError) as info, _translated("s-1"):
        raise RPCError(text, status, b"")
    assert info.value.code in CODES
    if status is RPCStatusCode.CANCELLED and timeout_text:
        # a deadline the SDK gave up on: retryable, whether or not the text also names a
        # broken connection (then it is an outage)
        assert info.value.code in ("timeout", "temporal_unavailable") and info.value.retryable


def test_the_servers_query_deadline_is_a_timeout_not_an_outage() -> None:
    # The server answered (so it is reachable): no worker took the query in time.
    with pytest.raises(AsmError) as info, _translated("s-1"):
        raise RPCError(
            "query timed out before a worker could process it",
            RPCStatusCode.DEADLINE_EXCEEDED,
            b"",
        )
    _assert_timeout(info.value, "s-1")
