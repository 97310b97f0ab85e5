"""The whole stack on PostgreSQL, including the event store going away mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
import pytest
from sqlalchemy.engine import make_url
from temporalio.client import Client

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText, RetrySettings, SessionSpec
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.worker import serve
from tests.postgres import SKIP_REASON, PgServer, asyncpg_kwargs, pg_base_url


@pytest.fixture(scope="session")
async def pg() -> AsyncIterator[PgServer]:
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_REASON)
    server = PgServer(base)
    yield server
    await server.drop_all()


@pytest.fixture
async def pg_store(pg: PgServer) -> AsyncIterator[EventStore]:
    url = await pg.create()
    await upgrade(url)
    store = await open_store(url)
    yield store
    await store.close()


@pytest.fixture
def pg_client(temporal: Client, pg_store: EventStore, task_queue: str) -> SessionClient:
    return SessionClient(temporal, pg_store, task_queue=task_queue)


async def test_multi_turn_session_on_postgresql(
    pg_client: SessionClient, pg_store: EventStore, temporal: Client, task_queue: str
) -> None:
    worker = serve(temporal, pg_store, task_queue=task_queue, providers=discover(), secrets={})
    async with worker:
        sid = (await pg_client.start_session(agent_id="pg")).session_id
        first = await pg_client.run(sid, "remember the word 'basalt'")
        second = await pg_client.run(sid, "what was the word?")
        await pg_client.complete_session(sid)
    assert first.status is second.status is RunStatus.COMPLETED
    assert "basalt" in second.output
    seqs = [e.seq for e in await pg_store.events(sid, limit=10_000)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_database_outage_mid_stream_is_waited_out_in_the_attempt_and_nothing_is_lost(
    pg_client: SessionClient, pg_store: EventStore, temporal: Client, task_queue: str
) -> None:
    script = MockScript(steps=[MockText(text="abcdefghij" * 12, chunk_size=2, delay_ms=25)])
    spec = SessionSpec(
        agent_id="pg",
        mock=script,
        retry=RetrySettings(
            max_attempts=20, initial_interval_seconds=0.2, maximum_interval_seconds=1
        ),
    )
    database = make_url(pg_store.url).database
    worker = serve(temporal, pg_store, task_queue=task_queue, providers=discover(), secrets={})
    admin = await asyncpg.connect(**asyncpg_kwargs(make_url(pg_store.url).set(database="postgres")))
    try:
        async with worker:
            sid = (await pg_client.start_session(spec)).session_id
            ref = await pg_client.submit_run(sid, "stream through an outage")
            async for _ in pg_client.stream_text(sid, ref.run_id):
                break  # it is streaming: now take the database away, as a restart would
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            await asyncio.sleep(1.5)
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            result = await asyncio.wait_for(pg_client.wait_run(ref.run_id, sid), 60)
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert result.status is RunStatus.COMPLETED
    # The attempt waited for the database itself: no provider attempt spent, no model re-call.
    assert result.attempts == 1
    events = await pg_store.events(sid, run_id=ref.run_id, limit=10_000)
    final = [e for e in events if e.attempt == result.attempts]
    text = "".join(str(e.data["text"]) for e in final if e.type is EventType.MESSAGE_STREAMED)
    assert text == "abcdefghij" * 12 == result.output
    assert [e.type for e in events].count(EventType.RUN_COMPLETED) == 1
    seqs = [e.seq for e in await pg_store.events(sid, limit=10_000)]
    assert seqs == list(range(1, len(seqs) + 1))
    convo = await pg_store.conversation(sid, before_turn=2)
    assert convo[-1].text() == result.output


async def test_run_on_postgresql_streams_to_a_follower(
    pg_client: SessionClient,
    pg_store: EventStore,
    temporal: Client,
    task_queue: str,
    run_worker: Any,
) -> None:
    script = MockScript(steps=[MockText(text="live " * 10, chunk_size=5, delay_ms=40)])
    worker = serve(temporal, pg_store, task_queue=task_queue, providers=discover(), secrets={})
    async with worker:
        sid = (await pg_client.start_session(agent_id="pg", mock=script)).session_id
        ref = await pg_client.submit_run(sid, "go")
        pieces = [p async for p in pg_client.stream_text(sid, ref.run_id)]
        result = await pg_client.wait_run(ref.run_id, sid)
    assert len(pieces) > 1
    assert "".join(getattr(p, "text", "") for p in pieces) == result.output
