"""Record the histories that ``tests/workflows/test_replay.py`` replays.

Run ``.venv/bin/python -m tests.histories.record`` after an *intentional* change to workflow
behaviour that running sessions will never see (new sessions only). A change that running
sessions *will* replay must instead be guarded with ``workflow.patched("<change-id>")``:
first move the affected files to ``before-<change-id>/`` (the replay test reads every
directory, so they keep proving the old branch), then record the new ones here.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent_session_manager.activities.providers import discover
from agent_session_manager.activities.tools import tool
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    AttemptStarted,
    MockError,
    MockScript,
    MockText,
    MockToolUse,
    RetrySettings,
    RunRequest,
    RunSpec,
    SessionSpec,
    Transition,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.protocol import ATTEMPT_STARTED, CLI_APPROVAL_REQUESTED
from agent_session_manager.core.tools import (
    CliApprovalRequest,
    PendingApproval,
    ToolSpec,
    action_digest,
    sha256_of,
)
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve
from agent_session_manager.workflows.agent_session import AgentSession

HERE = Path(__file__).parent


@tool(description="Add two numbers")
def add(args: dict[str, int]) -> str:
    return str(sum(args.values()))


@tool(description="Delete a path", approval="ask", approval_timeout_seconds=3600)
def delete(args: dict[str, str]) -> str:
    return "deleted"


TOOLS = [add, delete]


Scenario = Callable[[SessionClient], Awaitable[list[Path]]]


async def record(names: list[str] | None = None) -> list[Path]:
    """Run the representative sessions (or those ``names``) and write their histories."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/asm.db"
        await upgrade(url)
        store = await open_store(url)
        env = await start_dev_server(home=None, ui=False)
        queue = f"record-{uuid.uuid4().hex[:8]}"
        client = SessionClient(env.client, store, task_queue=queue)
        worker = serve(
            env.client, store, task_queue=queue, providers=discover(), secrets={}, tools=TOOLS
        )
        try:
            async with worker:
                for name, scenario in SCENARIOS.items():
                    if names is None or name in names:
                        written += await scenario(client)
        finally:
            await env.shutdown()
            await store.close()
    return written


async def _save(client: SessionClient, name: str, workflow_id: str) -> Path:
    """Save the first execution of ``workflow_id`` (the one that continued-as-new, if any)."""
    executions = [
        wf async for wf in client.temporal.list_workflows(f'WorkflowId = "{workflow_id}"')
    ]
    first = min(executions, key=lambda wf: wf.start_time)
    handle = client.temporal.get_workflow_handle(workflow_id, run_id=first.run_id)
    history = await handle.fetch_history()
    path = HERE / f"{name}.json"
    path.write_text(history.to_json())
    return path


async def _multi_turn(client: SessionClient) -> list[Path]:
    sid = (await client.start_session(agent_id="rec", session_id="ses_rec_multi")).session_id
    first = await client.run(sid, "first question")
    await client.run(sid, "second question")
    await client.complete_session(sid)
    return [
        await _save(client, "session_multi_turn", f"session-{sid}"),
        await _save(client, "run_completed", f"run-{first.run_id}"),
    ]


async def _cancelled(client: SessionClient) -> list[Path]:
    slow = MockScript(steps=[MockText(text="z" * 300, chunk_size=1, delay_ms=10)])
    sid = (
        await client.start_session(agent_id="rec", session_id="ses_rec_cancel", mock=slow)
    ).session_id
    ref = await client.submit_run(sid, "long")
    await asyncio.sleep(0.5)
    await client.cancel_session(sid, reason="recording")
    await client.result(sid)
    return [
        await _save(client, "session_cancelled", f"session-{sid}"),
        await _save(client, "run_cancelled", f"run-{ref.run_id}"),
    ]


async def _retried(client: SessionClient) -> list[Path]:
    flaky = MockScript(
        steps=[
            MockText(text="partial"),
            MockError(code="provider_rate_limited", retry_after=0.2, attempts=[1]),
            MockText(text=" done"),
        ]
    )
    spec = SessionSpec(
        agent_id="rec",
        session_id="ses_rec_retry",
        mock=flaky,
        retry=RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=1),
    )
    sid = (await client.start_session(spec)).session_id
    result = await client.run(sid, "flaky")
    await client.complete_session(sid)
    return [await _save(client, "run_retried", f"run-{result.run_id}")]


async def _continued_as_new(client: SessionClient) -> list[Path]:
    spec = SessionSpec(agent_id="rec", session_id="ses_rec_can", continue_as_new_after_runs=2)
    sid = (await client.start_session(spec)).session_id
    for n in range(3):
        await client.run(sid, f"turn {n}")
    await client.complete_session(sid)
    return [await _save(client, "session_continued_as_new", f"session-{sid}")]


async def _preempted(client: SessionClient) -> list[Path]:
    """Every way a session stops runs it holds: strategy interrupt (while a queued run waits),
    the interrupt update, strategy rollback, and a cancel with a run active and one queued."""
    slow = MockScript(steps=[MockText(text="z" * 300, chunk_size=1, delay_ms=10)])
    quick = MockScript(steps=[MockText(text="ok")])
    spec = SessionSpec(agent_id="rec", session_id="ses_rec_preempt", mock=slow)
    sid = (await client.start_session(spec)).session_id
    handle = client.temporal.get_workflow_handle(session_workflow_id(sid))
    await client.submit_run(sid, "one")
    await client.submit_run(sid, "two", strategy="enqueue")
    await asyncio.sleep(0.3)
    third = await client.submit_run(sid, "three", strategy="interrupt", mock=quick)
    await client.wait_run(third.run_id, sid)
    await handle.execute_update(AgentSession.interrupt, Transition(reason="recording"))
    await client.submit_run(sid, "four")
    await asyncio.sleep(0.3)
    fifth = await client.submit_run(sid, "five", strategy="rollback", mock=quick)
    await client.wait_run(fifth.run_id, sid)
    await client.submit_run(sid, "six")
    await client.submit_run(sid, "seven", strategy="enqueue")
    await asyncio.sleep(0.3)
    await client.cancel_session(sid, reason="recording")
    await client.result(sid)
    return [await _save(client, "session_preempted", f"session-{sid}")]


async def _inline_content(client: SessionClient) -> list[Path]:
    """A caller that is not ``SessionClient`` (any SDK, the ``temporal`` CLI) sends a system
    prompt and a prompt above the inline limit in the payloads themselves."""
    sid = "ses_rec_inline"
    spec = SessionSpec(agent_id="rec", session_id=sid, system_prompt="s" * 6000)
    handle = await client.temporal.start_workflow(
        AgentSession.run, spec, id=session_workflow_id(sid), task_queue=client.task_queue
    )
    await client._wait_started(handle, sid)
    ref = await handle.execute_update(AgentSession.submit_run, RunRequest(prompt="p" * 8000))
    await client.wait_run(ref.run_id, sid)
    await client.run(sid, "small")
    await client.complete_session(sid)
    return [await _save(client, "session_inline_content", f"session-{sid}")]


async def _tool_loop(client: SessionClient) -> list[Path]:
    """The agent loop (patch agent-loop): a worker tool, an approved one and a client-side one
    in one round, then the final reply."""
    ask_user = ToolSpec(name="ask_user", executor="client")
    spec = SessionSpec(
        agent_id="rec",
        session_id="ses_rec_tools",
        tools=["add", "delete"],
        client_tools=[ask_user],
    )
    sid = (await client.start_session(spec)).session_id
    script = MockScript(
        steps=[
            MockToolUse(name="add", input={"a": 1, "b": 2}),
            MockToolUse(name="delete", input={"path": "/tmp/x"}),
            MockToolUse(name="ask_user", input={"q": "ok?"}),
        ],
        stop_reason="tool_use",
        after_tools=[MockScript(steps=[MockText(text="all done")])],
    )
    ref = await client.submit_run(sid, request=RunRequest(prompt="go", mock=script))
    while True:
        progress = await client.describe_run(ref.run_id)
        if progress and progress.pending_approvals and progress.pending_tool_calls:
            break
        await asyncio.sleep(0.05)
    await client.approve(ref.run_id, progress.pending_approvals[0].digest, reason="recording")
    await client.submit_tool_result(ref.run_id, progress.pending_tool_calls[0].call_id, "yes")
    await client.wait_run(ref.run_id, sid)
    await client.complete_session(sid)
    return [await _save(client, "run_tool_loop", f"run-{ref.run_id}")]


async def _attempt_started(client: SessionClient) -> list[Path]:
    """A CLI approval left pending by attempt 1, then attempt 2 starts (patch attempt-started):
    the signals a provider activity sends, sent here while a slow mock run streams."""
    slow = MockScript(steps=[MockText(text="z" * 300, chunk_size=1, delay_ms=10)])
    spec = SessionSpec(agent_id="rec", session_id="ses_rec_attempt", mock=slow)
    sid = (await client.start_session(spec)).session_id
    ref = await client.submit_run(sid, "slow")
    run = client.temporal.get_workflow_handle(run_workflow_id(ref.run_id))
    start = await anext(aiter(run.fetch_history_events()))
    payloads = start.workflow_execution_started_event_attributes.input.payloads
    [run_spec] = await client.temporal.data_converter.decode(payloads, [RunSpec])
    arguments = sha256_of({"command": "make"})
    digest = action_digest(
        call_id="c1",
        tool="command_execution",
        arguments_sha256=arguments,
        policy_version="v1",
        expires_at=None,
    )
    pending = PendingApproval(
        run_id=ref.run_id,
        session_id=sid,
        call_id="c1",
        tool="command_execution",
        arguments_sha256=arguments,
        policy_version="v1",
        digest=digest,
    )
    request = CliApprovalRequest(token=run_spec.token, approval=pending, activity_id="1", attempt=1)
    await run.signal(CLI_APPROVAL_REQUESTED, request)
    await run.signal(
        ATTEMPT_STARTED, AttemptStarted(token=run_spec.token, activity_id="1", attempt=2)
    )
    await client.wait_run(ref.run_id, sid)
    await client.complete_session(sid)
    return [await _save(client, "run_attempt_started", f"run-{ref.run_id}")]


#: Every scenario, by name: ``python -m tests.histories.record [name ...]`` records those.
SCENARIOS: dict[str, Scenario] = {
    "multi_turn": _multi_turn,
    "cancelled": _cancelled,
    "retried": _retried,
    "continued_as_new": _continued_as_new,
    "preempted": _preempted,
    "inline_content": _inline_content,
    "tool_loop": _tool_loop,
    "attempt_started": _attempt_started,
}


if __name__ == "__main__":
    for p in asyncio.run(record(sys.argv[1:] or None)):
        print(p)
