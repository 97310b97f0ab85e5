"""No input wedges a workflow: starts, updates, signals and queries sent through a RAW
Temporal client (the SDK's default converter, hand-built payloads, ``binary/null``, no payload
at all) fail, reject or are recorded with a typed ``validation_error``; never a failing
workflow task, now or on replay."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import RawValue
from temporalio.converter import default as default_converter
from temporalio.worker import Replayer

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter, from_failure
from agent_session_manager.store import EventStore
from agent_session_manager.workflows.agent_run import AgentRun
from agent_session_manager.workflows.agent_session import AgentSession


def raw(data: bytes, encoding: bytes = b"json/plain") -> RawValue:
    return RawValue(Payload(metadata={"encoding": encoding}, data=data))


def js(value: Any) -> RawValue:
    return raw(json.dumps(value).encode())


NULL = raw(b"", b"binary/null")
NOT_JSON = raw(b"{not json")
UNKNOWN_ENCODING = raw(b"\x00\x01", b"binary/whatever")
NOT_UTF8_ENCODING = raw(b"{}", b"\xff\xfe")


@pytest.fixture
def raw_client(temporal: Client) -> Client:
    """The same server, spoken to with the SDK's default converter: nothing of ours."""
    return Client(
        temporal.service_client,
        namespace=temporal.namespace,
        data_converter=default_converter(),
    )


async def assert_no_failed_workflow_tasks(handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    failed = [
        e
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == [], failed


async def assert_replays(handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[AgentSession, AgentRun], data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _id() -> str:
    return uuid.uuid4().hex[:12]


# --- starts ---------------------------------------------------------------------------------

GOOD = {"agent_id": "a"}

BAD_STARTS: dict[str, list[Any]] = {
    "no input": [],
    "sdk None": [None],
    "binary/null": [NULL],
    "two inputs": [GOOD, GOOD],
    "not json": [NOT_JSON],
    "unknown encoding": [UNKNOWN_ENCODING],
    "encoding not utf-8": [NOT_UTF8_ENCODING],
    "a list": [[1, 2]],
    "a string": ["agent"],
    "missing agent_id": [{}],
    "blank agent_id": [{"agent_id": "  "}],
    "unknown field": [{**GOOD, "colour": "red"}],
    "wrong type": [{"agent_id": 5}],
    "carried from outside": [
        {**GOOD, "carried": {"session_id": "x", "agent_id": "a", "provider": "mock"}}
    ],
    "idle 1e12": [{**GOOD, "idle_timeout_seconds": 1e12}],
    "idle 2**63": [{**GOOD, "idle_timeout_seconds": 2**63}],
    "run timeout Infinity": [raw(b'{"agent_id": "a", "run_timeout_seconds": Infinity}')],
    "heartbeat NaN": [raw(b'{"agent_id": "a", "heartbeat_timeout_seconds": NaN}')],
    "heartbeat negative": [{**GOOD, "heartbeat_timeout_seconds": -1}],
    "session_id too long": [{**GOOD, "session_id": "s" * 256}],
    "session_id with a slash": [{**GOOD, "session_id": "a/b"}],
    "agent_id too long": [{"agent_id": "a" * 256}],
    "agent_id over the search-attribute limit": [{"agent_id": "\U0001f600" * 200}],
    "model too long": [{**GOOD, "model": "m" * 256}],
    "too many tags": [{**GOOD, "tags": [f"t{n}" for n in range(33)]}],
    "tag too long": [{**GOOD, "tags": ["t" * 65]}],
    "tags over the search-attribute limit": [{**GOOD, "tags": ["\U0001f600" * 16] * 12}],
    "system prompt over the input limit": [{**GOOD, "system_prompt": "x" * 300_000}],
    "max_concurrent_runs 2**63": [{**GOOD, "max_concurrent_runs": 2**63}],
    "mock delay a century": [
        {**GOOD, "mock": {"steps": [{"type": "text", "text": "x", "delay_ms": 2**40}]}}
    ],
    "stop_reason over its column": [{**GOOD, "mock": {"stop_reason": "s" * 65}}],
    "budget without a limit": [{**GOOD, "budget": {}}],
    "budget of no tokens": [{**GOOD, "budget": {"tokens": 0}}],
    "budget over 64 bits": [{**GOOD, "budget": {"cost_micros": 2**64}}],
    "budget warn_at NaN": [raw(b'{"agent_id": "a", "budget": {"tokens": 5, "warn_at": NaN}}')],
    "budget null inside": [{**GOOD, "budget": {"tokens": None, "cost_micros": None}}],
    "budget a string": [{**GOOD, "budget": "lots"}],
}


@pytest.mark.parametrize("args", BAD_STARTS.values(), ids=BAD_STARTS.keys())
async def test_a_bad_session_start_fails_at_once_with_validation_error(
    raw_client: Client, store: EventStore, task_queue: str, run_worker: Any, args: list[Any]
) -> None:
    sid = f"ses_bad_{_id()}"
    async with run_worker():
        handle = await raw_client.start_workflow(
            "AgentSession", args=args, id=session_workflow_id(sid), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
        await assert_no_failed_workflow_tasks(handle)
    err = from_failure(info.value.cause)
    assert err.code == "validation_error", err
    assert not err.retryable
    assert err.message
    assert await store.events(sid, strict=False) == []


async def test_a_session_whose_workflow_id_is_no_session_id_fails_typed(
    raw_client: Client, task_queue: str, run_worker: Any
) -> None:
    async with run_worker():
        handle = await raw_client.start_workflow(
            "AgentSession", GOOD, id=f"my sessions/{_id()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
        await assert_no_failed_workflow_tasks(handle)
    err = from_failure(info.value.cause)
    assert err.code == "validation_error"
    assert "session_id" in err.message


BAD_RUN_STARTS: dict[str, list[Any]] = {
    "no input": [],
    "sdk None": [None],
    "not json": [NOT_JSON],
    "two inputs": [{}, {}],
    "wrong shape": [{"run_id": "r"}],
    "run timeout 1e12": [
        {
            "run_id": "r",
            "session_id": "s",
            "agent_id": "a",
            "provider": "mock",
            "turn": 1,
            "messages": [{"role": "user", "content": "hi"}],
            "timeout_seconds": 1e12,
        }
    ],
}


@pytest.mark.parametrize("args", BAD_RUN_STARTS.values(), ids=BAD_RUN_STARTS.keys())
async def test_a_bad_run_start_fails_at_once_with_validation_error(
    raw_client: Client, task_queue: str, run_worker: Any, args: list[Any]
) -> None:
    async with run_worker():
        handle = await raw_client.start_workflow(
            "AgentRun", args=args, id=f"run-bad_{_id()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
        await assert_no_failed_workflow_tasks(handle)
    assert from_failure(info.value.cause).code == "validation_error"


# --- updates --------------------------------------------------------------------------------

UPDATES = [
    "activate",
    "pause",
    "resume",
    "complete",
    "fail",
    "submit_run",
    "cancel_run",
    "interrupt",
    "no_such_update",
]

BAD_ARGS: dict[str, list[Any]] = {
    "missing": [],
    "sdk None": [None],
    "binary/null": [NULL],
    "duplicated": [{}, {}],
    "not json": [NOT_JSON],
    "unknown encoding": [UNKNOWN_ENCODING],
    "a number": [7],
    "unknown field": [{"nonsense": True}],
}

BAD_RUN_REQUESTS: dict[str, list[Any]] = {
    "run_id too long": [{"prompt": "hi", "run_id": "r" * 256}],
    "run_id with spaces": [{"prompt": "hi", "run_id": "r 1"}],
    "timeout 1e12": [{"prompt": "hi", "timeout_seconds": 1e12}],
    "timeout 2**63": [{"prompt": "hi", "timeout_seconds": 2**63}],
    "timeout Infinity": [raw(b'{"prompt": "hi", "timeout_seconds": Infinity}')],
    "timeout NaN": [raw(b'{"prompt": "hi", "timeout_seconds": NaN}')],
    "model too long": [{"prompt": "hi", "model": "m" * 256}],
    "prompt over the input limit": [{"prompt": "x" * 300_000}],
    "messages over the input limit": [
        {"messages": [{"role": "user", "content": "x" * 100_000}] * 3}
    ],
    "retry interval Infinity": [
        raw(b'{"prompt": "hi", "retry": {"initial_interval_seconds": Infinity}}')
    ],
}


async def test_every_update_rejects_every_malformed_argument_typed_and_writes_nothing(
    client: SessionClient, raw_client: Client, store: EventStore, run_worker: Any
) -> None:
    outcomes: dict[str, str] = {}
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        handle = raw_client.get_workflow_handle(session_workflow_id(sid))
        before = await store.last_seq(sid)
        cases = [(u, name, args) for u in UPDATES for name, args in BAD_ARGS.items()]
        cases += [("submit_run", name, args) for name, args in BAD_RUN_REQUESTS.items()]
        cases += [("cancel_run", "run_id too long", [{"run_id": "r" * 256}])]
        cases += [("pause", "reason too long", [{"reason": "r" * 5000}])]
        for update, name, args in cases:
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(update, args=args)
            err = from_failure(info.value)
            outcomes[f"{update}/{name}"] = err.code
            assert err.code == "validation_error", (update, name, err)
            assert not err.retryable, (update, name)
            if name == "run_id too long":
                assert "255" in err.message and "varchar" in err.message, err.message
        assert await store.last_seq(sid) == before  # nothing written for a rejection
        ok = await client.run(sid, "still healthy")
        await assert_no_failed_workflow_tasks(handle)
        await assert_replays(handle)
    assert ok.status is RunStatus.COMPLETED
    assert len(outcomes) == len(cases)


# --- signals --------------------------------------------------------------------------------

BAD_SIGNAL_ARGS: dict[str, list[Any]] = {
    "no payload": [],
    "two payloads": [{"run_id": "x"}, {"run_id": "x"}],
    "sdk None": [None],
    "binary/null": [NULL],
    "not json": [NOT_JSON],
    "unknown encoding": [UNKNOWN_ENCODING],
    "wrong shape": [{"nonsense": 1}],
    "a list": [[1]],
}


async def test_every_malformed_signal_is_recorded_and_dropped_and_replays(
    client: SessionClient, raw_client: Client, store: EventStore, run_worker: Any
) -> None:
    names = ["cancel", "cancel_run", "run_finished", "no_such_signal"]
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        handle = raw_client.get_workflow_handle(session_workflow_id(sid))
        for name in names:
            for args in BAD_SIGNAL_ARGS.values():
                await handle.signal(name, args=args)
        expected = len(names) * len(BAD_SIGNAL_ARGS)
        for _ in range(200):
            errors = [e for e in await store.events(sid) if e.type is EventType.ERROR_OCCURRED]
            if len(errors) >= expected:
                break
            await asyncio.sleep(0.05)
        ok = await client.run(sid, "still healthy")
        view = await client.describe(sid)
        await assert_no_failed_workflow_tasks(handle)
        await assert_replays(handle)
    assert len(errors) == expected
    assert {e.data["code"] for e in errors} == {"validation_error"}
    assert {e.data["signal"] for e in errors} == set(names)
    assert ok.status is RunStatus.COMPLETED
    assert view.status.value == "active"


# --- queries --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[1], [NULL], [NOT_JSON], [UNKNOWN_ENCODING], [{}, {}]])
async def test_a_query_with_arguments_answers_a_typed_error(
    client: SessionClient, raw_client: Client, run_worker: Any, args: list[Any]
) -> None:
    async with run_worker():
        sid = (await client.start_session(agent_id="a")).session_id
        handle = raw_client.get_workflow_handle(session_workflow_id(sid))
        with pytest.raises(WorkflowQueryFailedError) as info:
            await handle.query("describe", args=args)
        await assert_no_failed_workflow_tasks(handle)
        view = await client.describe(sid)
    assert "describe" in str(info.value) or "payload" in str(info.value)
    assert view.status.value == "active"


async def test_unknown_queries_and_updates_answer_typed_on_sessions_and_runs(
    client: SessionClient, raw_client: Client, run_worker: Any
) -> None:
    slow = MockScript(steps=[MockText(text="s" * 500, chunk_size=1, delay_ms=10)])
    async with run_worker():
        sid = (await client.start_session(agent_id="a", mock=slow)).session_id
        ref = await client.submit_run(sid, "go")
        session = raw_client.get_workflow_handle(session_workflow_id(sid))
        run = raw_client.get_workflow_handle(run_workflow_id(ref.run_id))
        for handle in (session, run):
            with pytest.raises(WorkflowQueryFailedError) as query:
                await handle.query("no_such_query")
            assert "unknown query" in str(query.value)
            with pytest.raises(WorkflowUpdateFailedError) as update:
                await handle.execute_update("no_such_update", {})
            assert from_failure(update.value).code == "validation_error"
        with pytest.raises(WorkflowQueryFailedError):
            await run.query("status", 1)
        assert await run.query("status") == "running"
        await client.cancel_run(sid, ref.run_id)
        await assert_no_failed_workflow_tasks(session)
        await assert_no_failed_workflow_tasks(run)


async def test_values_at_every_limit_work_end_to_end(
    client: SessionClient, temporal: Client, store: EventStore, run_worker: Any
) -> None:
    # The bounds are the real limits, not guesses below them: the largest accepted values
    # pass Temporal's search-attribute check and the store's columns, and the run completes.
    agent_id = "\U0001f600" * 160  # 1,922 bytes as escaped JSON: just inside 2 KB
    tags = [f"{n:02d}" + "t" * 62 for n in range(27)]  # 1,810 bytes as escaped JSON
    sid = "s" * 255
    async with run_worker():
        await client.start_session(agent_id=agent_id, session_id=sid, tags=tags, model="m" * 255)
        result = await client.run(sid, "hi", run_id="r" * 255)
        view = await client.describe(sid)
        handle = temporal.get_workflow_handle(session_workflow_id(sid))
        await assert_no_failed_workflow_tasks(handle)
        description = await handle.describe()
    assert result.status is RunStatus.COMPLETED
    assert view.status.value == "active"
    assert description.status is not None and description.status.name == "RUNNING"
    row = await store.get_run("r" * 255)
    assert row is not None and row.session_id == sid
