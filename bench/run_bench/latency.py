"""Phase 1: ``client.run`` end to end beside a bare parent → child → activity workflow.

Measured in alternating blocks (ours x10, bare x10, ...) so that load from other processes
hits both sides alike, while our runs stay back-to-back as a real caller's would.
"""

from __future__ import annotations

import time
from typing import Any

from run_bench.breakdown import store_breakdown
from run_bench.harness import Harness
from run_bench.machine import CpuMeter
from run_bench.stats import summary_ms


async def latency(h: Harness) -> dict[str, Any]:
    n, block = h.args.runs, h.args.block
    sid = await h.new_session()
    for _ in range(h.args.warmup):
        await h.ours_run(sid)
        await h.bare_run()
    ours: list[float] = []
    bare: list[float] = []
    submits: list[tuple[str, float, float, float]] = []  # run_id, wall submit, wall end, dur
    cpu = CpuMeter(h.server_pids)
    while len(ours) < n or len(bare) < n:
        k = min(block, n - len(ours))
        with cpu.measure("ours", k):
            for _ in range(k):
                w0, t0 = time.time(), time.perf_counter()
                result = await h.ours_run(sid)
                dt = time.perf_counter() - t0
                ours.append(dt)
                submits.append((result.run_id, w0, w0 + dt, dt))
        k = min(block, n - len(bare))
        with cpu.measure("bare", k):
            for _ in range(k):
                t0 = time.perf_counter()
                await h.bare_run()
                bare.append(time.perf_counter() - t0)
    breakdown = await store_breakdown(h, sid, submits)
    return {
        "ours": summary_ms(ours),
        "bare": summary_ms(bare),
        "cpu": cpu.report(),
        "warmup_runs": h.args.warmup,
        "block": block,
        "ours_breakdown_from_event_store": breakdown,
    }
