"""Phase 1: ``client.run`` end to end beside both bare programs, in alternating blocks.

Sides: ours (``client.run`` in one session), ``bare_session`` (the session-shaped bare program:
one long-lived parent, a ``run`` update per run, the caller waits on the child) and
``bare_parent`` (a new parent workflow per run, the first baseline). Each round runs a block of
each side back to back (ours x10, bare_session x10, bare_parent x10, ...), so load from other
processes hits all sides alike while each side's runs stay back-to-back as a real caller's
would. The report gives every side's percentiles over all its runs, and the per-block medians
with their spread, and the ours/bare ratio block by block (a noisy block shows as spread).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from run_bench.breakdown import store_breakdown
from run_bench.harness import Harness, log
from run_bench.machine import CpuMeter
from run_bench.stats import ms, spread_ms, summary_ms


async def latency(h: Harness) -> dict[str, Any]:
    n, block = h.args.runs, h.args.block
    sid = await h.new_session()
    bare_sid = await h.bare_session()
    for _ in range(h.args.warmup):
        await h.ours_run(sid)
        await h.bare_session_run(bare_sid)
        await h.bare_run()
    samples: dict[str, list[float]] = {"ours": [], "bare_session": [], "bare_parent": []}
    blocks: dict[str, list[float]] = {k: [] for k in samples}
    submits: list[tuple[str, float, float, float]] = []  # run_id, wall submit, wall end, dur

    async def ours() -> None:
        w0, t0 = time.time(), time.perf_counter()
        result = await h.ours_run(sid)
        dt = time.perf_counter() - t0
        submits.append((result.run_id, w0, w0 + dt, dt))
        samples["ours"].append(dt)

    async def bare_session() -> None:
        t0 = time.perf_counter()
        await h.bare_session_run(bare_sid)
        samples["bare_session"].append(time.perf_counter() - t0)

    async def bare_parent() -> None:
        t0 = time.perf_counter()
        await h.bare_run()
        samples["bare_parent"].append(time.perf_counter() - t0)

    sides: dict[str, Callable[[], Awaitable[None]]] = {
        "ours": ours,
        "bare_session": bare_session,
        "bare_parent": bare_parent,
    }
    cpu = CpuMeter(h.server_pids)
    rounds = 0
    while any(len(v) < n for v in samples.values()):
        rounds += 1
        for side, one in sides.items():
            k = min(block, n - len(samples[side]))
            if k <= 0:
                continue
            before = len(samples[side])
            with cpu.measure(side, k):
                for _ in range(k):
                    await one()
            blocks[side].append(statistics.median(samples[side][before:]))
        log(
            f"latency round {rounds}: "
            + ", ".join(f"{s} {ms(b[-1])} ms" for s, b in blocks.items() if b)
        )
    await h.end_bare_sessions([bare_sid])
    per_block = [o / b for o, b in zip(blocks["ours"], blocks["bare_session"], strict=False) if b]
    return {
        "ours": summary_ms(samples["ours"]),
        "bare_session": summary_ms(samples["bare_session"]),
        "bare_parent": summary_ms(samples["bare_parent"]),
        # Kept under its old name for readers of earlier reports: the new-parent-per-run side.
        "bare": summary_ms(samples["bare_parent"]),
        "block_medians": {s: spread_ms(b) for s, b in blocks.items()},
        "ours_over_bare_session_by_block": {
            "n": len(per_block),
            "median": round(statistics.median(per_block), 3) if per_block else None,
            "min": round(min(per_block), 3) if per_block else None,
            "max": round(max(per_block), 3) if per_block else None,
        },
        "rounds": rounds,
        "cpu": cpu.report(),
        "warmup_runs": h.args.warmup,
        "block": block,
        "ours_breakdown_from_event_store": await store_breakdown(h, sid, submits),
    }
