"""Crashes lose and duplicate nothing: the worker killed with SIGKILL in the middle of 20
streaming runs, and the Temporal server itself killed and restarted (on its SQLite file)
mid-run. Every run completes with its exact text, each once.

The worker runs as ``asm worker`` in a subprocess (:mod:`tests.chaos.worker_process`), so a
kill is a real kill.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import MockScript, MockText, RetrySettings
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore
from agent_session_manager.worker.dev_server import DEV_SERVER_TUNING, free_port, temporal_binary
from tests.chaos.worker_process import WorkerProcess, worker_fleet

FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.5)
#: Long enough that a kill lands mid-stream, short enough for CI: ~4 s per run.
TEXT = "".join(f"{i:03d} " for i in range(200))
SCRIPT = MockScript(steps=[MockText(text=TEXT, chunk_size=8, delay_ms=40)])


async def start_streaming_runs(client: SessionClient, count: int) -> list[tuple[str, str]]:
    """``count`` sessions with one streaming run each; (session, run) pairs."""

    async def one() -> tuple[str, str]:
        view = await client.start_session(
            agent_id="crash", mock=SCRIPT, retry=FAST_RETRY, heartbeat_timeout_seconds=2
        )
        ref = await client.submit_run(view.session_id, "go")
        return view.session_id, ref.run_id

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def until_streaming(store: EventStore, runs: list[tuple[str, str]]) -> None:
    """Wait until every run has streamed some text (and none has finished)."""
    for _ in range(600):
        streamed = [EventType.MESSAGE_STREAMED.value]
        counts = [len(await store.events(s, run_id=r, types=streamed)) for s, r in runs]
        if all(counts):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the runs never started streaming")


async def assert_exactly_once(client: SessionClient, store: EventStore, sid: str, rid: str) -> int:
    """The run completed with the exact text, once; returns its attempts."""
    result = await asyncio.wait_for(client.wait_run(rid, sid), 120)
    assert result.status is RunStatus.COMPLETED, result
    assert result.output == TEXT
    text = ""
    async for piece in client.stream_text(sid, rid):
        if isinstance(piece, Reset):
            text = ""
        elif isinstance(piece, TextDelta):
            text += piece.text
    assert text == TEXT  # what a reader sees: the last attempt, whole, nothing twice
    # The session accounts the turn just after the run's end is visible: give it the moment.
    for _ in range(300):
        events = await store.events(sid, limit=10_000)
        if any(e.type is EventType.TURN_COMPLETED and e.run_id == rid for e in events):
            break
        await asyncio.sleep(0.1)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gap-free
    assert len({e.id for e in events}) == len(events)
    ends = [e.type for e in events if e.run_id == rid and e.type is not EventType.MESSAGE_STREAMED]
    for once in (EventType.RUN_COMPLETED, EventType.TURN_COMPLETED):
        assert ends.count(once) == 1, (once, ends)
    last = max(e.attempt for e in events if e.run_id == rid)
    deltas = [
        e.data.get("text", "")
        for e in events
        if e.run_id == rid and e.type is EventType.MESSAGE_STREAMED and e.attempt == last
    ]
    assert "".join(deltas) == TEXT  # the final attempt's deltas: none lost, none doubled
    return result.attempts


async def test_worker_killed_mid_stream_during_20_runs_every_run_completes_exactly_once(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, tmp_path: Path
) -> None:
    address = env.client.service_client.config.target_host
    client = SessionClient(env.client, store, task_queue=task_queue)
    db = tmp_path / "asm.db"
    worker = WorkerProcess(address, f"sqlite+aiosqlite:///{db}", task_queue)
    async with worker_fleet([worker]):
        runs = await start_streaming_runs(client, 20)
        await until_streaming(store, runs)
        await worker.kill9()
        await worker.start()
        checks = (assert_exactly_once(client, store, s, r) for s, r in runs)
        attempts = await asyncio.gather(*checks)
    # The kill landed mid-stream: runs were cut off and retried, not merely finished.
    assert max(attempts) >= 2, attempts


async def start_server(port: int, db: Path) -> asyncio.subprocess.Process:
    """``temporal server start-dev`` on ``port``, persisting to ``db``."""
    attrs = [
        arg
        for key in search_attributes.ALL
        for arg in ("--search-attribute", f"{key.name}={key._metadata_type}")
    ]
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(db),
        "--log-level",
        "error",
        *attrs,
        *DEV_SERVER_TUNING,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            client = await Client.connect(f"127.0.0.1:{port}", data_converter=data_converter)
            await client.count_workflows()
            return proc
        except Exception:
            if proc.returncode is not None:
                raise AssertionError(f"the dev server exited with {proc.returncode}") from None
            await asyncio.sleep(0.1)
    raise AssertionError("the dev server never answered")


async def test_temporal_server_killed_and_restarted_mid_run_every_run_completes_exactly_once(
    store: EventStore, task_queue: str, tmp_path: Path
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    temporal_db = tmp_path / "temporal.db"
    server = await start_server(port, temporal_db)
    try:
        temporal = await Client.connect(address, data_converter=data_converter)
        client = SessionClient(temporal, store, task_queue=task_queue)
        url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
        async with worker_fleet([WorkerProcess(address, url, task_queue)]):
            runs = await start_streaming_runs(client, 5)
            await until_streaming(store, runs)
            server.send_signal(signal.SIGKILL)
            await server.wait()
            await asyncio.sleep(1.0)
            server = await start_server(port, temporal_db)  # same file: nothing forgotten
            temporal = await Client.connect(address, data_converter=data_converter)
            client = SessionClient(temporal, store, task_queue=task_queue)
            for s, r in runs:
                await assert_exactly_once(client, store, s, r)
    finally:
        if server.returncode is None:
            server.terminate()
            await server.wait()
