"""Scale benchmark: many open, idle sessions on one worker; its memory, and a run among them.

One embedded dev server, one SQLite store (or ``--database-url``), and our worker in its own
process (``run_bench/worker_proc.py``, the benchmark's worker script), with a sticky cache
large enough for every session (``ASM_MAX_CACHED_SESSIONS``) unless ``--cache`` says less.

1. Empty worker: one session, ``--runs`` runs; their median latency, and the worker's RSS.
2. ``--sessions`` sessions started (``--concurrency`` at a time), left idle (progress on
   stderr); the worker's RSS, and RSS per cached session = (RSS - empty RSS) / sessions.
3. A run in ``--runs`` random sessions among them; median latency beside the empty worker's
   (target: <= 2x), and the RSS after.

It also says which cache size fits 1 GB of worker RSS at the measured cost per session.

Run: ``.venv/bin/python bench/scale.py [--sessions 10000]`` (10,000 sessions take several
minutes on 2 shared cores; ``--sessions 1000`` for a quick look). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from run_bench.worker_cpu import WorkerProcess  # bench/ is this script's sys.path[0]

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText, SessionSpec
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server

FAST = MockScript(steps=[MockText(text="ok")])
MB = 2**20


def log(msg: str) -> None:
    print(f"[bench/scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="asm-bench-scale-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'asm.db'}"
    await upgrade(url)
    store = await open_store(url)
    env = await start_dev_server(home=None, ui=False)
    address = env.client.service_client.config.target_host
    cache = args.cache if args.cache is not None else args.sessions + 100
    worker = WorkerProcess(
        "ours",
        SimpleNamespace(address=address, database_url=url),
        env={"ASM_MAX_CACHED_SESSIONS": str(cache)},
    )
    out: dict[str, Any] = {"sessions": args.sessions, "max_cached_sessions": cache}
    try:
        await worker.start()
        client = SessionClient(env.client, store, task_queue=worker.task_queue)
        spec = SessionSpec(agent_id="scale", provider="mock", mock=FAST)

        async def run_in(sid: str) -> float:
            t0 = time.perf_counter()
            result = await client.run(sid, "hi")
            if result.status is not RunStatus.COMPLETED:
                raise RuntimeError(f"run {result.run_id} ended {result.status.value}")
            return time.perf_counter() - t0

        first = (await client.start_session(spec)).session_id
        for _ in range(3):  # warm-up
            await run_in(first)
        empty = [await run_in(first) for _ in range(args.runs)]
        empty_rss = worker.rss_bytes()
        out["empty_worker"] = {
            "run_p50_ms": round(statistics.median(empty) * 1000, 1),
            "rss_mb": round(empty_rss / MB, 1),
        }
        log(f"empty worker: {out['empty_worker']}")
        sem = asyncio.Semaphore(args.concurrency)
        sids: list[str] = []
        t = time.perf_counter()

        async def start() -> None:
            async with sem:
                if worker.proc is None or worker.proc.returncode is not None:
                    code = None if worker.proc is None else worker.proc.returncode
                    how = f"signal {signal.Signals(-code).name}" if code and code < 0 else code
                    raise RuntimeError(f"the worker process ended (exit status {how})")
                try:  # bounded and said at once: gather() would say it only after cleanup
                    view = await asyncio.wait_for(client.start_session(spec), 300)
                except BaseException as exc:
                    log(f"a session start failed: {exc!r}")
                    raise
                sids.append(view.session_id)
                if len(sids) % 500 == 0:
                    log(
                        f"{len(sids)}/{args.sessions} sessions open, worker RSS "
                        f"{worker.rss_bytes() / MB:.0f} MB"
                    )

        await asyncio.gather(*(start() for _ in range(args.sessions)))
        out["start_seconds"] = round(time.perf_counter() - t, 1)
        await asyncio.sleep(2)  # let the last tasks settle
        full_rss = worker.rss_bytes()
        # A bounded cache holds at most `cache` of them: the rest cost the worker nothing.
        per = (full_rss - empty_rss) / min(args.sessions, cache)
        out["idle_sessions"] = {
            "rss_mb": round(full_rss / MB, 1),
            "rss_per_cached_session_kb": round(per / 1024, 1),
        }
        log(f"idle sessions: {out['idle_sessions']}")
        picks = random.sample(sids, min(args.runs, len(sids)))
        among = [await run_in(sid) for sid in picks]
        out["run_in_a_random_session"] = {
            "p50_ms": round(statistics.median(among) * 1000, 1),
            "all_ms": [round(x * 1000, 1) for x in among],
            "rss_mb_after": round(worker.rss_bytes() / MB, 1),
        }
        out["ratios"] = {
            "random_session_run_over_empty_worker_run": {
                "value": round(statistics.median(among) / statistics.median(empty), 3),
                "target": "<= 2",
            },
            "worker_rss_mb": {"value": round(full_rss / MB, 1), "target": "<= 1024"},
        }
        out["cache_size_for_1gb_rss"] = int((1024 * MB - empty_rss) / per) if per > 0 else None
        out["loadavg"] = os.getloadavg()
        return out
    finally:
        await worker.stop()
        await env.shutdown()
        await store.close()
        tmp.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sessions", type=int, default=10_000, help="idle sessions (10000)")
    p.add_argument("--runs", type=int, default=10, help="timed runs per side (10)")
    p.add_argument("--concurrency", type=int, default=50, help="session starts in flight (50)")
    p.add_argument("--cache", type=int, default=None, help="max cached sessions (sessions+100)")
    p.add_argument("--database-url", default=None)
    a = p.parse_args()
    if a.sessions < 1 or a.runs < 1 or a.concurrency < 1:
        p.error("--sessions, --runs and --concurrency must be >= 1")
    result = asyncio.run(main(a))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300: no abort at interpreter exit
