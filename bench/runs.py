"""End-to-end run benchmark: our sessions/runs beside bare Temporal, same process, same server.

Prints ONE JSON document on stdout (progress goes to stderr). Everything runs in this process
against one embedded Temporal dev server (``start_dev_server(home=None, ui=False)``, in-memory
persistence) and one event store (SQLite in a temp dir, or ``--database-url``). Two workers
share the server and the client: ours (``worker.serve``, mock provider) and a bare one
(``BenchParent`` → child ``BenchChild`` → one no-op activity, in ``run_bench/bare.py``, own
task queue, same data converter). Each phase lives in its own ``run_bench/`` module.

Phases (each beside its bare-Temporal counterpart where there is one):

1. ``latency``: ``await client.run(sid, prompt)`` (``submit_run`` update + ``wait_run``) with a
   one-step, no-delay mock script, sequential in one session, p50/p95 over ``--runs``; bare:
   ``execute_workflow(BenchParent)`` end to end. Measured in alternating blocks (ours x10, bare
   x10, ...) so that load from other processes hits both sides alike, while our runs stay
   back-to-back as a real caller's would.
2. ``first_event``: submit → first ``message_streamed`` seen by a follower
   (``client.stream_events``, started before the first submit), p50/p95; plus a per-stage
   breakdown from the event store's ``created_at`` (run_started, provider events,
   run_completed, turn_completed) relative to the submit, and from the runs' Temporal histories.
3. ``throughput``: 200 runs over 50 sessions (50 concurrent sessions, 4 sequential runs each) vs
   200 bare parent workflows with 50 in flight; runs/s.
4. ``ratios``: ours/bare latency p50 (≤ 1.3), first event p50 / bare latency p50 (≤ 1.0),
   throughput ours/bare (≥ 0.6), with ``met``.
5. ``cancel``: a slow mock run (1-char chunks, 10 ms apart), first delta seen, then
   ``client.cancel_run`` timed (returns once the run is cancelled; the provider activity has
   acknowledged by then); also cancel request → ``created_at`` of the run's last
   ``message_streamed`` (when the provider really stopped producing). Target p95 ≤ 1 s.
6. ``long_session``: one session with ``--long-runs`` sequential runs (0 skips): all completed?,
   continue-as-new count, the largest history (bytes and events) over the session's
   executions and over its AgentRun workflows (Temporal limits: 50 MB / 51,200 events).

Run: ``.venv/bin/python bench/runs.py [--runs 50] [--sessions 50] [--long-runs 500]``
(about 2-3 minutes on 2 cores with the defaults).
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
from run_bench.first_event import first_event
from run_bench.harness import Harness, log
from run_bench.latency import latency
from run_bench.long_session import long_session
from run_bench.machine import load_snapshot
from run_bench.report import NOTES, ratios
from run_bench.throughput import throughput


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
    p.add_argument("--throughput-rounds", type=int, default=1, help="ours/bare rounds (1)")
    p.add_argument("--cancel-runs", type=int, default=20, help="cancel samples; 0 skips (20)")
    p.add_argument("--long-runs", type=int, default=500, help="long session runs; 0 skips (500)")
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
