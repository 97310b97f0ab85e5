"""Phase 5: how fast ``cancel_run`` returns, and when the provider really stopped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent_session_manager.core.contract import MockScript, MockText
from run_bench.follower import Follower
from run_bench.harness import Harness, bounded
from run_bench.stats import summary_ms, wall


async def cancel(h: Harness) -> dict[str, Any]:
    n = h.args.cancel_runs
    sid = await h.new_session()
    slow = MockScript(steps=[MockText(text="x" * 3000, chunk_size=1, delay_ms=10)])
    follower = Follower(h.c, sid, await h.s.last_seq(sid), types=["message_streamed"])
    await asyncio.sleep(0.2)
    cancel_s: list[float] = []
    stop_s: list[float] = []
    terminal_s: list[float] = []
    statuses: dict[str, int] = {}
    try:
        for _ in range(n):
            ref = await bounded(h.c.submit_run(sid, "slow", mock=slow), h.args.op_timeout, "submit")
            await follower.first(ref.run_id, h.args.op_timeout)
            w0, t0 = time.time(), time.perf_counter()
            done = await bounded(h.c.cancel_run(sid, ref.run_id), h.args.op_timeout, "cancel_run")
            cancel_s.append(time.perf_counter() - t0)
            statuses[done.status.value] = statuses.get(done.status.value, 0) + 1
            evs = await h.s.events(sid, run_id=ref.run_id, limit=10_000)
            streamed = [e for e in evs if e.type.value == "message_streamed"]
            if streamed:
                stop_s.append(wall(streamed[-1].created_at) - w0)
            ended = [e for e in evs if e.type.value == "run_cancelled"]
            if ended:
                terminal_s.append(wall(ended[-1].created_at) - w0)
    finally:
        await follower.close()
    return {
        "runs": n,
        "statuses": statuses,
        "cancel_run_returned": summary_ms(cancel_s),
        "cancel_to_last_message_streamed": summary_ms(stop_s),
        "cancel_to_run_cancelled_event": summary_ms(terminal_s),
        "script": "MockText 3000 chars, chunk_size=1, delay_ms=10 (30 s if not cancelled)",
    }
