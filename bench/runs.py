"""End-to-end run benchmark: our sessions/runs beside bare Temporal, same process, same server.

Prints ONE JSON document on stdout (progress goes to stderr). Everything runs in this process
against one embedded Temporal dev server (``start_dev_server(home=None, ui=False)``, in-memory
persistence) and one event store (SQLite in a temp dir, or ``--database-url``). Two workers
share the server and the client: ours (``worker.serve``, mock provider) and a bare one
(``BenchParent`` → child ``BenchChild`` → one no-op activity, in ``run_bench/bare.py``, own
task queue, same data converter). Each phase lives in its own ``run_bench/`` module.

Baselines (``run_bench/bare.py``): ``bare_session``, the *session-shaped* bare program (one
long-lived parent receives a ``run`` update, starts a child running one activity that writes
the same rows to the same store as our run — ``run_bench/bare_store.py`` —, the caller waits on
the child): the fair baseline, which the targets are judged against. ``bare_parent``: a new
parent workflow per run with a no-op activity (the first baseline), kept for comparison.

Phases:

1. ``latency``: ``await client.run(sid, prompt)`` (one-step, no-delay mock script, one
   session) beside both bare programs, in rounds of alternating blocks (ours x10,
   bare_session x10, bare_parent x10, ...); percentiles per side, per-block medians with their
   spread, and the ours/bare_session ratio block by block.
2. ``first_event``: submit → first ``message_streamed`` seen by a follower
   (``client.stream_events``, started before the first submit), p50/p95; plus a per-stage
   breakdown from the event store's ``created_at`` and from the runs' Temporal histories.
3. ``throughput``: 200 runs over 50 sessions (4 sequential runs each) vs 50 bare session-shaped
   parents (4 runs each) vs 200 bare parent workflows with 50 in flight; runs/s, over
   ``--throughput-rounds`` rounds (3) in which ours and bare_session take turns going first.
4. ``worker_cpu``: each worker in its own process (``run_bench/worker_proc.py``, the same
   script for both sides), ``--cpu-runs`` runs per side in alternating blocks; the worker
   process's CPU (psutil) per run, ours and bare_session.
5. ``evicted``: sessions with N runs (``--evict-runs``, default 50,200,1000), ours and
   bare_session; the phase's workers restart (empty cache), and the next run is timed beside a
   cached one (``run_bench/evicted.py``).
6. ``ratios``: the targets of issue 15 against bare_session (latency p50 <= 1.3x, first event
   <= 1.0x its latency, throughput >= 0.7x, worker CPU <= 1.5x, evicted/cached at N=1,000
   <= 3x), and the old ratios against bare_parent, each with ``met``.
7. ``cancel``: a slow mock run, first delta seen, then ``client.cancel_run`` timed; also
   cancel request → the run's last ``message_streamed``. Target p95 <= 1 s.
8. ``long_session``: one session with ``--long-runs`` sequential runs (0 skips): all
   completed?, continue-as-new count, the largest history over its executions and its runs.

``--phases latency,worker_cpu`` runs only those.

Run: ``.venv/bin/python bench/runs.py [--runs 50] [--sessions 50] [--long-runs 500]``
(about 4-5 minutes on 2 cores with the defaults; progress on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import traceback

from run_bench.cancel import cancel
from run_bench.evicted import evicted
from run_bench.first_event import first_event
from run_bench.harness import Harness, log
from run_bench.latency import latency
from run_bench.long_session import long_session
from run_bench.machine import load_snapshot
from run_bench.report import NOTES, ratios
from run_bench.throughput import throughput
from run_bench.worker_cpu import worker_cpu


async def run(h: Harness) -> int:
    """Set up, run every phase asked for, judge the ratios, tear down; 1 if anything failed."""
    t = time.perf_counter()
    h.bytecode_cache()
    h.out["args"] = {k: v for k, v in vars(h.args).items() if k != "database_url"}
    h.out["args"]["database"] = "given" if h.args.database_url else "sqlite (temp dir)"
    h.out["args"]["env_PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
    h.out["load_before"] = load_snapshot()
    try:
        await h.setup()
    except Exception as exc:
        h.errors["setup"] = f"{type(exc).__name__}: {exc}"
        log(traceback.format_exc())
    else:
        await h.phase("latency", latency)
        await h.phase("first_event", first_event)
        await h.phase("throughput", throughput)
        if h.args.cpu_runs > 0:
            await h.phase("worker_cpu", worker_cpu)
        if h.args.evict_runs:
            await h.phase("evicted", evicted)
        if h.args.cancel_runs > 0:
            await h.phase("cancel", cancel)
        if h.args.long_runs > 0:
            await h.phase("long_session", long_session)
    h.out["ratios"] = ratios(h.out)
    h.out["notes"] = NOTES
    h.out["load_after"] = load_snapshot()
    h.out["teardown"] = await h.teardown()
    h.out["errors"] = h.errors
    h.out["total_seconds"] = round(time.perf_counter() - t, 2)
    return 1 if h.errors else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=50, help="latency / first-event samples (50)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up runs before latency (5)")
    p.add_argument("--block", type=int, default=10, help="alternating block size (10)")
    p.add_argument("--sessions", type=int, default=50, help="throughput sessions (50)")
    p.add_argument("--runs-per-session", type=int, default=4, help="throughput runs each (4)")
    p.add_argument(
        "--throughput-rounds",
        type=int,
        default=3,
        help="ours/bare rounds, alternating who goes first (3)",
    )
    p.add_argument("--cancel-runs", type=int, default=20, help="cancel samples; 0 skips (20)")
    p.add_argument("--long-runs", type=int, default=500, help="long session runs; 0 skips (500)")
    p.add_argument(
        "--cpu-runs", type=int, default=40, help="worker-CPU runs per side; 0 skips (40)"
    )
    p.add_argument(
        "--evict-runs",
        type=lambda v: [int(x) for x in v.split(",") if x.strip()],
        default=[50, 200, 1000],
        help="evicted-session sizes, comma-separated; empty skips (50,200,1000)",
    )
    p.add_argument("--evict-samples", type=int, default=2, help="restarts per size (2)")
    p.add_argument(
        "--evict-bare-max", type=int, default=200, help="largest N for the bare entity (200)"
    )
    p.add_argument("--phases", default=None, help="comma-separated phases to run (default all)")
    p.add_argument("--op-timeout", type=float, default=60.0, help="per-operation timeout (s)")
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="do not give the workflow sandbox a bytecode cache (see Harness.bytecode_cache)",
    )
    p.add_argument(
        "--dynamic-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dev-server dynamic config (repeatable), e.g. "
        "history.transferProcessorMaxPollRPS=1000; default: none (the server as asm dev runs it)",
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="event store URL (default: SQLite in a temp dir); e.g. postgresql+asyncpg://…",
    )
    args = p.parse_args(argv)
    if args.runs < 1 or args.block < 1 or args.sessions < 1 or args.runs_per_session < 1:
        p.error("--runs, --block, --sessions and --runs-per-session must be >= 1")
    if args.long_runs < 0 or args.cancel_runs < 0 or args.warmup < 0:
        p.error("--long-runs, --cancel-runs and --warmup must be >= 0")
    if args.cpu_runs < 0 or args.evict_samples < 1 or any(n < 1 for n in args.evict_runs):
        p.error("--cpu-runs must be >= 0, --evict-samples and --evict-runs sizes >= 1")
    if args.throughput_rounds < 1:
        p.error("--throughput-rounds must be >= 1")
    return args


def main() -> None:
    args = parse_args()
    # Only the JSON document goes to stdout: anything else written to fd 1 (the dev server's
    # banner, stray prints) is sent to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    bench = Harness(args)
    code = 1
    try:
        code = asyncio.run(run(bench))
    except BaseException as exc:  # KeyboardInterrupt included: still print what we have
        bench.errors["fatal"] = f"{type(exc).__name__}: {exc}"
        bench.out["errors"] = bench.errors
    out.write(json.dumps(bench.out, indent=2, default=str) + "\n")
    out.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    # A process that used a Temporal client can abort at interpreter exit
    # (temporalio/sdk-python#300): leave with our own status instead.
    os._exit(code)


if __name__ == "__main__":
    main()
