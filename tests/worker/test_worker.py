"""``serve`` is the one worker assembly: both workflows and every activity, for one block."""

from __future__ import annotations

from temporalio.client import Client

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.status import RunStatus
from agent_session_manager.observability.instrumented_store import InstrumentedStore
from agent_session_manager.store import EventStore
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve


def defn(registered: object, kind: str) -> str:
    """The name a workflow class or activity was registered under (its Temporal definition)."""
    return str(getattr(registered, f"__temporal_{kind}_definition").name)


async def test_serve_runs_sessions_on_the_settings_queue_until_the_block_ends(
    temporal: Client, store: EventStore, task_queue: str
) -> None:
    settings = Settings(task_queue=task_queue)
    async with serve(temporal, store, settings=settings, secrets={}) as worker:
        assert worker.task_queue == task_queue
        client = SessionClient(temporal, store, task_queue=task_queue)
        view = await client.start_session(agent_id="served", provider="mock")
        result = await client.run(view.session_id, "hello")
        assert result.status is RunStatus.COMPLETED
    assert worker.is_shutdown


async def test_serve_registers_both_workflows_and_every_activity_on_an_instrumented_store(
    temporal: Client, store: EventStore, task_queue: str
) -> None:
    async with serve(temporal, store, task_queue=task_queue, secrets={}) as worker:
        config = worker.config()
        workflows = {getattr(w, "__temporal_workflow_definition").name for w in config["workflows"]}
        activities = {
            getattr(a, "__temporal_activity_definition").name for a in config["activities"]
        }
        stores = {type(a.__self__.store) for a in config["activities"]}
    assert workflows == {"AgentSession", "AgentRun"}
    assert activities == {
        "stream_provider",
        "execute_tool",
        "record_lifecycle",
        "provider_catalog",
        "rollback_run",
        "request_cancel",
        "claim_session",
        "claim_run",
        "store_content",
    }
    assert stores == {InstrumentedStore}
