"""The ``execute_tool`` activity against a real SQLite store: what each attempt records, and
when (``tool_call_started`` waits up to the flush interval to share the call's last write)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from agent_session_manager.activities.tools import Tool, ToolActivities, call_scope, tool
from agent_session_manager.core.events import Event, EventDraft, EventType, activity_event_id
from agent_session_manager.core.tools import ToolCallRequest, ToolInvocation, sha256_of
from agent_session_manager.store import EventStore

#: Longer than any test: a call never outlasts it, so its events share one write.
NEVER = 3600.0


@pytest.fixture
def writes(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> list[list[EventType]]:
    """The types of each ``append`` batch, in order (one batch: one transaction)."""
    batches: list[list[EventType]] = []
    append = store.append

    async def recording(drafts: Sequence[EventDraft]) -> list[Event]:
        batches.append([d.type for d in drafts])
        return await append(drafts)

    monkeypatch.setattr(store, "append", recording)
    return batches


def invocation(name: str) -> ToolInvocation:
    return ToolInvocation(
        session_id="s1",
        run_id="r1",
        provider="mock",
        call=ToolCallRequest(
            call_id="toolu_1", name=name, input={}, arguments_sha256=sha256_of({})
        ),
    )


async def recorded(store: EventStore) -> list[Event]:
    return await store.events("s1", run_id="r1")


def ids(attempt: int, count: int) -> list[str]:
    scope = call_scope("r1", "toolu_1")
    return [activity_event_id(scope, attempt, i) for i in range(1, count + 1)]


class Gate:
    """A tool that runs until released, and says when it has started."""

    def __init__(self, fail: bool = False) -> None:
        self.running = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = fail

    def tool(self) -> Tool:
        async def gated(args: dict[str, Any]) -> str:
            self.running.set()
            await self.release.wait()
            if self.fail:
                raise RuntimeError("broke late")
            return "finally"

        made: Tool = tool(gated, description="Waits for the test")
        return made


async def until_recorded(store: EventStore, count: int) -> list[Event]:
    for _ in range(1000):
        if len(events := await recorded(store)) >= count:
            return events
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} events never recorded: {await recorded(store)}")


async def test_a_fast_tool_writes_started_and_completed_in_one_transaction(
    store: EventStore, writes: list[list[EventType]]
) -> None:
    @tool(description="Answers at once")
    async def quick(args: dict[str, Any]) -> str:
        return "done"

    acts = ToolActivities(store, {"quick": quick}, flush_interval=NEVER)
    result = await ActivityEnvironment().run(acts.execute_tool, invocation("quick"))
    assert (result.status, result.output, result.attempt) == ("completed", "done", 1)
    assert writes == [[EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_COMPLETED]]
    events = await recorded(store)
    assert [e.type for e in events] == [EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_COMPLETED]
    assert [e.id for e in events] == ids(1, 2)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert all(e.attempt == 1 and e.data["attempt"] == 1 for e in events)
    assert events[1].data["output"] == "done"


async def test_a_slow_tool_is_seen_running_before_it_ends(
    store: EventStore, writes: list[list[EventType]]
) -> None:
    gate = Gate()
    acts = ToolActivities(store, {"gated": gate.tool()}, flush_interval=0.01)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=3)
    running = asyncio.ensure_future(env.run(acts.execute_tool, invocation("gated")))
    await gate.running.wait()
    (started,) = await until_recorded(store, 1)
    # Visible while the tool still runs: it cannot end before the test releases it.
    assert not running.done() and not gate.release.is_set()
    assert (started.type, started.id, started.attempt) == (
        EventType.TOOL_CALL_STARTED,
        ids(3, 1)[0],
        3,
    )
    gate.release.set()
    result = await running
    assert (result.output, result.attempt) == ("finally", 3)
    assert writes == [[EventType.TOOL_CALL_STARTED], [EventType.TOOL_CALL_COMPLETED]]
    events = await recorded(store)
    assert [e.id for e in events] == ids(3, 2)
    assert events[1].type is EventType.TOOL_CALL_COMPLETED


async def test_a_fast_failure_records_started_then_failed_together(
    store: EventStore, writes: list[list[EventType]]
) -> None:
    @tool(description="Always breaks")
    async def broken(args: dict[str, Any]) -> str:
        raise ValueError("no")

    acts = ToolActivities(store, {"broken": broken}, flush_interval=NEVER)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.execute_tool, invocation("broken"))
    assert caught.value.type == "tool_execution_failed"
    assert writes == [[EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_FAILED]]
    events = await recorded(store)
    assert [e.type for e in events] == [EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_FAILED]
    assert [e.id for e in events] == ids(1, 2)
    assert events[1].data["code"] == "tool_execution_failed"


async def test_an_unknown_tool_is_recorded_as_started_and_failed(store: EventStore) -> None:
    acts = ToolActivities(store, {}, flush_interval=NEVER)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.execute_tool, invocation("missing"))
    assert caught.value.type == "tool_not_found" and caught.value.non_retryable
    events = await recorded(store)
    assert [e.type for e in events] == [EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_FAILED]


async def test_a_slow_failure_keeps_its_started_event_first(
    store: EventStore, writes: list[list[EventType]]
) -> None:
    gate = Gate(fail=True)
    acts = ToolActivities(store, {"gated": gate.tool()}, flush_interval=0.01)
    running = asyncio.ensure_future(
        ActivityEnvironment().run(acts.execute_tool, invocation("gated"))
    )
    await until_recorded(store, 1)
    gate.release.set()
    with pytest.raises(ApplicationError):
        await running
    assert writes == [[EventType.TOOL_CALL_STARTED], [EventType.TOOL_CALL_FAILED]]
    events = await recorded(store)
    assert [e.type for e in events] == [EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_FAILED]
    assert "broke late" in events[1].data["error"]


@pytest.mark.parametrize("flush_interval", [NEVER, 0.01], ids=["before-started", "after"])
async def test_a_cancelled_call_records_started_then_cancelled(
    store: EventStore, flush_interval: float
) -> None:
    gate = Gate()
    acts = ToolActivities(store, {"gated": gate.tool()}, flush_interval=flush_interval)
    env = ActivityEnvironment()
    running = asyncio.ensure_future(env.run(acts.execute_tool, invocation("gated")))
    await gate.running.wait()
    if flush_interval != NEVER:
        await until_recorded(store, 1)  # cancelled after tool_call_started was written
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    events = await recorded(store)
    assert [e.type for e in events] == [EventType.TOOL_CALL_STARTED, EventType.TOOL_CALL_FAILED]
    assert [e.id for e in events] == ids(1, 2)
    assert events[1].data["code"] == "cancelled"
    assert not gate.release.is_set()  # the tool never ended on its own
