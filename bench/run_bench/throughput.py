"""Phase 3: runs per second over many concurrent sessions, beside as many bare workflows."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from run_bench.harness import Harness, bounded, log
from run_bench.machine import CpuMeter


async def throughput(h: Harness) -> dict[str, Any]:
    sessions, per = h.args.sessions, h.args.runs_per_session
    total = sessions * per
    t = time.perf_counter()
    sids = await asyncio.gather(*(h.new_session() for _ in range(sessions)))
    start_s = time.perf_counter() - t
    bare_sids = await asyncio.gather(*(h.bare_session() for _ in range(sessions)))
    rounds: list[dict[str, float]] = []
    cpu = CpuMeter(h.server_pids)

    async def drive(sid: str) -> None:  # ours: `per` runs back to back in one session
        for _ in range(per):
            await h.ours_run(sid)

    async def drive_bare(sid: str) -> None:  # bare, session-shaped: `per` runs in one parent
        for _ in range(per):
            await h.bare_session_run(sid)

    async def ours_round() -> float:
        t0 = time.perf_counter()
        with cpu.measure("ours", total):
            await bounded(asyncio.gather(*(drive(s) for s in sids)), 600, "ours throughput")
        return time.perf_counter() - t0

    async def bare_session_round() -> float:
        t0 = time.perf_counter()
        with cpu.measure("bare_session", total):
            await bounded(
                asyncio.gather(*(drive_bare(s) for s in bare_sids)), 600, "bare session throughput"
            )
        return time.perf_counter() - t0

    for r in range(h.args.throughput_rounds):
        # All sessions at once on each side; who goes first alternates between rounds, so that
        # whatever the previous side left behind (server backlog, garbage) falls on both.
        if r % 2 == 0:
            ours_s = await ours_round()
            bare_session_s = await bare_session_round()
        else:
            bare_session_s = await bare_session_round()
            ours_s = await ours_round()
        # bare: `total` parent workflows, `sessions` in flight
        sem = asyncio.Semaphore(sessions)
        t0 = time.perf_counter()
        with cpu.measure("bare", total):
            await bounded(
                asyncio.gather(*(h.bare_limited(sem) for _ in range(total))),
                600,
                "bare throughput",
            )
        bare_s = time.perf_counter() - t0
        rounds.append(
            {
                "ours_runs_per_s": round(total / ours_s, 2),
                "bare_session_runs_per_s": round(total / bare_session_s, 2),
                "bare_runs_per_s": round(total / bare_s, 2),
                "ours_seconds": round(ours_s, 2),
                "bare_session_seconds": round(bare_session_s, 2),
                "bare_seconds": round(bare_s, 2),
            }
        )
        log(f"throughput round {r + 1}: {rounds[-1]}")
    ours_rate = total * len(rounds) / sum(x["ours_seconds"] for x in rounds)
    bare_rate = total * len(rounds) / sum(x["bare_seconds"] for x in rounds)
    bare_session_rate = total * len(rounds) / sum(x["bare_session_seconds"] for x in rounds)
    await h.end_bare_sessions(bare_sids)
    return {
        "runs": total,
        "sessions": sessions,
        "runs_per_session": per,
        "in_flight": sessions,
        "session_start_seconds": round(start_s, 2),
        "session_starts_per_s": round(sessions / start_s, 2),
        "rounds": rounds,
        "ours_runs_per_s": round(ours_rate, 2),
        "bare_runs_per_s": round(bare_rate, 2),
        "bare_session_runs_per_s": round(bare_session_rate, 2),
        "cpu": cpu.report(),
    }
