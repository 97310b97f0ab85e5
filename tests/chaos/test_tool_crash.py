"""Issue 17 acceptance under crashes: the agent loop against the Anthropic wire fake with the
worker killed (SIGKILL) in the middle of a tool, and a pending approval that outlives a worker
kill and a Temporal server restart.

The worker is ``asm worker`` in a subprocess with the tools of :mod:`tests.chaos.tools`
(``ASM_TOOLS``), which log every start and end to a file, so the test counts executions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import RetrySettings, SessionSpec
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore
from agent_session_manager.worker.dev_server import free_port
from tests.chaos.test_crash import start_server
from tests.chaos.worker_process import WorkerProcess
from tests.fakes.anthropic_server import AnthropicFake, Reply, Text, ToolUse

API_KEY = "sk-ant-test-TOOLS"
FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.5)


@pytest.fixture
async def fake() -> AsyncIterator[AnthropicFake]:
    async with AnthropicFake(api_key=API_KEY) as server:
        yield server


def tool_worker(address: str, db: Path, task_queue: str, fake: AnthropicFake, log: Path) -> Any:
    worker = WorkerProcess(address, f"sqlite+aiosqlite:///{db}", task_queue)
    worker.env |= {
        "ASM_TOOLS": json.dumps(["tests.chaos.tools:TOOLS"]),
        "ASM_TEST_TOOL_LOG": str(log),
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": fake.base_url,
    }
    return worker


def spec(tools: list[str]) -> SessionSpec:
    return SessionSpec(
        agent_id="tool-crash",
        provider="anthropic",
        model="claude-sonnet-4-6",
        retry=FAST_RETRY,
        heartbeat_timeout_seconds=5,
        tools=tools,
    )


def logged(log: Path) -> list[str]:
    """The tool log's lines (sync: a small file)."""
    return log.read_text().splitlines() if log.exists() else []


async def until_logged(log: Path, line: str) -> None:
    for _ in range(600):
        if line in logged(log):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{line!r} never logged")


async def test_worker_killed_during_the_second_tool_runs_the_first_once_and_completes(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    tmp_path: Path,
    fake: AnthropicFake,
) -> None:
    log = tmp_path / "tools.log"
    fake.script(
        Reply([ToolUse("work", {"n": 1})]),
        Reply([Text("now two"), ToolUse("work", {"n": 2, "sleep": 3})]),
        Reply([ToolUse("work", {"n": 3})]),
        Reply([Text("all three done")]),
    )
    address = env.client.service_client.config.target_host
    client = SessionClient(env.client, store, task_queue=task_queue)
    worker = tool_worker(address, tmp_path / "asm.db", task_queue, fake, log)
    await worker.start()
    try:
        view = await client.start_session(spec(["work"]))
        ref = await client.submit_run(view.session_id, "do the three steps")
        await until_logged(log, "start 2")
        await worker.kill9()
        await worker.start()
        result = await asyncio.wait_for(client.wait_run(ref.run_id, view.session_id), 120)
    finally:
        await worker.stop()
    assert result.status is RunStatus.COMPLETED, result
    assert result.output == "all three done"
    lines = logged(log)
    assert lines.count("start 1") == 1 and lines.count("done 1") == 1, lines  # ran once
    assert lines.count("done 2") == 1 and lines.count("start 2") == 2, lines  # cut, re-run
    assert lines.count("start 3") == 1 and lines.count("done 3") == 1, lines
    # Each model call reached the fake once (no attempt failed), each extending the last.
    requests = [r.json for r in fake.message_requests]
    assert len(requests) == 4, [r["messages"] for r in requests]
    for before, after in itertools.pairwise(requests):
        assert after["messages"][: len(before["messages"])] == before["messages"]
        assert len(after["messages"]) == len(before["messages"]) + 2
    assert [t["name"] for t in requests[0]["tools"]] == ["work"]
    last = requests[-1]["messages"]
    uses = [
        b["id"]
        for m in last
        if m["role"] == "assistant"
        for b in m["content"]
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    answered = [
        b["tool_use_id"]
        for m in last
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert uses == answered and len(uses) == 3
    events = await store.events(view.session_id, run_id=ref.run_id, limit=10_000)
    completed = [
        e
        for e in events
        if e.type is EventType.TOOL_CALL_COMPLETED and "output" in e.data and e.data.get("attempt")
    ]
    assert sorted(e.data["output"] for e in completed) == [
        "step 1 done",
        "step 2 done",
        "step 3 done",
    ]
    assert [e.attempt for e in completed if e.data["output"] == "step 2 done"] == [2]


async def test_pending_approval_survives_worker_kill_and_server_restart(
    store: EventStore, task_queue: str, tmp_path: Path, fake: AnthropicFake
) -> None:
    log = tmp_path / "tools.log"
    fake.script(Reply([ToolUse("remove", {"n": 7})]), Reply([Text("removed it")]))
    port = free_port()
    address = f"127.0.0.1:{port}"
    temporal_db = tmp_path / "temporal.db"
    server = await start_server(port, temporal_db)
    worker = tool_worker(address, tmp_path / "asm.db", task_queue, fake, log)
    try:
        temporal = await Client.connect(address, data_converter=data_converter)
        client = SessionClient(temporal, store, task_queue=task_queue)
        await worker.start()
        view = await client.start_session(spec(["remove"]))
        ref = await client.submit_run(view.session_id, "remove 7")
        for _ in range(200):
            progress = await client.describe_run(ref.run_id)
            if progress is not None and progress.pending_approvals:
                break
            await asyncio.sleep(0.05)
        assert progress is not None and progress.phase == "awaiting_approval"
        digest = progress.pending_approvals[0].digest
        await worker.kill9()
        server.send_signal(signal.SIGKILL)
        await server.wait()
        server = await start_server(port, temporal_db)  # same file: nothing forgotten
        await worker.start()
        temporal = await Client.connect(address, data_converter=data_converter)
        client = SessionClient(temporal, store, task_queue=task_queue)  # a reconnecting client
        listed: list[Any] = []
        for _ in range(200):  # visibility catches up with the restarted server
            listed = await client.pending_approvals(view.session_id)
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [a.digest for a in listed] == [digest]
        assert logged(log) == []  # nothing ran while it waited
        await client.approve(ref.run_id, digest, reason="ok after restart")
        result = await asyncio.wait_for(client.wait_run(ref.run_id, view.session_id), 60)
        assert result.status is RunStatus.COMPLETED and result.output == "removed it"
        assert logged(log) == ["remove 7"]
    finally:
        await worker.stop()
        if server.returncode is None:
            server.terminate()
            await server.wait()
