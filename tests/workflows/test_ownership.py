"""Ids cannot be crossed: a start naming another session's id fails ``session_already_exists``,
a submit reusing another session's run id is rejected ``validation_error``, and neither writes
anything to the other session's stream or read models. Driven through a RAW Temporal client,
as a careless caller of the public contract would."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.converter import default as default_converter

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import session_workflow_id
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import from_failure
from agent_session_manager.store import EventStore
from tests.workflows.test_bad_input import assert_no_failed_workflow_tasks, assert_replays


def _id() -> str:
    return uuid.uuid4().hex[:10]


async def settled(store: EventStore, session_id: str, run_id: str) -> list[Event]:
    """The session's events once it has accounted the run (``turn_completed`` comes just after
    the run's end is visible)."""
    for _ in range(200):
        events = await store.events(session_id, limit=10_000)
        if any(e.type is EventType.TURN_COMPLETED and e.run_id == run_id for e in events):
            return events
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} was never accounted")


@pytest.fixture
def raw_client(temporal: Client) -> Client:
    """The same server, spoken to with the SDK's default converter: nothing of ours."""
    return Client(
        temporal.service_client, namespace=temporal.namespace, data_converter=default_converter()
    )


async def test_a_start_naming_another_sessions_id_fails_and_writes_nothing(
    raw_client: Client, client: SessionClient, store: EventStore, task_queue: str, run_worker: Any
) -> None:
    async with run_worker():
        victim = (await client.start_session(agent_id="victim")).session_id
        done = await client.run(victim, "hello")
        await settled(store, victim, done.run_id)
        await client.complete_session(victim)  # its workflow id is free to start again
        await client.result(victim)
        before_events = await store.events(victim, limit=10_000)
        before_row = await store.get_session(victim)
        # Another workflow id whose spec names the victim's session id.
        handle = await raw_client.start_workflow(
            "AgentSession",
            {"agent_id": "intruder", "session_id": victim, "tags": ["intruder"]},
            id=f"session-intruder-{_id()}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 20)
        await assert_no_failed_workflow_tasks(handle)
        await assert_replays(handle)
        # The same workflow id started afresh is another session workflow too.
        again = await raw_client.start_workflow(
            "AgentSession",
            {"agent_id": "intruder"},
            id=session_workflow_id(victim),
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as info_again:
            await asyncio.wait_for(again.result(), 20)
        # Through the client: the same typed refusal.
        with pytest.raises(AsmError) as by_client:
            await client.start_session(agent_id="intruder", session_id=victim)
        assert by_client.value.code == "session_already_exists"
    for failure in (info.value, info_again.value):
        err = from_failure(failure.cause)
        assert err.code == "session_already_exists", err
        assert not err.retryable
        assert "new session_id" in err.message
    assert await store.events(victim, limit=10_000) == before_events  # nothing appended
    assert await store.get_session(victim) == before_row  # read model untouched
    assert before_row is not None and before_row.agent_id == "victim"
    run = await store.get_run(done.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


async def test_a_submit_reusing_another_sessions_run_id_is_rejected_and_writes_nothing(
    raw_client: Client, client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker():
        victim = (await client.start_session(agent_id="victim")).session_id
        done = await client.run(victim, "the victim's question")
        victim_events = await settled(store, victim, done.run_id)
        victim_run = await store.get_run(done.run_id)
        intruder = (await client.start_session(agent_id="intruder")).session_id
        intruder_events = await store.events(intruder, limit=10_000)
        handle = raw_client.get_workflow_handle(session_workflow_id(intruder))
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(
                "submit_run", {"run_id": done.run_id, "prompt": "overwrite"}
            )
        view = await client.describe(intruder)
        after_rejection = await store.events(intruder, limit=10_000)
        await assert_no_failed_workflow_tasks(handle)
        await assert_replays(handle)
        # The session goes on: a run of its own still works.
        own = await client.run(intruder, "my own question")
        intruder_final = await settled(store, intruder, own.run_id)
    err = from_failure(info.value.cause)
    assert err.code == "validation_error", err
    assert done.run_id in err.message and "belongs to another session" in err.message
    assert victim not in err.message
    assert view.runs == [] and view.run_count == 0  # nothing placed
    assert after_rejection == intruder_events  # nothing recorded for the rejection
    assert await store.get_run(done.run_id) == victim_run  # the victim's row untouched
    assert await store.events(victim, limit=10_000) == victim_events
    assert all(e.run_id != done.run_id for e in intruder_final)
    assert own.status is RunStatus.COMPLETED
