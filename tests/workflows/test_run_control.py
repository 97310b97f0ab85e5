"""Run control in the engine: retries, cancellation, timeouts, strategies, long sessions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowExecutionStatus

from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core.contract import (
    Message,
    MockError,
    MockScript,
    MockSleep,
    MockText,
    RetrySettings,
    RunResult,
    SessionSpec,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.errors import MAX_MESSAGE_BYTES, AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.protocol import (
    RUN_FINISHED,
)
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.store import EventStore

FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=1.0)


def slow(chars: int = 300, delay_ms: int = 10) -> MockScript:
    return MockScript(steps=[MockText(text="s" * chars, chunk_size=1, delay_ms=delay_ms)])


async def types_of(store: EventStore, session_id: str, run_id: str | None = None) -> list[str]:
    return [e.type.value for e in await store.events(session_id, run_id=run_id, limit=10_000)]


async def assert_no_failed_workflow_tasks(temporal: Client, workflow_id: str) -> None:
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    failed = [
        e
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == [], failed


# --- retries --------------------------------------------------------------------------------


async def test_rate_limited_attempt_is_retried_after_retry_after_and_recovers(
    client: SessionClient, store: EventStore, temporal: Client, run_worker: Any
) -> None:
    script = MockScript(
        steps=[
            MockText(text="partial "),
            MockError(code="provider_rate_limited", retry_after=1.0, attempts=[1]),
            MockText(text="answer"),
        ]
    )
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script, retry=FAST_RETRY)).session_id
        ref = await client.submit_run(sid, "go")
        pieces = [p async for p in client.stream_text(sid, ref.run_id)]
        result = await client.wait_run(ref.run_id, sid)
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert result.output == "partial answer"
    assert any(isinstance(p, Reset) and p.attempt == 2 for p in pieces)
    after_reset = pieces[[isinstance(p, Reset) for p in pieces].index(True) + 1 :]
    assert "".join(p.text for p in after_reset if isinstance(p, TextDelta)) == "partial answer"
    events = await store.events(sid, run_id=ref.run_id)
    failed = next(e for e in events if e.type is EventType.ERROR_OCCURRED)
    assert failed.attempt == 1 and failed.data["code"] == "provider_rate_limited"
    assert failed.data["retryable"] is True
    recovered = next(e for e in events if e.type is EventType.ERROR_RECOVERED)
    assert recovered.data["superseded_attempts"] == [1]
    second = next(e for e in events if e.attempt == 2)
    # Temporal honoured retry-after (1 s), not the policy's 0.1 s initial interval.
    assert (second.created_at - failed.created_at).total_seconds() >= 0.95
    history = await temporal.get_workflow_handle(run_workflow_id(ref.run_id)).fetch_history()
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started == [2]  # only the final attempt is recorded; its number shows the retry


async def test_non_retryable_error_fails_the_run_after_one_attempt(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    script = MockScript(steps=[MockError(code="invalid_input", message="bad prompt")])
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script, retry=FAST_RETRY)).session_id
        result = await client.run(sid, "go")
        view = await client.describe(sid)
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error["code"] == "invalid_input"
    errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert [e.attempt for e in errors] == [1]
    assert view.runs[0].status is RunStatus.FAILED
    assert view.status is SessionStatus.ACTIVE
    assert (await types_of(store, sid, result.run_id)).count("run_failed") == 1


async def test_retryable_error_stops_at_max_attempts(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    script = MockScript(steps=[MockError(code="provider_unavailable")])
    retry = RetrySettings(
        max_attempts=3, initial_interval_seconds=0.05, maximum_interval_seconds=0.1
    )
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script, retry=retry)).session_id
        result = await client.run(sid, "go")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error["code"] == "provider_unavailable"
    errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert [e.attempt for e in errors] == [1, 2, 3]


async def test_silent_provider_times_out_and_is_retried(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    script = MockScript(steps=[MockSleep(ms=5_000, attempts=[1]), MockText(text="back")])
    async with run_worker():
        spec = SessionSpec(
            agent_id="a", mock=script, retry=FAST_RETRY, heartbeat_timeout_seconds=1.0
        )
        sid = (await client.start_session(spec)).session_id
        started = time.monotonic()
        result = await client.run(sid, "go")
        elapsed = time.monotonic() - started
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert elapsed < 4.5  # well before the 5 s sleep would have ended
    errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert errors[0].data["code"] == "provider_timeout"


# --- timeouts -------------------------------------------------------------------------------


async def test_run_deadline_ends_the_run_timeout_and_stops_the_provider(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow(2_000))).session_id
        result = await client.run(sid, "go", timeout_seconds=1.0)
        await asyncio.sleep(0.3)  # anything still streaming would land now
        types = await types_of(store, sid, result.run_id)
    assert result.status is RunStatus.TIMEOUT
    assert result.error is not None and result.error["code"] == "timeout"
    assert types.count("run_timeout") == 1
    assert "message_streamed" not in types[types.index("run_timeout") :]


async def test_idle_session_completes_after_its_idle_timeout(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", idle_timeout_seconds=1.0)).session_id
        await client.run(sid, "one")
        summary = await asyncio.wait_for(client.result(sid), 10)
    assert summary.status is SessionStatus.COMPLETED
    completed = [e for e in await store.events(sid) if e.type is EventType.SESSION_COMPLETED]
    assert completed[0].data["reason"] == "idle timeout"


# --- cancellation ---------------------------------------------------------------------------


async def test_temporal_cancel_of_a_run_workflow_cancels_just_that_run(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow())).session_id
        ref = await client.submit_run(sid, "go")
        async for _ in client.stream_text(sid, ref.run_id):
            break
        await temporal.get_workflow_handle(run_workflow_id(ref.run_id)).cancel()
        result = await client.wait_run(ref.run_id, sid)
        await asyncio.sleep(0.2)
        view = await client.describe(sid)
        ok = await client.run(sid, "next", mock=MockScript(steps=[MockText(text="fine")]))
    assert result.status is RunStatus.CANCELLED
    assert view.status is SessionStatus.ACTIVE
    assert view.runs[0].status is RunStatus.CANCELLED
    assert ok.status is RunStatus.COMPLETED
    assert (await types_of(store, sid, ref.run_id)).count("run_cancelled") == 1


async def test_temporal_cancel_of_the_session_cancels_its_runs(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow())).session_id
        ref = await client.submit_run(sid, "go")
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        await handle.cancel()
        run = await client.wait_run(ref.run_id, sid)
        for _ in range(100):
            desc = await handle.describe()
            if desc.status is not WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.05)
    assert desc.status is WorkflowExecutionStatus.CANCELED
    assert run.status is RunStatus.CANCELLED
    types = await types_of(store, sid)
    assert types.count("session_cancelled") == 1
    assert types.count("run_cancelled") == 1
    row = await store.get_session(sid)
    assert row is not None and row.status is SessionStatus.CANCELLED


async def test_cancel_reaches_the_provider_within_a_second(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow(2_000))).session_id
        ref = await client.submit_run(sid, "go")
        async for _ in client.stream_text(sid, ref.run_id):
            break
        asked = time.monotonic()
        await client.cancel_run(sid, ref.run_id)
        took = time.monotonic() - asked
        events = await store.events(sid, run_id=ref.run_id, limit=10_000)
    assert took < 2.0  # the benchmark reports the p95; this only guards against a hang
    streamed = [e for e in events if e.type is EventType.MESSAGE_STREAMED]
    cancelled = next(e for e in events if e.type is EventType.RUN_CANCELLED)
    assert all(e.seq < cancelled.seq for e in streamed)


async def test_cancel_run_signal_for_unknown_run_is_recorded_not_fatal(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        await handle.signal("cancel_run", {"run_id": "run_nope"})
        ok = await client.run(sid, "still alive?")
        with pytest.raises(AsmError) as info:
            await client.cancel_run(sid, "run_nope")
    assert ok.status is RunStatus.COMPLETED
    assert info.value.code == "run_not_found"
    errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert errors and errors[0].data["code"] == "run_not_found"
    await assert_no_failed_workflow_tasks(temporal, session_workflow_id(sid))


async def test_run_finished_signal_for_unknown_run_is_recorded_not_fatal(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        stray = RunResult(run_id="run_stray", session_id=sid, status=RunStatus.COMPLETED)
        await handle.signal(RUN_FINISHED, stray)
        ok = await client.run(sid, "still alive?")
        view = await client.describe(sid)
    assert ok.status is RunStatus.COMPLETED
    assert [r.run_id for r in view.runs] == [ok.run_id]
    errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert [e.data["code"] for e in errors] == ["run_not_found"]
    assert "run_stray" in errors[0].data["message"]
    await assert_no_failed_workflow_tasks(temporal, session_workflow_id(sid))


# --- concurrency and strategies -------------------------------------------------------------


async def test_reject_strategy_refuses_a_second_concurrent_run(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow())).session_id
        first = await client.submit_run(sid, "one")
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "two")
        await client.cancel_run(sid, first.run_id)
    assert info.value.code == "max_runs_exceeded"
    assert "enqueue" in info.value.message


async def test_a_full_queue_refuses_an_enqueued_run_before_anything_is_recorded(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    async with run_worker():
        spec = SessionSpec(
            agent_id="a", mock=slow(), multitask_strategy="enqueue", max_queued_runs=1
        )
        sid = (await client.start_session(spec)).session_id
        first = await client.submit_run(sid, "one")
        queued = await client.submit_run(sid, "two")
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "three")
        view = await client.describe(sid)
        await client.cancel_session(sid)
        await client.result(sid)
    assert (first.status, queued.status) == (RunStatus.RUNNING, RunStatus.PENDING)
    assert info.value.code == "max_runs_exceeded"
    assert info.value.details == {"limit": 1, "queued": 1}
    # Refused by the validator: no run, no turn, nothing in the history.
    assert view.run_count == 2 and view.queued == [queued.run_id]
    await assert_no_failed_workflow_tasks(temporal, session_workflow_id(sid))


async def test_a_paused_session_refuses_a_run_with_strategy_reject(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        await client.pause(sid)
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "held?")
        view = await client.describe(sid)
    assert info.value.code == "max_runs_exceeded"
    assert view.run_count == 0


async def test_enqueue_runs_fifo_and_a_queued_run_cancels_without_reaching_the_provider(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    quick = MockScript(steps=[MockText(text="q", delay_ms=300)])
    async with run_worker():
        sid = (
            await client.start_session(agent_id="a", mock=quick, multitask_strategy="enqueue")
        ).session_id
        first = await client.submit_run(sid, "one")
        second = await client.submit_run(sid, "two")
        third = await client.submit_run(sid, "three")
        assert first.status is RunStatus.RUNNING
        assert second.status is RunStatus.PENDING and third.status is RunStatus.PENDING
        cancelled = await client.cancel_run(sid, second.run_id)
        results = [await client.wait_run(r.run_id, sid) for r in (first, third)]
        skipped = await client.wait_run(second.run_id, sid)
    assert cancelled.status is RunStatus.CANCELLED
    assert [r.status for r in results] == [RunStatus.COMPLETED, RunStatus.COMPLETED]
    assert skipped.status is RunStatus.CANCELLED
    second_types = await types_of(store, sid, second.run_id)
    assert "run_started" not in second_types and "message_sent" not in second_types
    started = [e.run_id for e in await store.events(sid) if e.type is EventType.RUN_STARTED]
    assert started == [first.run_id, third.run_id]


async def test_interrupt_strategy_cancels_the_active_run_and_starts_the_new_one(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow())).session_id
        first = await client.submit_run(sid, "one")
        second = await client.submit_run(
            sid, "two", strategy="interrupt", mock=MockScript(steps=[MockText(text="new")])
        )
        r1 = await client.wait_run(first.run_id, sid)
        r2 = await client.wait_run(second.run_id, sid)
    assert r1.status is RunStatus.CANCELLED
    assert r2.status is RunStatus.COMPLETED and r2.output == "new"


async def test_rollback_strategy_removes_the_interrupted_run_from_the_conversation(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        kept = await client.run(sid, "keep me")
        slow_ref = await client.submit_run(sid, "forget me", mock=slow())
        new = await client.submit_run(sid, "after", strategy="rollback")
        await client.wait_run(new.run_id, sid)
        convo = await store.conversation(sid, before_turn=10)
    texts = [m.text() for m in convo if m.role == "user"]
    assert texts == ["keep me", "after"]
    assert kept.status is RunStatus.COMPLETED
    assert (await client.wait_run(slow_ref.run_id, sid)).status is RunStatus.CANCELLED


async def test_pause_holds_new_runs_until_resume(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", multitask_strategy="enqueue")).session_id
        paused = await client.pause(sid)
        held = await client.submit_run(sid, "held")
        await asyncio.sleep(0.3)
        still = await client.describe(sid)
        await client.resume(sid)
        result = await client.wait_run(held.run_id, sid)
    assert paused.status is SessionStatus.PAUSED
    assert held.status is RunStatus.PENDING
    assert still.runs[0].status is RunStatus.PENDING
    assert result.status is RunStatus.COMPLETED
    types = await types_of(store, sid)
    assert (
        types.index("session_paused") < types.index("session_resumed") < types.index("run_started")
    )


async def test_interrupt_update_cancels_the_running_run_and_session_stays_active(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow())).session_id
        ref = await client.submit_run(sid, "go")
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        await handle.execute_update("interrupt", {})
        result = await client.wait_run(ref.run_id, sid)
        view = await client.describe(sid)
    assert result.status is RunStatus.CANCELLED
    assert view.status is SessionStatus.ACTIVE


async def test_degraded_negotiation_is_recorded_in_run_started(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        ref = await client.submit_run(
            sid, "go", required_capabilities=["sampling"], optional_capabilities=["file_access"]
        )
        await client.wait_run(ref.run_id, sid)
    assert ref.negotiation is not None and ref.negotiation.status == "degraded"
    started = next(
        e for e in await store.events(sid, run_id=ref.run_id) if e.type is EventType.RUN_STARTED
    )
    assert started.data["negotiation"]["status"] == "degraded"
    assert "file_access" in started.data["negotiation"]["warnings"][0]


async def test_submit_run_is_idempotent_by_run_id(client: SessionClient, run_worker: Any) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        one = await client.submit_run(sid, "hi", run_id="run_fixed_1")
        await client.wait_run(one.run_id, sid)
        again = await client.submit_run(sid, "hi", run_id="run_fixed_1")
        view = await client.describe(sid)
    assert again.run_id == one.run_id and again.note == "already submitted"
    assert view.run_count == 1


# --- long-lived sessions --------------------------------------------------------------------


async def test_session_continues_as_new_and_keeps_its_state(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker(max_cached_workflows=0):
        spec = SessionSpec(agent_id="long", continue_as_new_after_runs=3)
        sid = (await client.start_session(spec)).session_id
        results = [await client.run(sid, f"turn {n}") for n in range(8)]
        view = await client.describe(sid)
        last = results[-1]
    assert [(r.status, r.error) for r in results if r.status is not RunStatus.COMPLETED] == []
    assert view.continued >= 2
    assert view.run_count == 8
    assert view.usage.total_tokens == sum(r.usage.total_tokens for r in results)
    assert "turn 0" in last.output  # continuity survives continue-as-new
    assert [r.turn for r in view.runs] == list(range(1, 9))
    await assert_no_failed_workflow_tasks(temporal, session_workflow_id(sid))
    seqs = [e.seq for e in await store.events(sid, limit=10_000)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_forged_run_finished_neither_settles_a_streaming_run_nor_admits_a_second(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    raw = Client(temporal.service_client, namespace=temporal.namespace)  # SDK default converter
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow(chars=2000))).session_id
        handle = raw.get_workflow_handle(session_workflow_id(sid))
        first = await client.submit_run(sid, "one")
        queued = await client.submit_run(sid, "two", strategy="enqueue")
        forged = {"session_id": sid, "status": "completed", "output": "forged"}
        await handle.signal(RUN_FINISHED, {**forged, "run_id": first.run_id})
        await handle.signal(RUN_FINISHED, {**forged, "run_id": first.run_id, "token": "guess"})
        await handle.signal(RUN_FINISHED, {**forged, "run_id": queued.run_id, "token": None})
        for _ in range(100):
            errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
            if len(errors) == 3:
                break
            await asyncio.sleep(0.05)
        view = await client.describe(sid)
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "three")  # strategy reject: the slot is still taken
        await client.cancel_run(sid, queued.run_id)
        await client.cancel_run(sid, first.run_id)
        ended = await client.wait_run(first.run_id, sid)
        await assert_no_failed_workflow_tasks(temporal, session_workflow_id(sid))
    statuses = {r.run_id: r.status for r in view.runs}
    assert statuses == {first.run_id: RunStatus.RUNNING, queued.run_id: RunStatus.PENDING}
    assert info.value.code == "max_runs_exceeded"
    assert len(errors) == 3 and all("token" in e.data["message"] for e in errors)
    assert ended.status is RunStatus.CANCELLED  # the forged "completed" never took


async def test_a_run_settles_on_its_own_run_finished(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        results = [await client.run(sid, f"turn {n}") for n in range(3)]
        history = await temporal.get_workflow_handle(session_workflow_id(sid)).fetch_history()
        errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 3
    assert errors == []  # every genuine run_finished carried its token
    signals = [
        e
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) == 3


async def test_the_queue_is_bounded_by_the_bytes_continue_as_new_can_carry(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow(chars=3000))).session_id
        first = await client.submit_run(sid, "one")
        # Under the per-request limit; three of them are over the queue's. Messages, not a
        # prompt: a long prompt would travel by reference and weigh a few hundred bytes.
        big = [Message(role="user", content="x" * 200_000)]
        queued = [await client.submit_run(sid, messages=big, strategy="enqueue") for _ in range(2)]
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, messages=big, strategy="enqueue")
        view = await client.describe(sid)
        for ref in [*queued, first]:
            await client.cancel_run(sid, ref.run_id)
    assert info.value.code == "max_runs_exceeded"
    assert "bytes" in info.value.message
    assert view.queued == [r.run_id for r in queued]
    assert len(view.runs) == 3  # the refused run left no trace


async def test_a_run_error_is_kept_small_in_the_session_and_in_the_run(
    client: SessionClient, run_worker: Any
) -> None:
    script = MockScript(steps=[MockError(code="provider_error", message="e" * 4000)])
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script)).session_id
        result = await client.run(sid, "fail loudly")
        view = await client.describe(sid)
    assert result.status is RunStatus.FAILED
    # Every error message is capped where the error is built (core.errors.MAX_MESSAGE_BYTES),
    # and says how long it was.
    assert result.error is not None and result.error["message"].startswith("e" * 900)
    assert len(result.error["message"].encode()) <= MAX_MESSAGE_BYTES
    assert result.error["message"].endswith("[4000 bytes, truncated]")
    kept = view.runs[0].error
    assert kept is not None and kept["code"] == "provider_error"
    assert len(kept["message"]) <= 1024
