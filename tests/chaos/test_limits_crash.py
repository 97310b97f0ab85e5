"""Fleet-wide slots survive a worker's death: ``kill -9`` of the worker holding run slots
frees them (its leases expire, or its runs' retries take them over), no slot is counted twice
meanwhile, and every run completes exactly once. The timing is measured in bench/limits.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import EventStore
from tests.chaos.test_crash import FAST_RETRY, SCRIPT, assert_exactly_once
from tests.chaos.worker_process import WorkerProcess

LIMIT = 2


async def test_kill_9_of_a_slot_holder_frees_its_slots_and_counts_nothing_twice(
    env: WorkflowEnvironment, store: EventStore, task_queue: str, tmp_path: Path
) -> None:
    address = env.client.service_client.config.target_host
    client = SessionClient(env.client, store, task_queue=task_queue)
    url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
    limits = json.dumps({"max_runs": LIMIT, "poll_seconds": 0.1})
    workers = [WorkerProcess(address, url, task_queue, ASM_LIMITS=limits) for _ in range(2)]
    await asyncio.gather(*(w.start() for w in workers))
    try:
        runs = []
        for i in range(LIMIT + 1):
            sid = f"ses_crash_limits_{i}_{time.time_ns()}"
            try:
                await client.start_session(
                    agent_id="crash-limits",
                    session_id=sid,
                    mock=SCRIPT,
                    retry=FAST_RETRY,
                    heartbeat_timeout_seconds=2,
                    tags=[f"tenant:t{i}"],
                )
            except AsmError:
                # A cold worker process's first workflow task (the sandbox imports the
                # workflow modules) can outlast the client's query on a loaded machine.
                for _ in range(600):
                    with contextlib.suppress(AsmError):
                        if (await client.describe(sid)).ready:
                            break
                    await asyncio.sleep(0.2)
            runs.append((sid, (await client.submit_run(sid, "go")).run_id))
        mine = {f"run:{r}" for _, r in runs}

        async def held() -> list[tuple[str, str]]:
            leases = await store.leases(now=time.time())
            return [
                (x.lease_id, x.holder) for x in leases if x.lease_id in mine and x.state == "held"
            ]

        for _ in range(600):
            if len(await held()) == LIMIT:
                break
            await asyncio.sleep(0.05)
        holding = await held()
        assert len(holding) == LIMIT
        victim_pid = int(holding[0][1].split("/")[0].rsplit(":", 1)[1])
        victim = next(w for w in workers if w.proc is not None and w.proc.pid == victim_pid)
        victim_holder = holding[0][1].split("/")[0]
        await victim.kill9()

        most = 0
        freed = False
        for _ in range(1200):  # bounded: a leak fails the test instead of hanging it
            now_held = await held()
            most = max(most, len(now_held))
            if not any(h.split("/")[0] == victim_holder for _, h in now_held):
                freed = True
                break
            await asyncio.sleep(0.05)
        assert freed, "the killed worker's slots were never freed"
        await victim.start()  # back to two workers, so the runs finish in CI time
        for sid, rid in runs:
            await assert_exactly_once(client, store, sid, rid)
        assert most <= LIMIT
        assert await held() == []
        assert [x for x in await store.leases(now=time.time()) if x.lease_id in mine] == []
    finally:
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
