"""Sessions and runs end to end on the real dev server, mock provider, SQLite store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from agent_session_manager.client.session_client import SessionClient, TextDelta
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    MockToolCall,
    session_workflow_id,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.temporal import from_failure
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore


async def test_multi_turn_session_remembers_earlier_turns(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        view = await client.start_session(agent_id="agent-1", system_prompt="Be brief.")
        assert view.status is SessionStatus.ACTIVE
        sid = view.session_id
        first = await client.run(sid, "What is durable execution?")
        second = await client.run(sid, "And what did I just ask?")
        assert first.status is RunStatus.COMPLETED
        assert second.status is RunStatus.COMPLETED
        # The default mock reply quotes the first user message it finds in the history,
        # which the activity read from SQL, not from workflow payloads.
        assert "What is durable execution?" in second.output
        assert "turn 2" in second.output
        convo = await store.conversation(sid, before_turn=3)
        assert [m.role for m in convo] == ["user", "assistant", "user", "assistant"]
        assert convo[1].text() == first.output


async def test_events_have_gap_free_seq_and_full_lifecycle(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        result = await client.run(sid, "hi")
        await client.complete_session(sid)
        events = await store.events(sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    types = [e.type for e in events]
    assert types[:2] == [EventType.SESSION_CREATED, EventType.SESSION_STARTED]
    assert types[-1] is EventType.SESSION_COMPLETED
    for expected in (
        EventType.RUN_STARTED,
        EventType.MESSAGE_SENT,
        EventType.MESSAGE_STREAMED,
        EventType.TOKEN_USAGE_UPDATED,
        EventType.MESSAGE_RECEIVED,
        EventType.RUN_COMPLETED,
        EventType.TURN_COMPLETED,
    ):
        assert expected in types, expected
    run_events = [e for e in events if e.run_id == result.run_id]
    assert all(e.attempt == 1 for e in run_events if e.type is EventType.MESSAGE_STREAMED)
    streamed = "".join(
        str(e.data["text"]) for e in run_events if e.type is EventType.MESSAGE_STREAMED
    )
    assert streamed == result.output
    assert len({e.id for e in events}) == len(events)


async def test_follower_sees_tokens_before_the_run_completes(
    client: SessionClient, run_worker: Any
) -> None:
    script = MockScript(
        steps=[MockText(text="one two three four five six seven", chunk_size=4, delay_ms=60)]
    )
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script)).session_id
        ref = await client.submit_run(sid, "stream please")
        pieces: list[str] = []
        completed_when_first_seen: RunStatus | None = None
        async for piece in client.stream_text(sid, ref.run_id):
            assert isinstance(piece, TextDelta)
            if not pieces:
                view = await client.describe(sid)
                completed_when_first_seen = view.runs[0].status
            pieces.append(piece.text)
        result = await client.wait_run(ref.run_id, sid)
    assert completed_when_first_seen is RunStatus.RUNNING
    assert "".join(pieces) == result.output == "one two three four five six seven"
    assert len(pieces) > 1


async def test_tool_calls_and_usage_are_reported(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    script = MockScript(
        steps=[
            MockToolCall(name="search", input={"q": "temporal"}, output={"hits": 3}),
            MockText(text="Found 3 hits."),
        ],
        usage=TokenUsage(input_tokens=11, output_tokens=7, cache_read_input_tokens=2),
    )
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=script)).session_id
        result = await client.run(sid, "search")
        view = await client.describe(sid)
    assert result.usage.total_tokens == 20
    assert view.usage.total_tokens == 20
    events = await store.events(sid, run_id=result.run_id)
    started = [e for e in events if e.type is EventType.TOOL_CALL_STARTED]
    completed = [e for e in events if e.type is EventType.TOOL_CALL_COMPLETED]
    assert [e.data["name"] for e in started] == ["search"]
    assert completed[0].data["output"] == {"hits": 3}
    row = await store.get_session(sid)
    assert row is not None and row.usage.total_tokens == 20


async def test_cancel_signal_cancels_session_and_writes_session_cancelled(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    slow = MockScript(steps=[MockText(text="x" * 200, chunk_size=1, delay_ms=20)])
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow)).session_id
        ref = await client.submit_run(sid, "long")
        await client.cancel_session(sid, reason="user left")
        summary = await client.result(sid)
        run = await client.wait_run(ref.run_id, sid)
    assert summary.status is SessionStatus.CANCELLED
    assert run.status is RunStatus.CANCELLED
    types = [e.type for e in await store.events(sid)]
    assert types.count(EventType.SESSION_CANCELLED) == 1
    assert types.count(EventType.RUN_CANCELLED) == 1
    row = await store.get_session(sid)
    assert row is not None and row.status == "cancelled"


async def test_cancel_run_mid_stream_marks_run_cancelled_with_nothing_after(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    slow = MockScript(steps=[MockText(text="y" * 400, chunk_size=1, delay_ms=10)])
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow)).session_id
        ref = await client.submit_run(sid, "long")
        async for _ in client.stream_text(sid, ref.run_id):
            break  # it is streaming
        cancelled = await client.cancel_run(sid, ref.run_id)
        assert cancelled.status is RunStatus.CANCELLED
        again = await client.cancel_run(sid, ref.run_id)
        assert again.note is not None and "already cancelled" in again.note
        # The session stays usable.
        ok = await client.run(sid, "short", mock=MockScript(steps=[MockText(text="ok")]))
    assert ok.status is RunStatus.COMPLETED
    events = await store.events(sid, run_id=ref.run_id)
    types = [e.type for e in events]
    assert types.count(EventType.RUN_CANCELLED) == 1
    after = types[types.index(EventType.RUN_CANCELLED) + 1 :]
    assert EventType.MESSAGE_STREAMED not in after


# --- bad input ------------------------------------------------------------------------------


async def test_unknown_provider_is_rejected_and_nothing_is_written(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        with pytest.raises(AsmError) as info:
            await client.start_session(agent_id="a", provider="nope", session_id="ses_badprov")
    assert info.value.code == "validation_error"
    assert "nope" in info.value.message and "mock" in info.value.message
    assert await store.events("ses_badprov", strict=False) == []


async def test_empty_agent_id_started_from_any_sdk_fails_typed_not_stuck(
    temporal: Client, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    async with run_worker():
        handle = await temporal.start_workflow(
            "AgentSession",
            {"agent_id": ""},
            id=session_workflow_id("ses_empty_agent"),
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
    err = from_failure(info.value.cause)
    assert err.code == "validation_error"
    assert "agent_id" in err.message
    assert await store.events("ses_empty_agent", strict=False) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"messages": "hello"},
        {"messages": [{"role": "user", "content": ""}]},
        {},
        {"prompt": "hi", "strategy": "yolo"},
        {"prompt": "hi", "retry": {"max_attempts": 0}},
        {"prompt": "hi", "required_capabilities": ["teleportation"]},
    ],
)
async def test_malformed_run_requests_are_rejected_and_session_stays_healthy(
    client: SessionClient,
    temporal: Client,
    store: EventStore,
    run_worker: Any,
    payload: dict[str, Any],
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        before = await store.last_seq(sid)
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        with pytest.raises(Exception) as info:
            await handle.execute_update("submit_run", payload)
        err = from_failure(info.value)
        assert err.code == "validation_error", err
        assert await store.last_seq(sid) == before
        ok = await client.run(sid, "a good one")
    assert ok.status is RunStatus.COMPLETED


async def test_missing_required_capability_rejects_without_creating_a_run(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "go", required_capabilities=["code_execution"])
        view = await client.describe(sid)
    assert info.value.code == "missing_required_capability"
    assert "code_execution" in info.value.message
    assert view.runs == []


async def test_run_on_completed_session_is_rejected_with_invalid_transition(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        await client.complete_session(sid)
        with pytest.raises(AsmError) as info:
            await client.submit_run(sid, "too late")
    assert info.value.code == "invalid_transition"


async def test_pending_session_rejects_runs_until_activated(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        view = await client.start_session(agent_id="a", activate=False)
        assert view.status is SessionStatus.PENDING
        with pytest.raises(AsmError) as info:
            await client.submit_run(view.session_id, "hi")
        assert info.value.code == "invalid_transition"
        assert "pending" in info.value.message
        await client.activate(view.session_id)
        result = await client.run(view.session_id, "hi")
    assert result.status is RunStatus.COMPLETED


async def test_invalid_session_transition_is_rejected(
    client: SessionClient, run_worker: Any
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        with pytest.raises(AsmError) as info:
            await client.activate(sid)
        assert info.value.code == "invalid_transition"
        assert "active" in info.value.message
        view = await client.describe(sid)
    assert view.status is SessionStatus.ACTIVE


async def test_list_sessions_uses_search_attributes(client: SessionClient, run_worker: Any) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="lister", tags=["t1"])).session_id
        await client.run(sid, "hi")
        for _ in range(50):  # visibility is eventually consistent
            rows = await client.list_sessions(f'AsmSessionId = "{sid}"')
            if rows and rows[0].total_tokens > 0:
                break
            await asyncio.sleep(0.1)
    assert rows[0].agent_id == "lister"
    assert rows[0].status == "active"
    assert rows[0].total_tokens > 0
