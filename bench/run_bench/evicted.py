"""Phase: a run in a long session after the worker dropped it from its cache.

For each N in ``--evict-runs`` (50, 200, 1000): one of our sessions and one session-shaped bare
parent get N runs each (all sessions driven at once). Then, ``--evict-samples`` times, the
phase's workers are restarted (a fresh worker has an empty cache: exactly what a deploy, a
crash, or more active sessions than ``max_cached_workflows`` do to a session) and warmed on a
throwaway session, and for each N the next run is timed (the worker replays the session's
current execution first), then one more (now cached). The report gives both, their ratio
(target for N = 1,000: <= 3) and the history the replay read (events and bytes of the
session's current execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from typing import Any

from temporalio.worker import Worker

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import SessionSpec
from agent_session_manager.core.status import RunStatus
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve
from run_bench.bare import BenchRun, BenchSession
from run_bench.bare_store import BareStore
from run_bench.harness import FAST, Harness, bounded, log
from run_bench.stats import ms


class _Workers:
    """This phase's two workers (ours and the bare one), restartable."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.ours_tq = f"bench-evict-asm-{uuid.uuid4().hex[:8]}"
        self.bare_tq = f"bench-evict-bare-{uuid.uuid4().hex[:8]}"
        self.stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(
            serve(
                self.h.t,
                self.h.s,
                task_queue=self.ours_tq,
                providers=discover(),
                secrets={},
                settings=Settings(),
            )
        )
        bare = Worker(
            self.h.t,
            task_queue=self.bare_tq,
            workflows=[BenchSession, BenchRun],
            activities=[BareStore(self.h.s).run],
        )
        await stack.enter_async_context(bare)
        self.stack = stack

    async def stop(self) -> None:
        if self.stack is not None:
            await bounded(self.stack.aclose(), 60, "evict-phase worker shutdown")
            self.stack = None


async def _history(h: Harness, workflow_id: str) -> dict[str, int]:
    desc = await h.t.get_workflow_handle(workflow_id).describe()
    info = desc.raw_description.workflow_execution_info
    return {"events": info.history_length, "bytes": info.history_size_bytes}


async def evicted(h: Harness) -> dict[str, Any]:
    ns: list[int] = h.args.evict_runs
    workers = _Workers(h)
    await workers.start()
    client = SessionClient(h.t, h.s, task_queue=workers.ours_tq)

    async def new_ours() -> str:
        spec = SessionSpec(agent_id="bench", provider="mock", mock=FAST)
        return (await bounded(client.start_session(spec), 60, "start_session")).session_id

    async def ours(sid: str) -> float:
        t0 = time.perf_counter()
        result = await bounded(client.run(sid, "hi"), h.args.op_timeout, "run")
        if result.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"run {result.run_id} ended {result.status.value}")
        return time.perf_counter() - t0

    async def bare(sid: str) -> float:
        t0 = time.perf_counter()
        await h.bare_session_run(sid)
        return time.perf_counter() - t0

    try:
        # The bare entity never continues-as-new: past a few hundred children its replay
        # outlasts a workflow task on a loaded machine, so it is compared up to a bound.
        bare_ns = [n for n in ns if n <= h.args.evict_bare_max]
        sessions = {
            n: (await new_ours(), await h.bare_session(workers.bare_tq) if n in bare_ns else "")
            for n in ns
        }
        done = {"ours": 0, "bare": 0}
        total = sum(ns)

        async def fill(n: int, sid: str, side: str) -> None:
            for _ in range(n):
                await (ours(sid) if side == "ours" else bare(sid))
                done[side] += 1
                if done[side] % 200 == 0:
                    log(f"evicted: {side} {done[side]}/{total} runs")

        t = time.perf_counter()
        await asyncio.gather(
            *(fill(n, o, "ours") for n, (o, _) in sessions.items()),
            *(fill(n, b, "bare") for n, (_, b) in sessions.items() if b),
        )
        fill_s = time.perf_counter() - t
        hist = {
            n: {
                "ours": await _history(h, f"session-{o}"),
                "bare_session": await _history(h, f"bench-session-{b}") if b else None,
            }
            for n, (o, b) in sessions.items()
        }
        samples: dict[int, dict[str, list[float]]] = {
            n: {"ours_evicted": [], "ours_cached": [], "bare_evicted": [], "bare_cached": []}
            for n in ns
        }
        for i in range(h.args.evict_samples):
            t = time.perf_counter()
            await workers.stop()
            await workers.start()
            log(f"evicted: workers restarted ({time.perf_counter() - t:.1f}s), sample {i + 1}")
            warm = await new_ours()  # the fresh worker's imports, sandbox, connections
            warm_bare = await h.bare_session(workers.bare_tq)
            for _ in range(2):
                await ours(warm)
                await bare(warm_bare)
            for n, (o, b) in sessions.items():
                samples[n]["ours_evicted"].append(await ours(o))
                samples[n]["ours_cached"].append(await ours(o))
                log(
                    f"evicted: N={n} ours {ms(samples[n]['ours_evicted'][-1])} ms "
                    f"(cached {ms(samples[n]['ours_cached'][-1])})"
                )
                if b:
                    samples[n]["bare_evicted"].append(await bare(b))
                    samples[n]["bare_cached"].append(await bare(b))
                    log(
                        f"evicted: N={n} bare {ms(samples[n]['bare_evicted'][-1])} ms "
                        f"(cached {ms(samples[n]['bare_cached'][-1])})"
                    )
            await h.end_bare_sessions([warm_bare])
        await h.end_bare_sessions([b for _, b in sessions.values() if b])
        out: dict[str, Any] = {"fill_seconds": round(fill_s, 2), "samples": h.args.evict_samples}
        for n in ns:
            med = {k: statistics.median(v) for k, v in samples[n].items() if v}
            bare_r = (
                {
                    "bare_evicted_over_cached": round(med["bare_evicted"] / med["bare_cached"], 3),
                    "ours_evicted_over_bare_evicted": round(
                        med["ours_evicted"] / med["bare_evicted"], 3
                    ),
                }
                if "bare_evicted" in med
                else {"bare": f"not run above --evict-bare-max {h.args.evict_bare_max}"}
            )
            out[f"n_{n}"] = {
                **{f"{k}_ms": ms(v) for k, v in med.items()},
                "ours_evicted_over_cached": round(med["ours_evicted"] / med["ours_cached"], 3),
                **bare_r,
                "history_replayed": hist[n],
                "all_samples_ms": {k: [ms(x) for x in v] for k, v in samples[n].items()},
            }
        return out
    finally:
        await workers.stop()
