"""Phase 2: submit → first ``message_streamed`` seen by a live follower, and where time goes.

The target divides it by the session-shaped bare program's run latency, so that latency is
sampled here too, in blocks alternating with ours: a ratio taken from two phases run minutes
apart measured the machine's mood as much as the code (0.85-1.28 for one tree).
"""

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
    bare_sid = await h.bare_session()
    await h.ours_run(sid)  # warm the session
    await h.bare_session_run(bare_sid)
    firsts: list[float] = []
    totals: list[float] = []
    commit_to_seen: list[float] = []
    submits: list[tuple[str, float, float, float]] = []
    run_ids: list[str] = []
    bare: list[float] = []
    follower: Follower | None = None
    try:
        for i in range(n):
            if i % h.args.block == 0:  # a block of bare runs before each block of ours
                # No follower of ours runs beside bare: its wake-ups would slow bare's block.
                if follower is not None:
                    await follower.close()
                    follower = None
                for _ in range(min(h.args.block, n - i)):
                    b0 = time.perf_counter()
                    await h.bare_session_run(bare_sid)
                    bare.append(time.perf_counter() - b0)
                follower = Follower(h.c, sid, await h.s.last_seq(sid), types=["message_streamed"])
                await asyncio.sleep(0.2)  # subscribed and idle before the block's first submit
            w0, t0 = time.time(), time.perf_counter()
            ref = await bounded(h.c.submit_run(sid, "hi"), h.args.op_timeout, "submit")
            assert follower is not None  # made at the start of every block
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
        if follower is not None:
            await follower.close()
        await h.end_bare_sessions([bare_sid])
    history = await history_breakdown(h, run_ids[-min(10, len(run_ids)) :])
    return {
        "ours_submit_to_first_message_streamed": summary_ms(firsts),
        "ours_submit_to_result_with_follower": summary_ms(totals),
        "bare_session_latency_alternating": summary_ms(bare),
        "event_created_at_to_follower_seen": summary_ms(commit_to_seen),
        "ours_breakdown_from_event_store": await store_breakdown(h, sid, submits),
        "agent_run_history_breakdown": history,
        "note": "follower and worker share one EventStore in this process, so SQLite "
        "followers are woken by the writer at once (another process would poll: +10-50 ms)",
    }
