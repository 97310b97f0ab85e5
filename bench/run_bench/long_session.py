"""Phase 6: one session with hundreds of runs: continue-as-new, and its histories' sizes."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from agent_session_manager.core.contract import RunResult, SessionSpec
from agent_session_manager.core.status import RunStatus
from run_bench.harness import Harness, bounded, log
from run_bench.stats import ms, summary_ms

#: Temporal's per-execution history limits, for comparison.
TEMPORAL_LIMITS = {"history_bytes": 50 * 1024 * 1024, "history_events": 51_200}


async def long_session(h: Harness) -> dict[str, Any]:
    n = h.args.long_runs
    spec_default = SessionSpec(agent_id="x").continue_as_new_after_runs
    sid = await h.new_session()
    lat: list[float] = []
    results: list[RunResult] = []
    t = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        results.append(await h.ours_run(sid, f"turn {i + 1}"))
        lat.append(time.perf_counter() - t0)
        if (i + 1) % 100 == 0:
            log(f"long session: {i + 1}/{n} runs")
    elapsed = time.perf_counter() - t
    completed = sum(r.status is RunStatus.COMPLETED for r in results)
    view = await h.c.describe(sid)
    # Every execution of the session workflow (continue-as-new makes a new one).
    wid = f"session-{sid}"
    executions: list[dict[str, Any]] = []
    async for wf in h.t.list_workflows(f'WorkflowId = "{wid}"'):
        handle = h.t.get_workflow_handle(wid, run_id=wf.run_id)
        hist = await handle.fetch_history()
        desc = await handle.describe()
        info = desc.raw_description.workflow_execution_info
        executions.append(
            {
                "run_id": wf.run_id,
                "status": wf.status.name if wf.status else None,
                "events": len(hist.events),
                "json_bytes": len(hist.to_json()),
                "server_history_size_bytes": info.history_size_bytes,
                "server_history_length": info.history_length,
            }
        )
    largest = max(executions, key=lambda e: e["json_bytes"]) if executions else {}
    runs = await agent_run_histories(h, [r.run_id for r in results])
    buckets = {
        f"runs_{i + 1}-{min(i + 100, n)}": summary_ms(lat[i : i + 100]) for i in range(0, n, 100)
    }
    boundary = {
        str(k): ms(lat[k - 1])
        for k in sorted({spec_default, spec_default + 1, 2 * spec_default, 2 * spec_default + 1})
        if k <= n
    }
    return {
        "runs": n,
        "completed": completed,
        "all_completed": completed == n,
        "seconds": round(elapsed, 2),
        "continue_as_new_after_runs": spec_default,
        "continued_as_new": view.continued,
        "executions_found": len(executions),
        "session_run_count": view.run_count,
        "latency": summary_ms(lat),
        "latency_per_100_runs": buckets,
        "latency_around_continue_as_new_ms": boundary,
        "largest_session_history": {
            "events": max((e["events"] for e in executions), default=None),
            "json_bytes": largest.get("json_bytes"),
            "server_history_size_bytes": max(
                (e["server_history_size_bytes"] for e in executions), default=None
            ),
        },
        "session_executions": executions,
        "largest_agent_run_history": runs,
        "temporal_limits": TEMPORAL_LIMITS,
    }


async def agent_run_histories(h: Harness, run_ids: list[str]) -> dict[str, Any]:
    """The largest AgentRun history (events, JSON bytes) over the given runs."""
    sem = asyncio.Semaphore(8)
    sizes: list[tuple[int, int]] = []

    async def one(run_id: str) -> None:
        async with sem:
            hist = await h.t.get_workflow_handle(f"run-{run_id}").fetch_history()
            sizes.append((len(hist.events), len(hist.to_json())))

    await bounded(asyncio.gather(*(one(r) for r in run_ids)), 300, "AgentRun histories")
    if not sizes:
        return {}
    return {
        "runs_checked": len(sizes),
        "max_events": max(s[0] for s in sizes),
        "max_json_bytes": max(s[1] for s in sizes),
        "median_json_bytes": int(statistics.median(s[1] for s in sizes)),
    }
