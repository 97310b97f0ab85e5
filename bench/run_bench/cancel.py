"""Phase 5: how fast ``cancel_run`` returns, and when the provider really stopped: half the
runs cancelled at their first delta, half after streaming a few seconds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent_session_manager.core.contract import MockScript, MockText
from run_bench.follower import Follower
from run_bench.harness import Harness, bounded
from run_bench.stats import summary_ms, wall

#: How long a "late" cancel lets the attempt stream first.
LATE_S = 3.0


async def cancel(h: Harness) -> dict[str, Any]:
    n = h.args.cancel_runs
    sid = await h.new_session()
    slow = MockScript(steps=[MockText(text="x" * 3000, chunk_size=1, delay_ms=10)])
    follower = Follower(h.c, sid, await h.s.last_seq(sid), types=["message_streamed"])
    await asyncio.sleep(0.2)
    # Early: as soon as the first delta is visible (the user sees the reply start and stops
    # it). Late: after the attempt has streamed LATE_S seconds, when its heartbeats have
    # backed off to their longest interval (activities/heartbeat.py).
    kinds: dict[str, dict[str, list[float]]] = {
        k: {"cancel": [], "stop": [], "terminal": []} for k in ("early", "late")
    }
    statuses: dict[str, int] = {}
    try:
        for i in range(n):
            kind = "late" if i % 2 else "early"
            got = kinds[kind]
            ref = await bounded(h.c.submit_run(sid, "slow", mock=slow), h.args.op_timeout, "submit")
            await follower.first(ref.run_id, h.args.op_timeout)
            if kind == "late":
                await asyncio.sleep(LATE_S)
            w0, t0 = time.time(), time.perf_counter()
            done = await bounded(h.c.cancel_run(sid, ref.run_id), h.args.op_timeout, "cancel_run")
            got["cancel"].append(time.perf_counter() - t0)
            statuses[done.status.value] = statuses.get(done.status.value, 0) + 1
            evs = await h.s.events(sid, run_id=ref.run_id, limit=10_000)
            streamed = [e for e in evs if e.type.value == "message_streamed"]
            if streamed:
                got["stop"].append(wall(streamed[-1].created_at) - w0)
            ended = [e for e in evs if e.type.value == "run_cancelled"]
            if ended:
                got["terminal"].append(wall(ended[-1].created_at) - w0)
    finally:
        await follower.close()
    early, late = kinds["early"], kinds["late"]
    return {
        "runs": n,
        "statuses": statuses,
        "cancel_run_returned": summary_ms(early["cancel"]),
        "cancel_to_last_message_streamed": summary_ms(early["stop"]),
        "cancel_to_run_cancelled_event": summary_ms(early["terminal"]),
        "late_after_s": LATE_S,
        "late_cancel_run_returned": summary_ms(late["cancel"]),
        "late_cancel_to_last_message_streamed": summary_ms(late["stop"]),
        "late_cancel_to_run_cancelled_event": summary_ms(late["terminal"]),
        "script": "MockText 3000 chars, chunk_size=1, delay_ms=10 (30 s if not cancelled)",
    }
