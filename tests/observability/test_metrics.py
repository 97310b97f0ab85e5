"""The application metrics move as runs complete, fail and retry (in-memory metric reader).

Instruments are process-global and cumulative, so each test compares before and after.
"""

from __future__ import annotations

import asyncio

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    LifecycleRecord,
    MockError,
    MockScript,
    MockText,
    RetrySettings,
)
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.observability.conftest import Otel

MOCK = {"asm.provider": "mock"}
FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.2)


def snapshot(otel: Otel) -> dict[str, float]:
    return {
        "started": otel.value("asm.runs.started", **MOCK),
        "completed": otel.value("asm.runs.completed", **MOCK, **{"asm.run.status": "completed"}),
        "failed": otel.value("asm.runs.completed", **MOCK, **{"asm.run.status": "failed"}),
        "failed_auth": otel.value(
            "asm.runs.completed",
            **MOCK,
            **{"asm.run.status": "failed", "error.type": "provider_authentication_failed"},
        ),
        "duration_count": otel.value("asm.run.duration", **MOCK),
        "duration_failed": otel.value("asm.run.duration", **MOCK, **{"asm.run.status": "failed"}),
        "ttft_count": otel.value("asm.provider.time_to_first_token", **MOCK),
        "input": otel.value("asm.tokens", **MOCK, **{"asm.token.kind": "input"}),
        "output": otel.value("asm.tokens", **MOCK, **{"asm.token.kind": "output"}),
        "cache_read": otel.value("asm.tokens", **MOCK, **{"asm.token.kind": "cache_read"}),
        "retries": otel.value(
            "asm.provider.retries", **MOCK, **{"error.type": "provider_rate_limited"}
        ),
        "retries_any": otel.value("asm.provider.retries", **MOCK),
        "active_runs": otel.value("asm.runs.active", **MOCK),
        "active_sessions": otel.value("asm.sessions.active", **MOCK),
    }


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


async def settled(otel: Otel, before: dict[str, float], **expected: float) -> dict[str, float]:
    """The delta once the expected values are reached (lifecycle writes finish a beat after a
    run's result is visible), or as it is after a few seconds."""
    for _ in range(100):
        d = delta(before, snapshot(otel))
        if all(d[k] == v for k, v in expected.items()):
            return d
        await asyncio.sleep(0.05)
    return delta(before, snapshot(otel))


async def test_completed_run_counts_tokens_duration_and_first_token(
    otel: Otel, traced: SessionClient
) -> None:
    before = snapshot(otel)
    view = await traced.start_session(agent_id="metrics", provider="mock")
    d = await settled(otel, before, active_sessions=1)
    assert d["active_sessions"] == 1

    script = MockScript(
        steps=[MockText(text="counted tokens", chunk_size=3, delay_ms=5)],
        usage=TokenUsage(input_tokens=21, output_tokens=8, cache_read_input_tokens=4),
    )
    ref = await traced.submit_run(view.session_id, "count me", mock=script)
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.COMPLETED

    d = await settled(otel, before, completed=1, active_runs=0)
    assert d["started"] == 1
    assert d["completed"] == 1 and d["failed"] == 0
    assert d["active_runs"] == 0, "a finished run is no longer active"
    assert d["duration_count"] == 1
    assert d["ttft_count"] == 1
    assert (d["input"], d["output"], d["cache_read"]) == (21, 8, 4)
    assert d["retries_any"] == 0
    assert otel.histogram_sum("asm.run.duration", **MOCK) > 0

    await traced.complete_session(view.session_id)
    d = await settled(otel, before, active_sessions=0)
    assert d["active_sessions"] == 0


async def test_failed_and_retried_runs_count_by_status_and_error_code(
    otel: Otel, traced: SessionClient
) -> None:
    view = await traced.start_session(agent_id="metrics", provider="mock")
    before = snapshot(otel)

    # Non-retryable: one attempt, the run fails; no retry is counted.
    failing = MockScript(steps=[MockError(code="provider_authentication_failed")])
    ref = await traced.submit_run(view.session_id, "fail me", mock=failing, retry=FAST_RETRY)
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.FAILED

    d = await settled(otel, before, failed=1, active_runs=0)
    assert d["started"] == 1 and d["failed"] == 1 and d["failed_auth"] == 1
    assert d["completed"] == 0 and d["active_runs"] == 0
    assert d["duration_failed"] == 1
    assert d["retries_any"] == 0
    assert d["output"] == 0 and d["ttft_count"] == 0

    # Retryable on attempts 1 and 2, then success: two retries by code, one completion.
    flaky = MockScript(
        steps=[
            MockError(code="provider_rate_limited", attempts=[1, 2]),
            MockText(text="third time", chunk_size=4),
        ],
        usage=TokenUsage(input_tokens=3, output_tokens=2),
    )
    ref = await traced.submit_run(view.session_id, "retry me", mock=flaky, retry=FAST_RETRY)
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.COMPLETED and result.attempts == 3

    d = await settled(otel, before, completed=1, active_runs=0)
    assert d["started"] == 2
    assert d["retries"] == 2 and d["retries_any"] == 2
    assert d["completed"] == 1 and d["failed"] == 1
    assert d["ttft_count"] == 1, "only the attempt that streamed has a first token"
    assert (d["input"], d["output"]) == (3, 2)

    # Retryable but out of attempts: the last failure is not counted as a retry.
    exhausted = MockScript(steps=[MockError(code="provider_rate_limited")])
    limited = RetrySettings(max_attempts=2, initial_interval_seconds=0.1)
    ref = await traced.submit_run(view.session_id, "give up", mock=exhausted, retry=limited)
    result = await traced.wait_run(ref.run_id, view.session_id)
    assert result.status is RunStatus.FAILED

    d = await settled(otel, before, failed=2, active_runs=0)
    assert d["retries"] == 3, "attempt 1 retried, attempt 2 was the last"
    assert d["failed"] == 2 and d["started"] == 3


async def test_a_replayed_lifecycle_write_is_counted_once(otel: Otel, store: EventStore) -> None:
    # A local activity retried after its write committed writes nothing new (same event id);
    # the metrics must not count it twice either.
    from agent_session_manager.observability.instrumented_store import instrument_store

    instrumented = instrument_store(store)
    assert instrument_store(instrumented) is instrumented
    rec = LifecycleRecord(
        event_id="evt-replayed-run-started",
        session_id="ses_metrics_once",
        run_id="run_metrics_once",
        type="run_started",
        provider="mock",
        run_status=RunStatus.RUNNING,
        run_row={"session_id": "ses_metrics_once", "turn": 1},
    )
    before = snapshot(otel)
    assert await instrumented.record(rec) is not None
    assert await instrumented.record(rec) is None  # already there
    d = delta(before, snapshot(otel))
    assert d["started"] == 1 and d["active_runs"] == 1
    # Balance the global up-down counter for the tests that follow.
    end = rec.model_copy(
        update={
            "event_id": "evt-replayed-run-completed",
            "type": "run_completed",
            "run_status": RunStatus.COMPLETED,
            "run_row": None,
        }
    )
    assert await instrumented.record(end) is not None
    d = delta(before, snapshot(otel))
    assert d["active_runs"] == 0 and d["completed"] == 1 and d["duration_count"] == 1


async def test_a_run_ended_by_another_worker_is_timed_from_its_row(
    otel: Otel, store: EventStore
) -> None:
    # The worker that records the ending did not see the start (another worker, a restart):
    # the duration comes from the run row's started_at / ended_at instead.
    from agent_session_manager.observability.instrumented_store import InstrumentedStore

    starter, ender = InstrumentedStore(store), InstrumentedStore(store)
    start = LifecycleRecord(
        event_id="evt-elsewhere-run-started",
        session_id="ses_metrics_elsewhere",
        run_id="run_metrics_elsewhere",
        type="run_started",
        provider="mock",
        run_status=RunStatus.RUNNING,
        run_row={"session_id": "ses_metrics_elsewhere", "turn": 1},
    )
    before = snapshot(otel)
    await starter.record(start)
    await asyncio.sleep(0.05)
    end = start.model_copy(
        update={
            "event_id": "evt-elsewhere-run-failed",
            "type": "run_failed",
            "run_status": RunStatus.FAILED,
            "run_row": None,
        }
    )
    await ender.record(end)
    d = delta(before, snapshot(otel))
    assert d["duration_failed"] == 1
    assert d["active_runs"] == 0
