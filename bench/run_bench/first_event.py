"""Phase 2: submit → first ``message_streamed`` seen by a live follower, and where time goes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent_session_manager.core.status import RunStatus
from run_bench.breakdown import history_breakdown, store_breakdown
from run_bench.follower import Follower
from run_bench.harness import Harness, bounded
from run_bench.stats import summary_ms, wall


async def first_event(h: Harness) -> dict[str, Any]:
    n = h.args.runs
    sid = await h.new_session()
    await h.ours_run(sid)  # warm the session
    follower = Follower(h.c, sid, await h.s.last_seq(sid), types=["message_streamed"])
    await asyncio.sleep(0.2)  # the follower is subscribed and idle before the first submit
    firsts: list[float] = []
    totals: list[float] = []
    commit_to_seen: list[float] = []
    submits: list[tuple[str, float, float, float]] = []
    run_ids: list[str] = []
    try:
        for _ in range(n):
            w0, t0 = time.time(), time.perf_counter()
            ref = await bounded(h.c.submit_run(sid, "hi"), h.args.op_timeout, "submit")
            seen, event = await follower.first(ref.run_id, h.args.op_timeout)
            # created_at is taken when the write starts: this is commit + wake-up + read.
            commit_to_seen.append(w0 + (seen - t0) - wall(event.created_at))
            result = await bounded(h.c.wait_run(ref.run_id, sid), h.args.op_timeout, "wait_run")
            t1 = time.perf_counter()
            if result.status is not RunStatus.COMPLETED:
                raise RuntimeError(f"run {ref.run_id} ended {result.status.value}")
            firsts.append(seen - t0)
            totals.append(t1 - t0)
            submits.append((ref.run_id, w0, w0 + (t1 - t0), t1 - t0))
            run_ids.append(ref.run_id)
    finally:
        await follower.close()
    history = await history_breakdown(h, run_ids[-min(10, len(run_ids)) :])
    return {
        "ours_submit_to_first_message_streamed": summary_ms(firsts),
        "ours_submit_to_result_with_follower": summary_ms(totals),
        "event_created_at_to_follower_seen": summary_ms(commit_to_seen),
        "ours_breakdown_from_event_store": await store_breakdown(h, sid, submits),
        "agent_run_history_breakdown": history,
        "note": "follower and worker share one EventStore in this process, so SQLite "
        "followers are woken by the writer at once (another process would poll: +10-50 ms)",
    }
