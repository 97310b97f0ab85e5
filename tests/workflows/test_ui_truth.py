"""What Temporal (and so its UI) says about a session and its runs is what happened (patch
``ui-truth``): cancelled ends Canceled with the reason, however it was cancelled; a failure reads
its taxonomy code first; the current details count every outcome."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockError,
    MockScript,
    MockText,
    RetrySettings,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.store import EventStore

SLOW = MockScript(steps=[MockText(text="s" * 400, chunk_size=1, delay_ms=20)])
DENIED = MockScript(steps=[MockError(code="provider_authentication_failed", message="bad API key")])


async def closed(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus:
    """The workflow's status once it has closed (a hang guard, not a timing claim)."""
    for _ in range(400):
        desc = await handle.describe()
        if desc.status is not WorkflowExecutionStatus.RUNNING:
            assert desc.status is not None
            return desc.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} did not close")


async def history_events(handle: WorkflowHandle[Any, Any], kind: int) -> list[HistoryEvent]:
    history = await handle.fetch_history()
    return [e for e in history.events if e.event_type == kind]


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the Temporal UI shows as the workflow's current details (a worker answers)."""
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return meta.current_details


async def test_a_session_cancelled_by_signal_ends_canceled_with_its_reason(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=SLOW)).session_id
        ref = await client.submit_run(sid, "go")
        async for _ in client.stream_text(sid, ref.run_id):
            break
        await client.cancel_session(sid, "user walked away")
        summary = await client.result(sid)
        session = temporal.get_workflow_handle(session_workflow_id(sid))
        run = temporal.get_workflow_handle(run_workflow_id(ref.run_id))
        statuses = (await closed(session), await closed(run))
        details = await current_details(session)
    assert statuses == (WorkflowExecutionStatus.CANCELED, WorkflowExecutionStatus.CANCELED)
    requested = await history_events(
        session, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    )
    assert [e.workflow_execution_cancel_requested_event_attributes.cause for e in requested] == [
        "user walked away"
    ]
    run_requested = await history_events(
        run, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    )
    # The server words a cancel from another workflow "Cancel requested by workflow … with
    # reason: <reason>".
    cause = run_requested[0].workflow_execution_cancel_requested_event_attributes.cause
    assert cause.endswith("with reason: user walked away"), cause
    assert summary.status is SessionStatus.CANCELLED
    assert summary.outcomes == {RunStatus.CANCELLED: 1}
    assert details.startswith("cancelled (user walked away) · 1 run(s): 0 completed, 0 failed, 1 ")
    events = await store.events(sid)
    ended = next(e for e in events if e.type is EventType.SESSION_CANCELLED)
    assert ended.data["reason"] == "user walked away"
    run_cancelled = next(e for e in events if e.type is EventType.RUN_CANCELLED)
    assert "user walked away" in run_cancelled.data["error"]["message"]


async def test_temporal_workflow_cancel_reason_is_the_sessions_reason(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        session = temporal.get_workflow_handle(session_workflow_id(sid))
        await session.cancel(reason="operator: maintenance")
        summary = await client.result(sid)
        assert await closed(session) is WorkflowExecutionStatus.CANCELED
    assert summary.status is SessionStatus.CANCELLED
    ended = next(e for e in await store.events(sid) if e.type is EventType.SESSION_CANCELLED)
    assert ended.data["reason"] == "operator: maintenance"


async def test_a_run_cancelled_with_a_reason_ends_canceled_saying_why_after_its_attempts(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=SLOW)).session_id
        ref = await client.submit_run(sid, "go")
        async for _ in client.stream_text(sid, ref.run_id):
            break
        await client.cancel_run(sid, ref.run_id, reason="changed my mind")
        result = await client.wait_run(ref.run_id, sid)
        run = temporal.get_workflow_handle(run_workflow_id(ref.run_id))
        status = await closed(run)
        details = await current_details(run)
    assert status is WorkflowExecutionStatus.CANCELED
    requested = await history_events(
        run, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
    )
    cause = requested[0].workflow_execution_cancel_requested_event_attributes.cause
    assert cause.endswith("with reason: changed my mind"), cause
    assert result.status is RunStatus.CANCELLED
    assert result.error is not None
    assert result.error["message"] == "run cancelled: changed my mind"
    assert result.error["details"]["reason"] == "changed my mind"
    assert result.attempts == 1
    assert "changed my mind" in details
    ended = next(
        e for e in await store.events(sid, run_id=ref.run_id) if e.type is EventType.RUN_CANCELLED
    )
    assert ended.data["attempts"] == 1
    assert ended.data["error"]["details"]["reason"] == "changed my mind"
    row = await store.get_run(ref.run_id)
    assert row is not None and row.attempts == 1


async def test_a_failed_run_reads_code_first_without_stack_and_every_outcome_is_counted(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    retry = RetrySettings(initial_interval_seconds=0.1)
    async with run_worker():
        sid = (await client.start_session(agent_id="a", retry=retry)).session_id
        await client.run(sid, "fine")
        failed = await client.run(sid, "denied", mock=DENIED)
        slow = await client.submit_run(sid, "slow", mock=SLOW)
        await client.cancel_run(sid, slow.run_id, reason="enough")
        view = await client.describe(sid)
        session = temporal.get_workflow_handle(session_workflow_id(sid))
        for _ in range(100):  # the last run's accounting lands just after its cancel returns
            details = await current_details(session)
            if "1 cancelled" in details:
                break
            await asyncio.sleep(0.05)
    assert failed.status is RunStatus.FAILED
    run = temporal.get_workflow_handle(run_workflow_id(failed.run_id))
    [end] = await history_events(run, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED)
    failure = end.workflow_execution_failed_event_attributes.failure
    assert failure.message == "[provider_authentication_failed] bad API key"
    assert failure.stack_trace == ""
    assert failure.application_failure_info.type == "provider_authentication_failed"
    assert view.outcomes == {
        RunStatus.COMPLETED: 1,
        RunStatus.FAILED: 1,
        RunStatus.CANCELLED: 1,
    }
    assert "3 run(s): 1 completed, 1 failed, 1 cancelled, 0 timed out" in details


async def test_every_failed_attempts_error_is_in_the_runs_history(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    flaky = MockScript(
        steps=[
            MockError(code="provider_unavailable", message="overloaded", attempts=[1]),
            MockError(code="provider_rate_limited", message="slow down", attempts=[2]),
            MockText(text="third time lucky"),
        ]
    )
    retry = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.2)
    async with run_worker():
        sid = (await client.start_session(agent_id="a", retry=retry)).session_id
        result = await client.run(sid, "go", mock=flaky)
    assert result.status is RunStatus.COMPLETED and result.attempts == 3
    run = temporal.get_workflow_handle(run_workflow_id(result.run_id))
    signals = await history_events(run, HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    failed = [
        json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data)
        for e in signals
        if e.workflow_execution_signaled_event_attributes.signal_name == "attempt_failed"
    ]
    assert [(f["attempt"], f["code"], f["message"]) for f in failed] == [
        (1, "provider_unavailable", "overloaded"),
        (2, "provider_rate_limited", "slow down"),
    ]


async def test_a_stray_or_malformed_signal_to_a_run_is_dropped(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=SLOW)).session_id
        ref = await client.submit_run(sid, "go")
        run = temporal.get_workflow_handle(run_workflow_id(ref.run_id))
        await run.signal("attempt_failed", {"attempt": "many"})
        await run.signal("attempt_failed")
        await run.signal("no_such_signal", 1)
        await client.cancel_run(sid, ref.run_id)
        result = await client.wait_run(ref.run_id, sid)
    assert result.status is RunStatus.CANCELLED
    failed = await history_events(run, HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert failed == []
