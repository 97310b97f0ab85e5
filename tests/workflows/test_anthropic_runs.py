"""Issue 5 acceptance: full ``AgentRun``s with ``provider="anthropic"`` on the real dev server.

The worker runs the real ``anthropic`` SDK (no monkeypatching) against the
:class:`~tests.fakes.anthropic_server.AnthropicFake` on 127.0.0.1; credentials reach the worker
only through ``run_worker(secrets=...)``. Every test scripts the fake, drives a session through
:class:`~client.session_client.SessionClient`, and checks what the fake received, the event
store, the run's result and, where it matters, the Temporal history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowHistory

from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core.contract import (
    RetrySettings,
    SessionSpec,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore
from tests.fakes.anthropic_server import (
    AnthropicFake,
    HttpError,
    Reply,
    Stall,
    StreamError,
    Text,
    ToolUse,
    Usage,
)

#: Distinctive, so a leak anywhere is easy to find.
API_KEY = "sk-ant-test-SECRET123"
MODEL = "claude-sonnet-4-6"
SYSTEM_PROMPT = "You are a terse assistant for the acceptance tests."
FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=2)
COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[AnthropicFake]:
    """The fake Messages API; it accepts only :data:`API_KEY`, so a 2xx proves the key arrived."""
    async with AnthropicFake(api_key=API_KEY) as server:
        yield server


def secrets_for(fake: AnthropicFake, api_key: str = API_KEY) -> dict[str, str]:
    """The worker's provider secrets (worker environment only, never workflow input)."""
    return {"ANTHROPIC_API_KEY": api_key, "ANTHROPIC_BASE_URL": fake.base_url}


def spec(**overrides: Any) -> SessionSpec:
    """An anthropic session with fast retries."""
    fields: dict[str, Any] = {
        "agent_id": "agent-anthropic",
        "provider": "anthropic",
        "model": MODEL,
        "system_prompt": SYSTEM_PROMPT,
        "retry": FAST_RETRY,
        **overrides,
    }
    return SessionSpec(**fields)


async def run_events(store: EventStore, session_id: str, run_id: str) -> list[Event]:
    return await store.events(session_id, run_id=run_id, limit=10_000)


def of_type(events: list[Event], type: EventType) -> list[Event]:
    return [e for e in events if e.type is type]


def streamed_text(events: list[Event], attempt: int) -> str:
    return "".join(
        str(e.data["text"])
        for e in events
        if e.type is EventType.MESSAGE_STREAMED and e.attempt == attempt
    )


def raw_files(directory: Path, pattern: str) -> dict[str, bytes]:
    """The bytes of every file matching ``pattern`` (sync: small files, read once)."""
    return {p.name: p.read_bytes() for p in directory.glob(pattern)}


async def started_attempts(temporal: Client, run_id: str) -> list[Any]:
    """The provider activity's ``ActivityTaskStarted`` attributes in the run's history."""
    history = await temporal.get_workflow_handle(run_workflow_id(run_id)).fetch_history()
    return [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]


# --- streaming, tools, continuity ---------------------------------------------------------------


async def test_text_streams_to_a_follower_before_the_run_completes_with_usage(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    usage = Usage(
        input_tokens=42, output_tokens=17, cache_creation_input_tokens=5, cache_read_input_tokens=9
    )
    fake.script(
        Reply([Text("Durable ", "execution ", "survives ", "crashes.")], usage=usage, delay=0.15)
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        ref = await client.submit_run(sid, "What is durable execution?")
        pieces: list[str] = []
        status_at_first_delta: RunStatus | None = None
        async for piece in client.stream_text(sid, ref.run_id):
            assert isinstance(piece, TextDelta), piece  # one attempt: no Reset
            if not pieces:
                view = await client.describe(sid)
                status_at_first_delta = view.runs[0].status
            pieces.append(piece.text)
        result = await client.wait_run(ref.run_id, sid)
        view = await client.describe(sid)
    assert status_at_first_delta is RunStatus.RUNNING
    assert len(pieces) > 1
    assert result.status is RunStatus.COMPLETED
    assert "".join(pieces) == result.output == "Durable execution survives crashes."
    assert result.stop_reason == "end_turn"
    assert result.attempts == 1
    expected = TokenUsage(
        input_tokens=42, output_tokens=17, cache_creation_input_tokens=5, cache_read_input_tokens=9
    )
    assert result.usage == expected
    assert view.runs[0].usage == expected
    assert view.usage == expected
    events = await run_events(store, sid, ref.run_id)
    # The live usage event a follower sees carries the same four counts.
    reported = of_type(events, EventType.TOKEN_USAGE_UPDATED)[-1].data
    assert TokenUsage.model_validate({k: reported[k] for k in COUNTS}) == expected
    # One real request, streamed, with the key from the worker's secrets.
    [request] = fake.message_requests
    assert request.json["stream"] is True
    assert request.json["model"] == MODEL
    assert request.credential == API_KEY


async def test_two_tool_use_blocks_become_two_tool_call_pairs_with_parsed_input(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    weather = {"city": "Paris", "units": "metric"}
    clock = {"timezone": "Europe/Paris", "format": {"hours": 24}}
    fake.script(
        Reply(
            [
                Text("Checking both."),
                ToolUse("get_weather", weather, id="toolu_weather", chunk_size=5),
                ToolUse("get_time", clock, id="toolu_time", chunk_size=7),
            ]
        )
    )
    tools = [
        {"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}},
        {"name": "get_time", "description": "time", "input_schema": {"type": "object"}},
    ]
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec(provider_options={"tools": tools}))).session_id
        result = await client.run(sid, "Weather and time in Paris?")
    assert result.status is RunStatus.COMPLETED
    assert result.stop_reason == "tool_use"
    assert result.output == "Checking both."
    events = await run_events(store, sid, result.run_id)
    started = of_type(events, EventType.TOOL_CALL_STARTED)
    completed = of_type(events, EventType.TOOL_CALL_COMPLETED)
    assert [(e.data["id"], e.data["name"]) for e in started] == [
        ("toolu_weather", "get_weather"),
        ("toolu_time", "get_time"),
    ]
    assert [(e.data["id"], e.data["name"], e.data["input"]) for e in completed] == [
        ("toolu_weather", "get_weather", weather),
        ("toolu_time", "get_time", clock),
    ]
    assert of_type(events, EventType.TOOL_CALL_FAILED) == []
    # Each call starts before it completes, and the pairs do not interleave.
    seqs: dict[str, list[int]] = {e.data["id"]: [] for e in started}
    for e in started + completed:
        seqs[e.data["id"]].append(e.seq)
    assert seqs["toolu_weather"][0] < seqs["toolu_weather"][1] < seqs["toolu_time"][0]
    assert seqs["toolu_time"][0] < seqs["toolu_time"][1]
    assert fake.message_requests[0].json["tools"] == tools


async def test_second_run_sends_the_first_runs_messages_and_the_system_prompt(
    client: SessionClient, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(
        Reply([Text("Durable execution means progress survives crashes.")]),
        Reply([Text("You asked what durable execution is.")]),
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        first = await client.run(sid, "What is durable execution?")
        second = await client.run(sid, "What did I just ask?")
    assert first.status is second.status is RunStatus.COMPLETED
    assert second.output == "You asked what durable execution is."
    first_body, second_body = (r.json for r in fake.message_requests)
    assert first_body["system"] == second_body["system"] == SYSTEM_PROMPT
    assert first_body["messages"] == [{"role": "user", "content": "What is durable execution?"}]
    messages = second_body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0] == {"role": "user", "content": "What is durable execution?"}
    assistant = messages[1]["content"]
    text = (
        assistant
        if isinstance(assistant, str)
        else "".join(b.get("text", "") for b in assistant if b.get("type") == "text")
    )
    assert text == first.output == "Durable execution means progress survives crashes."
    assert messages[2] == {"role": "user", "content": "What did I just ask?"}


# --- retries ------------------------------------------------------------------------------------


async def test_429_with_retry_after_is_retried_no_sooner_than_asked_and_recovers(
    client: SessionClient,
    store: EventStore,
    temporal: Client,
    run_worker: Any,
    fake: AnthropicFake,
) -> None:
    fake.script(
        HttpError(429, message="Number of requests has exceeded your rate limit", retry_after=1),
        Reply([Text("Made it on the second try.")]),
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        result = await client.run(sid, "go")
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert result.output == "Made it on the second try."
    first, second = fake.message_requests
    # The policy's initial interval is 0.1 s: only retry-after explains a 1 s gap.
    assert second.received_at - first.received_at >= 1.0
    events = await run_events(store, sid, result.run_id)
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert failed.attempt == 1
    assert failed.data["code"] == "provider_rate_limited"
    assert failed.data["retryable"] is True
    assert failed.data["provider_error"]["status_code"] == 429
    assert failed.data["provider_error"]["retry_after"] == 1.0
    [recovered] = of_type(events, EventType.ERROR_RECOVERED)
    assert recovered.attempt == 2 and recovered.data["superseded_attempts"] == [1]
    # History keeps only the attempt that finished; its number and last failure show the retry.
    [started] = await started_attempts(temporal, result.run_id)
    assert started.attempt == 2
    assert started.last_failure.application_failure_info.type == "provider_rate_limited"


async def test_mid_stream_overloaded_error_supersedes_partial_output_and_recovers(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(
        Reply(
            [Text("Partial ", "answer ", "that ", "dies")],
            delay=0.05,
            interrupt=StreamError("overloaded_error", "Overloaded"),
        ),
        Reply([Text("The ", "full ", "answer.")]),
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        ref = await client.submit_run(sid, "go")
        pieces = [p async for p in client.stream_text(sid, ref.run_id)]
        result = await client.wait_run(ref.run_id, sid)
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert result.output == "The full answer."
    assert len(fake.message_requests) == 2
    events = await run_events(store, sid, ref.run_id)
    # Attempt 1 streamed its partial text before failing, and the log keeps it, marked.
    assert streamed_text(events, 1) == "Partial answer that dies"
    assert streamed_text(events, 2) == "The full answer."
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert failed.attempt == 1
    assert failed.data["code"] == "provider_unavailable"
    assert failed.data["provider_error"].get("status_code") is None  # it came inside a 200
    [recovered] = of_type(events, EventType.ERROR_RECOVERED)
    assert recovered.data["superseded_attempts"] == [1]
    assert failed.seq < recovered.seq
    # A follower is told to throw away attempt 1's text, then sees exactly attempt 2's.
    resets = [i for i, p in enumerate(pieces) if isinstance(p, Reset)]
    assert len(resets) == 1 and pieces[resets[0]] == Reset(attempt=2)
    before = "".join(p.text for p in pieces[: resets[0]] if isinstance(p, TextDelta))
    after = "".join(p.text for p in pieces[resets[0] + 1 :] if isinstance(p, TextDelta))
    assert before == "Partial answer that dies"
    assert after == result.output


async def test_529_overloaded_is_retried_then_succeeds(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(HttpError(529, message="Overloaded"), Reply([Text("Back again.")]))
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        result = await client.run(sid, "go")
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert result.output == "Back again."
    assert len(fake.message_requests) == 2
    events = await run_events(store, sid, result.run_id)
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert (failed.attempt, failed.data["code"]) == (1, "provider_unavailable")
    assert failed.data["provider_error"]["status_code"] == 529
    assert of_type(events, EventType.ERROR_RECOVERED)[0].data["superseded_attempts"] == [1]


@pytest.mark.parametrize(
    "limits",
    [
        pytest.param({"heartbeat_timeout_seconds": 1.0}, id="heartbeat_timeout"),
        pytest.param({"provider_options": {"read_timeout": 1}}, id="read_timeout"),
    ],
)
async def test_stalled_stream_times_out_as_provider_timeout_then_recovers(
    client: SessionClient,
    store: EventStore,
    run_worker: Any,
    fake: AnthropicFake,
    limits: dict[str, Any],
) -> None:
    fake.script(
        # message_start, ping, content_block_start, one delta; then silence, connection open.
        Reply([Text("Stal", "led")], interrupt=Stall(after_events=4)),
        Reply([Text("Recovered.")]),
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec(**limits))).session_id
        result = await client.run(sid, "go")
    assert result.status is RunStatus.COMPLETED
    assert result.attempts == 2
    assert result.output == "Recovered."
    first, second = fake.message_requests
    # Not before the 1 s limit; and not the 60 s default read timeout or the run deadline.
    assert 1.0 <= second.received_at - first.received_at < 10.0
    # The worker closed the stalled connection rather than leaving it open.
    [gone] = fake.disconnects
    assert gone.request is first and gone.events_sent == 4
    events = await run_events(store, sid, result.run_id)
    [failed] = of_type(events, EventType.ERROR_OCCURRED)
    assert (failed.attempt, failed.data["code"]) == (1, "provider_timeout")
    assert failed.data["retryable"] is True
    assert streamed_text(events, 1) == "Stal"
    assert of_type(events, EventType.ERROR_RECOVERED)[0].data["superseded_attempts"] == [1]


# --- errors that end the run --------------------------------------------------------------------


async def test_400_fails_the_run_at_once_with_invalid_input(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(
        HttpError(400, message="messages: roles must alternate"),
        Reply([Text("must never be used")]),
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        result = await client.run(sid, "go")
        view = await client.describe(sid)
        await asyncio.sleep(0.5)  # a (wrong) retry would have arrived by now: backoff is 0.1 s
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error["code"] == "invalid_input"
    assert "roles must alternate" in result.error["message"]
    assert result.error["provider_error"]["status_code"] == 400
    assert len(fake.message_requests) == 1
    assert len(fake.pending) == 1
    assert view.runs[0].status is RunStatus.FAILED
    events = await run_events(store, sid, result.run_id)
    assert [(e.attempt, e.data["code"]) for e in of_type(events, EventType.ERROR_OCCURRED)] == [
        (1, "invalid_input")
    ]
    assert len(of_type(events, EventType.RUN_FAILED)) == 1
    row = await store.get_run(result.run_id)
    assert row is not None and row.status == "failed"


async def test_401_fails_with_provider_authentication_failed_after_one_attempt(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(Reply([Text("must never be used")]))
    # A wrong key: the fake itself answers 401, as the API does.
    async with run_worker(secrets=secrets_for(fake, api_key="sk-ant-test-WRONG")):
        sid = (await client.start_session(spec())).session_id
        result = await client.run(sid, "go")
        await asyncio.sleep(0.5)
    assert result.status is RunStatus.FAILED
    assert result.error is not None
    assert result.error["code"] == "provider_authentication_failed"
    assert result.error["retryable"] is False
    assert len(fake.requests) == 1
    assert fake.requests[0].credential == "sk-ant-test-WRONG"
    events = await run_events(store, sid, result.run_id)
    assert [(e.attempt, e.data["code"]) for e in of_type(events, EventType.ERROR_OCCURRED)] == [
        (1, "provider_authentication_failed")
    ]
    assert "sk-ant-test-WRONG" not in str(result.error)


async def test_run_that_exhausts_its_retries_reports_the_attempts_it_made(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(HttpError(529, message="Overloaded"), HttpError(529, message="Overloaded"))
    retry = RetrySettings(
        max_attempts=2, initial_interval_seconds=0.1, maximum_interval_seconds=0.2
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec(retry=retry))).session_id
        result = await client.run(sid, "go")
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error["code"] == "provider_unavailable"
    assert len(fake.message_requests) == 2
    events = await run_events(store, sid, result.run_id)
    assert [e.attempt for e in of_type(events, EventType.ERROR_OCCURRED)] == [1, 2]
    # Two attempts were made: the result and the run's row must say so (as they do on success).
    assert result.attempts == 2
    row = await store.get_run(result.run_id)
    assert row is not None and row.attempts == 2


# --- cancellation -------------------------------------------------------------------------------


async def test_cancel_mid_stream_closes_the_connection_within_a_second(
    client: SessionClient, store: EventStore, run_worker: Any, fake: AnthropicFake
) -> None:
    fake.script(Reply([Text(*[f"token{i} " for i in range(200)])], delay=0.05))  # ~10 s
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        ref = await client.submit_run(sid, "a long answer, please")
        async for piece in client.stream_text(sid, ref.run_id):
            assert isinstance(piece, TextDelta)
            break  # it is streaming
        cancel_at = time.monotonic()
        cancelled = await client.cancel_run(sid, ref.run_id)
        gone = await fake.wait_for_disconnect(timeout=5.0)
        result = await client.wait_run(ref.run_id, sid)
        view = await client.describe(sid)
    assert cancelled.status is RunStatus.CANCELLED
    assert gone.request is fake.message_requests[0]
    assert gone.at - cancel_at < 1.0
    assert 0 < gone.events_sent < 200
    assert result.status is RunStatus.CANCELLED
    assert view.runs[0].status is RunStatus.CANCELLED
    assert len(fake.message_requests) == 1  # a cancel is not retried
    events = await run_events(store, sid, ref.run_id)
    types = [e.type for e in events]
    assert types.count(EventType.RUN_CANCELLED) == 1
    assert EventType.MESSAGE_STREAMED not in types[types.index(EventType.RUN_CANCELLED) + 1 :]
    assert EventType.RUN_COMPLETED not in types
    row = await store.get_run(ref.run_id)
    assert row is not None and row.status == "cancelled"


# --- secrets ------------------------------------------------------------------------------------


async def test_api_key_never_reaches_history_events_store_or_logs(
    client: SessionClient,
    store: EventStore,
    temporal: Client,
    run_worker: Any,
    fake: AnthropicFake,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script(
        HttpError(429, retry_after=0),  # an error path: error details go to events and history
        Reply([Text("Hello ", "there."), ToolUse("lookup", {"q": "x"})]),
        HttpError(400, message="bad request"),  # a failed run: its error reaches the session
    )
    async with run_worker(secrets=secrets_for(fake)):
        sid = (await client.start_session(spec())).session_id
        ok = await client.run(sid, "first")
        bad = await client.run(sid, "second")
        await client.complete_session(sid)
        await client.result(sid)
    assert ok.status is RunStatus.COMPLETED and ok.attempts == 2
    assert bad.status is RunStatus.FAILED
    # The key did reach the provider...
    assert {r.credential for r in fake.message_requests} == {API_KEY}
    # ...and nowhere else.
    histories: list[WorkflowHistory] = [
        await temporal.get_workflow_handle(wf).fetch_history()
        for wf in (
            session_workflow_id(sid),
            run_workflow_id(ok.run_id),
            run_workflow_id(bad.run_id),
        )
    ]
    for history in histories:
        text = history.to_json()
        assert API_KEY not in text, history.workflow_id
        assert fake.base_url not in text, history.workflow_id
    events = await store.events(sid, limit=10_000)
    assert events
    for event in events:
        assert API_KEY not in event.model_dump_json(), event
    raw = raw_files(tmp_path, "asm.db*")  # the SQLite file and its WAL, byte for byte
    assert raw, "no database file found"
    for name, content in raw.items():
        assert API_KEY.encode() not in content, name
    # DEBUG capture really covered the SDK and the activity, not just our own code.
    loggers = {r.name for r in caplog.records}
    assert any(name.startswith("anthropic") for name in loggers), loggers
    assert any(name.startswith("temporalio.activity") for name in loggers), loggers
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in record.getMessage(), record
        assert API_KEY not in repr(record.__dict__), record
