"""The public contract driven by the plain `temporal` CLI, as a user of any SDK would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import SessionStatus
from agent_session_manager.store import EventStore
from agent_session_manager.worker.dev_server import temporal_binary


async def temporal_cli(env: WorkflowEnvironment, *args: str) -> dict[str, Any] | str:
    """Run ``temporal <args> --address … -o json`` and return its parsed output."""
    address = env.client.service_client.config.target_host
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        *args,
        "--address",
        address,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    text = out.decode().strip()
    try:
        parsed: dict[str, Any] = json.loads(text)
        return parsed
    except json.JSONDecodeError:
        return text


async def test_session_started_updated_and_cancelled_with_the_temporal_cli(
    env: WorkflowEnvironment,
    client: SessionClient,
    store: EventStore,
    task_queue: str,
    run_worker: Any,
) -> None:
    sid = "ses_from_cli"
    wid = f"session-{sid}"
    async with run_worker():
        await temporal_cli(
            env,
            "workflow",
            "start",
            "--type",
            "AgentSession",
            "--task-queue",
            task_queue,
            "--workflow-id",
            wid,
            "--input",
            json.dumps({"agent_id": "cli-agent"}),
        )
        for _ in range(100):
            view = await client.describe(sid)
            if view.status is SessionStatus.ACTIVE:
                break
            await asyncio.sleep(0.05)
        assert view.agent_id == "cli-agent"
        ref = await temporal_cli(
            env,
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            wid,
            "--name",
            "submit_run",
            "--input",
            json.dumps({"prompt": "hello from the CLI"}),
        )
        assert isinstance(ref, dict)
        run_id = ref["result"]["run_id"] if "result" in ref else ref["run_id"]
        result = await client.wait_run(run_id, sid)
        assert "hello from the CLI" in result.output
        described = await temporal_cli(
            env, "workflow", "query", "--workflow-id", wid, "--name", "describe"
        )
        assert "cli-agent" in json.dumps(described)
        await temporal_cli(
            env,
            "workflow",
            "signal",
            "--workflow-id",
            wid,
            "--name",
            "cancel",
            "--input",
            json.dumps({"reason": "cli"}),
        )
        summary = await client.result(sid)
    assert summary.status is SessionStatus.CANCELLED
    types = [e.type for e in await store.events(sid)]
    assert types.count(EventType.SESSION_CANCELLED) == 1
