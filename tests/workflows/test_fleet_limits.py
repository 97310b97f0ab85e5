"""Fleet-wide limits through the real engine: a run past the limit waits (``run_queued`` with
its position, then ``run_started``), the slot is freed on every ending, a 429 cools every
worker down, and a session past the session limit is refused with ``max_sessions_exceeded``."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from temporalio.client import Client

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockError,
    MockScript,
    MockText,
    RetrySettings,
)
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import EventType
from agent_session_manager.core.limits import Limits
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import EventStore
from agent_session_manager.worker.settings import Settings

FAST_RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=1.0)
SLOW = MockScript(steps=[MockText(text="." * 40, chunk_size=1, delay_ms=25)])


def limited(**limits: Any) -> Settings:
    return Settings(limits=Limits(poll_seconds=0.05, **limits))


async def run_leases(store: EventStore) -> list[str]:
    return [x.lease_id for x in await store.leases(now=time.time()) if x.kind == "run"]


async def test_runs_past_the_limit_queue_then_start_and_never_overlap(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    async with run_worker(settings=limited(max_runs=1)):
        sids = [
            (await client.start_session(agent_id="a", mock=SLOW, tags=[f"tenant:t{i}"])).session_id
            for i in range(3)
        ]
        refs = await asyncio.gather(*(client.submit_run(sid, "go") for sid in sids))
        results = await asyncio.gather(
            *(client.wait_run(r.run_id, sid) for r, sid in zip(refs, sids, strict=True))
        )
    assert [r.status for r in results] == [RunStatus.COMPLETED] * 3
    spans = []
    queued_runs = 0
    for ref, sid in zip(refs, sids, strict=True):
        events = await store.events(sid, run_id=ref.run_id)
        types = [e.type for e in events]
        if EventType.RUN_QUEUED in types:
            queued_runs += 1
            queued = events[types.index(EventType.RUN_QUEUED)]
            assert types.index(EventType.RUN_QUEUED) < types.index(EventType.RUN_STARTED)
            assert queued.data["reason"] == "slot"
            assert queued.data["position"] >= 1
            assert queued.data["scopes"] == ["runs"]
        started = next(e for e in events if e.type is EventType.RUN_STARTED).created_at
        ended = next(e for e in events if e.type is EventType.RUN_COMPLETED).created_at
        spans.append((started, ended))
    assert queued_runs >= 2  # one slot, three runs submitted together
    spans.sort()
    # One slot, held from before run_started until the provider has answered (released before
    # the reply is saved, so run_completed may land just after the next run_started): each run
    # starts a provider call later than the one before, whose SLOW call streams 40 chunks
    # 25 ms apart (0.975 s). Half of that leaves room for run_started's own write, which runs
    # beside the call; runs sharing a slot would start milliseconds apart.
    for (start_prev, _), (start, _) in itertools.pairwise(spans):
        assert (start - start_prev).total_seconds() >= 0.5
    assert await run_leases(store) == []


@pytest.mark.parametrize("ending", ["failed", "cancelled", "timeout"])
async def test_slot_is_released_on_every_ending(
    client: SessionClient, store: EventStore, run_worker: Any, ending: str
) -> None:
    script = {
        "failed": MockScript(steps=[MockError(code="provider_error", message="no")]),
        "cancelled": MockScript(steps=[MockText(text="." * 3000, chunk_size=1, delay_ms=10)]),
        "timeout": MockScript(steps=[MockText(text="." * 3000, chunk_size=1, delay_ms=10)]),
    }[ending]
    async with run_worker(settings=limited(max_runs=1)):
        sid = (await client.start_session(agent_id="a", mock=script)).session_id
        ref = await client.submit_run(sid, "go", timeout_seconds=1 if ending == "timeout" else None)
        if ending == "cancelled":
            for _ in range(200):
                if await run_leases(store):
                    break
                await asyncio.sleep(0.05)
            assert await run_leases(store) == [f"run:{ref.run_id}"]
            await client.cancel_run(sid, ref.run_id)
        result = await client.wait_run(ref.run_id, sid)
        assert result.status.value == ending
        assert await run_leases(store) == []
        # The slot is free for the next run.
        nxt = await client.submit_run(
            sid, "next", mock=MockScript(steps=[MockText(text="ok")]), strategy="enqueue"
        )
        assert (await client.wait_run(nxt.run_id, sid)).status is RunStatus.COMPLETED
    assert await run_leases(store) == []


async def test_queued_run_can_be_cancelled_while_waiting(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    hold = MockScript(steps=[MockText(text="." * 3000, chunk_size=1, delay_ms=10)])
    async with run_worker(settings=limited(max_runs=1)):
        first = (await client.start_session(agent_id="a", mock=hold)).session_id
        second = (await client.start_session(agent_id="a", mock=hold)).session_id
        running = await client.submit_run(first, "hold the slot")
        waiting = await client.submit_run(second, "wait")
        for _ in range(200):
            types = [e.type for e in await store.events(second, run_id=waiting.run_id)]
            if EventType.RUN_QUEUED in types:
                break
            await asyncio.sleep(0.05)
        assert EventType.RUN_QUEUED in types and EventType.RUN_STARTED not in types
        row = await store.get_run(waiting.run_id)
        assert row is not None and row.status is RunStatus.PENDING
        await client.cancel_run(second, waiting.run_id)
        assert (await client.wait_run(waiting.run_id, second)).status is RunStatus.CANCELLED
        await client.cancel_run(first, running.run_id)
        assert (await client.wait_run(running.run_id, first)).status is RunStatus.CANCELLED
    assert await run_leases(store) == []


async def test_rate_limit_sets_a_cooldown_every_run_honours(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    limited_once = MockScript(
        steps=[
            MockError(code="provider_rate_limited", retry_after=2.0, attempts=[1]),
            MockText(text="ok"),
        ]
    )
    async with run_worker(settings=limited()):
        a = (
            await client.start_session(agent_id="a", mock=limited_once, retry=FAST_RETRY)
        ).session_id
        b = (await client.start_session(agent_id="a", retry=FAST_RETRY)).session_id
        ra = await client.submit_run(a, "hit the limit")
        for _ in range(200):
            if any(s.cooldown_until > time.time() for s in await store.rate_states()):
                break
            await asyncio.sleep(0.05)
        rb = await client.submit_run(
            b, "same credential and model", mock=MockScript(steps=[MockText(text="ok")])
        )
        result_b = await client.wait_run(rb.run_id, b)
        result_a = await client.wait_run(ra.run_id, a)
    assert result_a.status is RunStatus.COMPLETED and result_a.attempts == 2
    assert result_b.status is RunStatus.COMPLETED
    waits = [e for e in await store.events(b, run_id=rb.run_id) if e.type is EventType.RUN_QUEUED]
    assert waits and waits[0].data["reason"] == "cooldown"


async def test_session_past_the_limit_is_refused(
    client: SessionClient, store: EventStore, run_worker: Any, temporal: Client
) -> None:
    agent = f"agent-{time.time_ns()}"
    async with run_worker(settings=limited(max_sessions_per_agent=2)):
        first = (await client.start_session(agent_id=agent)).session_id
        await client.start_session(agent_id=agent)
        with pytest.raises(AsmError) as refused:
            await client.start_session(agent_id=agent)
        assert refused.value.code == "max_sessions_exceeded"
        await client.complete_session(first)
        third = await client.start_session(agent_id=agent)  # a slot freed
        assert third.status.value == "active"


async def test_a_run_waiting_longer_than_its_heartbeat_timeout_keeps_its_one_attempt(
    client: SessionClient, store: EventStore, run_worker: Any
) -> None:
    long = MockScript(steps=[MockText(text="." * 800, chunk_size=1, delay_ms=10)])
    async with run_worker(settings=limited(max_runs=1)):
        first = (
            await client.start_session(agent_id="a", mock=long, heartbeat_timeout_seconds=3)
        ).session_id
        second = (
            await client.start_session(
                agent_id="a",
                # First token after 0.3 s: the silence watch looks before it (every 0.1 s).
                mock=MockScript(steps=[MockText(text="." * 3, chunk_size=1, delay_ms=300)]),
                heartbeat_timeout_seconds=3,
            )
        ).session_id
        holder = await client.submit_run(first, "hold the slot for ~8 s")
        for _ in range(400):  # the holder has the slot before the waiter asks
            if await run_leases(store):
                break
            await asyncio.sleep(0.05)
        waiter = await client.submit_run(second, "wait longer than the heartbeat timeout")
        held = await client.wait_run(holder.run_id, first)
        waited = await client.wait_run(waiter.run_id, second)
    assert held.status is RunStatus.COMPLETED
    assert waited.status is RunStatus.COMPLETED
    events = await store.events(second, run_id=waiter.run_id)
    types = [e.type for e in events]
    queued = next(e for e in events if e.type is EventType.RUN_QUEUED).created_at
    started = next(e for e in events if e.type is EventType.RUN_STARTED).created_at
    assert (started - queued).total_seconds() > 3  # it did wait past the heartbeat timeout
    # Waiting heartbeats: Temporal does not time the attempt out and retry it meanwhile.
    assert waited.attempts == 1 and EventType.ERROR_OCCURRED not in types
