"""A Codex approval pending when its worker is killed (SIGKILL): the request of the dead
attempt must not stay listed forever, nor resolve into a CLI process that is gone.

The worker is ``asm worker`` in a subprocess; the Codex CLI runs under it against the
Responses API fake. The first attempt's CLI asks, the worker dies, the retried attempt's CLI
asks again (a new call, so a new digest): the run resolves the old request as superseded and
lists only the new one, which is the one a human's approve lets proceed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import RunRef
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.tools import PendingApproval
from agent_session_manager.store import EventStore
from tests.chaos.test_crash import WorkerProcess
from tests.fakes import openai_responses_server as openai
from tests.workflows.test_agent_cli_runs import (
    codex_secrets,
    needs_codex,
    of_type,
    run_events,
)
from tests.workflows.test_cli_approvals import asking_spec

DENIED = EventType.TOOL_APPROVAL_DENIED
COMMAND = {
    "cmd": "touch made-by-command",
    "sandbox_permissions": "require_escalated",
    "justification": "needs to write",
}


async def listed(client: SessionClient, run_id: str, not_digest: str = "") -> PendingApproval:
    """The run's one pending approval (other than ``not_digest``), once it asks."""
    async with asyncio.timeout(90):  # the retried attempt waits out the heartbeat timeout
        while True:
            try:
                progress = await client.describe_run(run_id)
            except AsmError:  # a query needs a worker: the restarted one is still connecting
                await asyncio.sleep(0.2)
                continue
            pending = [] if progress is None else progress.pending_approvals
            fresh = [p for p in pending if p.digest != not_digest]
            if fresh:
                assert len(pending) == 1, pending  # the dead attempt's request is not listed
                return fresh[0]
            await asyncio.sleep(0.1)


@dataclass
class Asking:
    """A Codex run whose CLI's request is listed, under a worker subprocess."""

    client: SessionClient
    worker: WorkerProcess
    sid: str
    ref: RunRef
    stale: PendingApproval


@asynccontextmanager
async def asking(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    tmp_path: Path,
    workdir: Path,
    state: Path,
    fake: openai.OpenAIResponsesFake,
) -> AsyncIterator[Asking]:
    """Start ``asm worker`` against ``fake``, a session whose Codex asks, and a run; yield once
    the run lists its request; stop the worker at the end."""
    address = env.client.service_client.config.target_host
    client = SessionClient(env.client, store, task_queue=task_queue)
    worker = WorkerProcess(address, f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}", task_queue)
    worker.env |= codex_secrets(fake)
    await worker.start()
    try:
        spec = asking_spec(workdir, state).model_copy(update={"heartbeat_timeout_seconds": 3.0})
        sid = (await client.start_session(spec)).session_id
        ref = await client.submit_run(sid, "make the file")
        yield Asking(client, worker, sid, ref, await listed(client, ref.run_id))
    finally:
        await worker.stop()


@needs_codex
async def test_codex_approval_of_a_killed_worker_is_superseded_by_the_retried_attempt(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    tmp_path: Path,
    workdir: Path,
    state: Path,
) -> None:
    async with openai.OpenAIResponsesFake() as fake:
        # Each attempt's CLI asks for the same command as a new call (new call id, digest).
        fake.script(
            openai.turn(openai.function_call("exec_command", COMMAND)),
            openai.turn(openai.function_call("exec_command", COMMAND)),
            openai.turn(openai.message("done")),
        )
        async with asking(env, store, task_queue, tmp_path, workdir, state, fake) as run:
            client, worker, sid, ref, stale = run.client, run.worker, run.sid, run.ref, run.stale
            await worker.kill9()
            await worker.start()
            fresh = await listed(client, ref.run_id, not_digest=stale.digest)
            assert fresh.tool == stale.tool and fresh.input == stale.input

            # The dead attempt's request was resolved, as superseded: it takes no decision.
            with pytest.raises(AsmError) as late:
                await client.approve(ref.run_id, stale.digest)
            assert late.value.code == "approval_already_resolved"
            assert "superseded" in late.value.message
            progress = await client.describe_run(ref.run_id)
            assert progress is not None
            [old] = [r for r in progress.resolved_approvals if r.digest == stale.digest]
            assert old.decision == "denied" and old.reason is not None
            assert old.reason.startswith("superseded")
            assert [a.digest for a in await client.pending_approvals(sid)] in (
                [fresh.digest],
                [],  # visibility lags a moment behind the upsert
            )

            await client.approve(ref.run_id, fresh.digest, reason="ok")
            result = await asyncio.wait_for(client.wait_run(ref.run_id, sid), 90)
            ended = await client.describe_run(ref.run_id)  # a query needs the worker
    assert result.status is RunStatus.COMPLETED, result.error
    assert (workdir / "made-by-command").exists()  # the live CLI proceeded
    assert ended is None or ended.pending_approvals == []
    events = await run_events(store, sid, ref.run_id)
    asked = [e.data["digest"] for e in of_type(events, EventType.TOOL_APPROVAL_REQUESTED)]
    assert asked == [stale.digest, fresh.digest]
    granted = [e.data["digest"] for e in of_type(events, EventType.TOOL_APPROVAL_GRANTED)]
    assert granted == [fresh.digest]
    # Recorded by the retried attempt, in the background.
    assert await ended_as_superseded(store, sid, ref.run_id) == [stale.digest]


async def ended_as_superseded(store: EventStore, session_id: str, run_id: str) -> list[str]:
    """The digests the log shows denied, each as superseded by a retried attempt (written in
    the background once the run settled them: waited for)."""
    async with asyncio.timeout(30):
        while True:
            denied = of_type(await run_events(store, session_id, run_id), DENIED)
            if denied:
                break
            await asyncio.sleep(0.1)
    for e in denied:
        assert e.data["decided_by"] == "supersede", e.data
        assert e.data["reason"] == "superseded: provider attempt 2 started", e.data
        assert e.attempt == 2 and e.data["policy"] == "ask" and e.data["kind"]
    return [e.data["digest"] for e in denied]


async def superseded(client: SessionClient, run_id: str, digest: str) -> str:
    """The reason the run resolved ``digest`` with, once it has (the retry has started)."""
    async with asyncio.timeout(90):  # the retried attempt waits out the heartbeat timeout
        while True:
            try:
                progress = await client.describe_run(run_id)
            except AsmError:  # a query needs a worker: the restarted one is still connecting
                progress = None
            for done in [] if progress is None else progress.resolved_approvals:
                if done.digest == digest:
                    assert done.decision == "denied" and done.reason is not None
                    assert progress is not None and progress.pending_approvals == []
                    return done.reason
            await asyncio.sleep(0.1)


async def session_lists_nothing(client: SessionClient, session_id: str) -> None:
    """Wait until the session's ``describe`` lists no approval for its run (the retried
    attempt tells it right after the run)."""
    async with asyncio.timeout(30):
        while True:
            if not (await client.describe(session_id)).runs[0].pending_approvals:
                return
            await asyncio.sleep(0.1)


@needs_codex
async def test_codex_approval_of_a_killed_worker_goes_when_the_retry_starts_without_asking(
    env: WorkflowEnvironment,
    store: EventStore,
    task_queue: str,
    tmp_path: Path,
    workdir: Path,
    state: Path,
) -> None:
    """The retried attempt's CLI does not ask again (the model answers otherwise, slowly):
    the dead attempt's request goes all the same, while the run is still going."""
    async with openai.OpenAIResponsesFake() as fake:
        fake.script(
            openai.turn(openai.function_call("exec_command", COMMAND)),
            # Attempt 2's model answers slowly (a delta every 0.3 s: never silent for long),
            # and asks for nothing: the run is still going when the test looks.
            openai.turn(openai.message("thinking it over. " * 40, chunk_size=6), delay=0.3),
        )
        async with asking(env, store, task_queue, tmp_path, workdir, state, fake) as run:
            client, worker, sid, ref, stale = run.client, run.worker, run.sid, run.ref, run.stale
            assert [a.digest for a in (await client.describe(sid)).runs[0].pending_approvals] == [
                stale.digest
            ]
            await worker.kill9()
            await worker.start()

            reason = await superseded(client, ref.run_id, stale.digest)
            assert reason == "superseded: provider attempt 2 started"
            assert await client.pending_approvals(sid) == []  # `asm approvals ls`
            await session_lists_nothing(client, sid)
            with pytest.raises(AsmError) as late:
                await client.approve(ref.run_id, stale.digest)
            assert late.value.code == "approval_already_resolved"
            assert (await client.describe(sid)).runs[0].status is RunStatus.RUNNING

            await client.cancel_run(sid, ref.run_id)
            result = await asyncio.wait_for(client.wait_run(ref.run_id, sid), 90)
    assert result.status is RunStatus.CANCELLED, result.error
    assert not (workdir / "made-by-command").exists()  # nobody let the dead CLI's command run
    events = await run_events(store, sid, ref.run_id)
    asked = [e.data["digest"] for e in of_type(events, EventType.TOOL_APPROVAL_REQUESTED)]
    assert asked == [stale.digest]  # the retried attempt never asked
    assert not of_type(events, EventType.TOOL_APPROVAL_GRANTED)
    # The dead attempt cannot say how its request ended: the retried one said it.
    assert await ended_as_superseded(store, sid, ref.run_id) == [stale.digest]
