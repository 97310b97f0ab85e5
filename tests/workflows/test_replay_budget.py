"""Long sessions stay cheap to replay: continue-as-new on the replay budget (history events and
bytes, patch ``lean-runs``), no search-attribute event per run, and the worker's cache size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    SessionSpec,
    session_workflow_id,
)
from agent_session_manager.core.status import RunStatus
from agent_session_manager.worker.settings import Settings


def _ours(event: Any) -> bool:
    """A search-attribute upsert of ours (a patch marker comes with its own upsert, of
    ``TemporalChangeVersion``)."""
    if event.event_type != HistoryEventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        return False
    attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes
    return "TemporalChangeVersion" not in attrs.indexed_fields


async def _executions(temporal: Client, workflow_id: str) -> list[dict[str, Any]]:
    """Every execution of ``workflow_id``: its history's event count, bytes and upserts."""
    out = []
    async for wf in temporal.list_workflows(f'WorkflowId = "{workflow_id}"'):
        handle = temporal.get_workflow_handle(workflow_id, run_id=wf.run_id)
        history = await handle.fetch_history()
        desc = await handle.describe()
        out.append(
            {
                "events": len(history.events),
                "bytes": desc.raw_description.workflow_execution_info.history_size_bytes,
                "upserts": sum(_ours(e) for e in history.events),
                "failed_tasks": sum(
                    e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                    for e in history.events
                ),
            }
        )
    return out


async def test_session_continues_as_new_on_the_byte_budget(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    # Prompts of 3 KiB stay inline (under the 4 KiB reference limit), so each run adds them
    # to the session's history: the byte budget, not the run count, must end the execution.
    spec = SessionSpec(
        agent_id="bytes",
        continue_as_new_after_runs=500,
        continue_as_new_after_events=50_000,
        continue_as_new_after_bytes=64 * 1024,
        # The reply lives in SQL, not in history: stream it at once (the default mock's
        # 15 ms per chunk made this test take four minutes for nothing it checks).
        mock=MockScript(steps=[MockText(text="You said: " + "x" * 6100, chunk_size=6)]),
    )
    async with run_worker():
        sid = (await client.start_session(spec)).session_id
        results = [await client.run(sid, f"turn {n} " + "x" * 3000) for n in range(14)]
        view = await client.describe(sid)
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 14
    assert view.continued >= 1
    assert view.run_count == 14
    assert [r.turn for r in view.runs] == list(range(1, 15))
    executions = await _executions(temporal, session_workflow_id(sid))
    assert len(executions) == view.continued + 1
    assert all(e["failed_tasks"] == 0 for e in executions)


async def test_session_continues_as_new_on_the_event_budget_and_keeps_its_state(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    spec = SessionSpec(
        agent_id="events", continue_as_new_after_runs=500, continue_as_new_after_events=100
    )
    async with run_worker(max_cached_workflows=0):  # every task replays: the budget must too
        sid = (await client.start_session(spec)).session_id
        results = [await client.run(sid, f"turn {n}") for n in range(12)]
        view = await client.describe(sid)
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 12
    assert view.continued >= 1
    assert view.usage.total_tokens == sum(r.usage.total_tokens for r in results)
    assert "turn 0" in results[-1].output  # continuity survives continue-as-new
    executions = await _executions(temporal, session_workflow_id(sid))
    # The budget bounds every execution but the open one: the run that crossed it, and
    # the few events that end the execution, are all it can add past 100.
    closed = sorted(e["events"] for e in executions)[:-1] if len(executions) > 1 else []
    assert closed and max(closed) < 100 + 60
    assert all(e["failed_tasks"] == 0 for e in executions)


async def test_each_run_s_totals_reach_visibility_while_the_session_is_active(
    client: SessionClient, temporal: Client, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(SessionSpec(agent_id="sa"))).session_id
        results = [await client.run(sid, f"turn {n}") for n in range(5)]
        tokens = sum(r.usage.total_tokens for r in results)
        assert tokens > 0
        # Visibility is eventually consistent: wait for the last run's totals to be indexed.
        listed: list[Any] = []
        for _ in range(300):
            listed = [s for s in await client.list_sessions() if s.session_id == sid]
            if listed and listed[0].total_tokens == tokens:
                break
            await asyncio.sleep(0.1)
        assert [(s.status, s.total_tokens) for s in listed] == [("active", tokens)]
        await client.complete_session(sid)
        await client.result(sid)
    executions = await _executions(temporal, session_workflow_id(sid))
    assert len(executions) == 1
    # Starting (active), each run's new totals and completing: one upsert each.
    assert executions[0]["upserts"] == 2 + 5


def test_the_cache_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASM_MAX_CACHED_SESSIONS", "250")
    assert Settings().max_cached_sessions == 250
    monkeypatch.setenv("ASM_MAX_CACHED_SESSIONS", "-1")
    with pytest.raises(ValidationError):
        Settings()


async def test_the_worker_runs_with_the_configured_cache_size(run_worker: Any) -> None:
    async with run_worker(settings=Settings(max_cached_sessions=7)) as worker:
        assert worker.config()["max_cached_workflows"] == 7


@pytest.mark.parametrize(
    "field, value",
    [
        ("continue_as_new_after_events", 99),
        ("continue_as_new_after_events", 50_001),
        ("continue_as_new_after_bytes", 1024),
        ("continue_as_new_after_bytes", None),
        ("continue_as_new_after_bytes", "lots"),
    ],
)
def test_a_replay_budget_out_of_range_is_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        SessionSpec.model_validate({"agent_id": "a", field: value})
