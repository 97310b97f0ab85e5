"""Careless and hostile inputs to the agent loop's updates: ``approve``, ``deny`` and
``submit_tool_result`` sent raw (the SDK's default converter) with hypothesis-generated
payloads. Each is rejected typed; none takes effect, none fails a workflow task, and the run's
real approval still works afterwards.
"""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import RunRequest, run_workflow_id
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import PendingApproval
from tests.workflows.test_agent_loop import CALLS, TOOLS, progress, text, uses
from tests.workflows.test_bad_input import (
    assert_no_failed_workflow_tasks,
    assert_replays,
    raw_client,
)

__all__ = ["raw_client"]  # the fixture, re-used

HEX = "0123456789abcdef"
digests = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=HEX, min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    st.text(alphabet=HEX, min_size=0, max_size=70).map(lambda h: "sha256:" + h),
)
call_ids = st.one_of(st.none(), st.text(max_size=300), st.just(""))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=40))
decisions = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.fixed_dictionaries(
        {"digest": digests},
        optional={
            "call_id": call_ids,
            "reason": st.one_of(st.none(), st.text(max_size=5000)),
            "by": st.one_of(st.none(), st.integers(), st.text(max_size=300)),
            "extra": scalars,
        },
    ),
)
submissions = st.one_of(
    scalars,
    st.fixed_dictionaries(
        {"call_id": call_ids},
        optional={
            "output": st.one_of(st.text(max_size=100), st.integers(), st.none()),
            "is_error": st.one_of(
                st.booleans(), st.text(alphabet=string.ascii_letters, max_size=5)
            ),
        },
    ),
)
REJECTED = {
    "validation_error",
    "approval_not_found",
    "approval_mismatch",
    "tool_call_not_found",
}


@pytest.fixture
async def waiting(
    client: SessionClient, run_worker: Any
) -> AsyncIterator[tuple[str, str, PendingApproval]]:
    """A run waiting for one approval, its worker running for the whole test."""
    async with run_worker(tools=TOOLS):
        view = await client.start_session(agent_id="fuzz", tools=["delete"])
        script = uses(("delete", {"path": "/tmp/fuzz"}), then=[text("done")])
        ref = await client.submit_run(view.session_id, request=RunRequest(prompt="x", mock=script))
        p = await progress(client, ref.run_id, "awaiting_approval")
        yield view.session_id, ref.run_id, p.pending_approvals[0]


async def _rejected(raw: Client, run_id: str, update: str, payload: Any) -> str:
    handle = raw.get_workflow_handle(run_workflow_id(run_id))
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, payload)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type in REJECTED, (cause.type, cause.message)
    return str(cause.type)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(approve=decisions, deny=decisions, submit=submissions)
async def test_generated_update_inputs_are_rejected_typed_and_take_no_effect(
    waiting: tuple[str, str, PendingApproval],
    raw_client: Client,
    approve: Any,
    deny: Any,
    submit: Any,
) -> None:
    _, run_id, pending = waiting
    await _rejected(raw_client, run_id, "approve", approve)
    await _rejected(raw_client, run_id, "deny", deny)
    await _rejected(raw_client, run_id, "submit_tool_result", submit)
    assert pending.digest not in (approve, deny)  # a real digest would be a real decision


async def test_after_the_noise_the_real_approval_works_and_history_replays(
    client: SessionClient,
    temporal: Client,
    raw_client: Client,
    waiting: tuple[str, str, PendingApproval],
) -> None:
    CALLS.clear()
    session_id, run_id, pending = waiting
    for payload in (None, [], {"digest": None}, {"digest": pending.digest, "call_id": "x" * 256}):
        await _rejected(raw_client, run_id, "approve", payload)
    await client.approve(run_id, pending.digest)
    result = await client.wait_run(run_id, session_id)
    assert result.status is RunStatus.COMPLETED
    assert CALLS == ["delete {'path': '/tmp/fuzz'}"]
    handle = temporal.get_workflow_handle(run_workflow_id(run_id))
    await assert_no_failed_workflow_tasks(handle)
    await assert_replays(handle)
