"""Phase: worker CPU per run, ours beside the session-shaped bare program, each worker in its
own process (``run_bench/worker_proc.py``: same script, same process shape for both sides).

The harness's client drives runs in alternating blocks (ours, bare); the CPU each worker
process spent during its block (user + system, from psutil) over the block's runs is the
worker CPU per run. The runs' latency in this setup (worker in another process, as deployed)
is reported too.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import SessionSpec
from agent_session_manager.core.status import RunStatus
from run_bench.harness import FAST, Harness, bounded, log
from run_bench.stats import ms, summary_ms

_HERE = Path(__file__).resolve().parent


class WorkerProcess:
    """A worker subprocess: started, told to stop by SIGTERM, then waited for."""

    def __init__(self, kind: str, h: Any, env: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.task_queue = f"bench-cpu-{kind}-{uuid.uuid4().hex[:8]}"
        self.h = h  # anything with the dev server's ``address`` and the store's ``database_url``
        self.extra_env = env or {}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = dict(os.environ) | self.extra_env
        env["PYTHONPATH"] = os.pathsep.join([str(_HERE.parent), env.get("PYTHONPATH", "")])
        if sys.pycache_prefix:  # the same bytecode cache as this process (Harness.bytecode_cache)
            env["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(_HERE / "worker_proc.py"),
            "--kind",
            self.kind,
            "--address",
            self.h.address,
            "--task-queue",
            self.task_queue,
            "--database-url",
            self.h.database_url,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        line = await bounded(self.proc.stdout.readline(), 300, f"{self.kind} worker start")
        if line.strip() != b"ready":
            raise RuntimeError(f"{self.kind} worker did not start: {line!r}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def rss_bytes(self) -> int:
        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def worker_cpu(h: Harness) -> dict[str, Any]:
    n, block = h.args.cpu_runs, h.args.block
    ours_w, bare_w = WorkerProcess("ours", h), WorkerProcess("bare", h)
    await asyncio.gather(ours_w.start(), bare_w.start())
    try:
        client = SessionClient(h.t, h.s, task_queue=ours_w.task_queue)
        view = await bounded(
            client.start_session(SessionSpec(agent_id="bench", provider="mock", mock=FAST)),
            60,
            "start_session",
        )
        sid = view.session_id
        bare_sid = await h.bare_session(task_queue=bare_w.task_queue)

        async def ours() -> None:
            result = await bounded(client.run(sid, "hi"), h.args.op_timeout, "run")
            if result.status is not RunStatus.COMPLETED:
                raise RuntimeError(f"run {result.run_id} ended {result.status.value}")

        async def bare() -> None:
            await h.bare_session_run(bare_sid)

        for _ in range(h.args.warmup):
            await ours()
            await bare()
        lat: dict[str, list[float]] = {"ours": [], "bare_session": []}
        cpu: dict[str, list[float]] = {"ours": [], "bare_session": []}  # per block, s per run
        sides = {"ours": (ours_w, ours), "bare_session": (bare_w, bare)}
        while any(len(v) < n for v in lat.values()):
            for side, (w, one) in sides.items():
                k = min(block, n - len(lat[side]))
                if k <= 0:
                    continue
                c0 = w.cpu_seconds()
                for _ in range(k):
                    t0 = time.perf_counter()
                    await one()
                    lat[side].append(time.perf_counter() - t0)
                cpu[side].append((w.cpu_seconds() - c0) / k)
            log("worker cpu: " + ", ".join(f"{s} {ms(v[-1])} ms/run" for s, v in cpu.items() if v))
        await h.end_bare_sessions([bare_sid])
        med = {s: statistics.median(v) for s, v in cpu.items()}
        return {
            "runs_per_side": n,
            "block": block,
            "worker_cpu_ms_per_run": {
                s: {
                    "median_of_blocks": ms(med[s]),
                    "min": ms(min(v)),
                    "max": ms(max(v)),
                    "blocks": len(v),
                }
                for s, v in cpu.items()
            },
            "ours_over_bare_session": round(med["ours"] / med["bare_session"], 3)
            if med["bare_session"]
            else None,
            "latency_worker_in_own_process": {s: summary_ms(v) for s, v in lat.items()},
            "worker_rss_mb": {
                "ours": round(ours_w.rss_bytes() / 2**20, 1),
                "bare_session": round(bare_w.rss_bytes() / 2**20, 1),
            },
        }
    finally:
        await asyncio.gather(ours_w.stop(), bare_w.stop())
