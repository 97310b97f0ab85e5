"""End-to-end run benchmark: our sessions/runs beside bare Temporal, same process, same server.

Prints ONE JSON document on stdout (progress goes to stderr). Everything runs in this process
against one embedded Temporal dev server (``start_dev_server(home=None, ui=False)``, in-memory
persistence) and one event store (SQLite in a temp dir, or ``--database-url``). Two workers
share the server and the client: ours (``build_worker``, mock provider) and a bare one
(``BenchParent`` → child ``BenchChild`` → one no-op activity, defined here, own task queue,
same data converter).

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
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# The workflow sandbox re-imports this module for every BenchParent/BenchChild instance (as it
# re-imports workflows/agent_*.py for ours): pass the project's modules through so that costs
# what importing a small workflow module costs, not a re-import of the whole project.
with workflow.unsafe.imports_passed_through():
    from agent_session_manager.activities.providers import discover
    from agent_session_manager.client.session_client import SessionClient
    from agent_session_manager.core.contract import MockScript, MockText, RunResult, SessionSpec
    from agent_session_manager.core.events import Event
    from agent_session_manager.core.status import RunStatus
    from agent_session_manager.core.temporal import data_converter
    from agent_session_manager.store import EventStore, open_store, upgrade
    from agent_session_manager.worker.dev_server import start_dev_server
    from agent_session_manager.worker.settings import Settings
    from agent_session_manager.worker.worker import build_worker

T = TypeVar("T")

TEMPORAL_LIMITS = {"history_bytes": 50 * 1024 * 1024, "history_events": 51_200}
TARGETS = {
    "latency_p50_ratio_max": 1.3,
    "first_event_p50_over_bare_latency_p50_max": 1.0,
    "throughput_ratio_min": 0.6,
    "cancel_p95_max_s": 1.0,
}
#: The no-delay, one-step script of the latency and throughput phases.
FAST = MockScript(steps=[MockText(text="ok")])


def log(msg: str) -> None:
    print(f"[bench/runs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- bare Temporal: parent → child → one no-op activity -------------------------------------


@activity.defn(name="bench_noop")
async def bench_noop(arg: str) -> str:
    """Does nothing: the bare-Temporal counterpart of the provider activity."""
    return arg


@workflow.defn(name="BenchChild")
class BenchChild:
    """Runs one no-op activity (the counterpart of ``AgentRun``)."""

    @workflow.run
    async def run(self, arg: str) -> str:
        return await workflow.execute_activity(
            bench_noop, arg, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BenchParent")
class BenchParent:
    """Starts one child and returns its result (the counterpart of ``AgentSession``)."""

    @workflow.run
    async def run(self, arg: str) -> str:
        return await workflow.execute_child_workflow(
            BenchChild.run, arg, id=f"{workflow.info().workflow_id}-child"
        )


# --- small helpers ------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def summary_ms(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, mean, min, max in milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": ms(pct(values, 50)),
        "p95_ms": ms(pct(values, 95)),
        "mean_ms": ms(statistics.fmean(values)),
        "min_ms": ms(min(values)),
        "max_ms": ms(max(values)),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def wall(dt: datetime) -> float:
    """A stored ``created_at`` as a POSIX timestamp (naive values are UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


async def bounded(coro: Awaitable[T], seconds: float, what: str) -> T:
    try:
        async with asyncio.timeout(seconds):
            return await coro
    except TimeoutError:
        raise TimeoutError(f"{what} did not finish within {seconds:g}s") from None


def load_snapshot() -> dict[str, Any]:
    """The machine's load, so a reader can judge the noise (others run tests here too)."""
    try:
        one, five, _fifteen = os.getloadavg()
    except OSError:
        return {}
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "cpus": os.cpu_count()}


def _server_pids() -> list[int]:
    """The dev server: our child processes running the ``temporal`` binary."""
    me, pids = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == me and comm.startswith("temporal"):
            pids.append(int(entry))
    return pids


def _proc_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (0 where unreadable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


class CpuMeter:
    """CPU seconds spent by this process (worker + client) and by the dev server, per side."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids
        self.totals: dict[str, list[float]] = {}  # side -> [python s, server s, runs]

    @contextlib.contextmanager
    def measure(self, side: str, runs: int) -> Any:
        p0, s0 = time.process_time(), _proc_cpu(self.pids)
        try:
            yield
        finally:
            acc = self.totals.setdefault(side, [0.0, 0.0, 0])
            acc[0] += time.process_time() - p0
            acc[1] += _proc_cpu(self.pids) - s0
            acc[2] += runs

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side, (py, srv, runs) in self.totals.items():
            if runs:
                out[side] = {
                    "python_cpu_ms_per_run": ms(py / runs),
                    "server_cpu_ms_per_run": ms(srv / runs) if self.pids else None,
                }
        return out


class Follower:
    """One live ``stream_events`` tail of a session, recording when each event was seen."""

    def __init__(self, client: SessionClient, session_id: str, after_seq: int, types: list[str]):
        self.seen: dict[str, list[tuple[float, Event]]] = {}
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(client, session_id, after_seq, types))

    async def _run(
        self, client: SessionClient, session_id: str, after_seq: int, types: list[str]
    ) -> None:
        stream: AsyncIterator[Event] = client.stream_events(
            session_id, after_seq, types=types, follow=True
        )
        async with aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                now = time.perf_counter()
                self.seen.setdefault(event.run_id or "", []).append((now, event))
                self._changed.set()

    async def first(self, run_id: str, within: float) -> tuple[float, Event]:
        """(perf_counter when seen, event) of the first event of ``run_id``."""
        async with asyncio.timeout(within):
            while run_id not in self.seen:
                if self._task.done():
                    self._task.result()  # surface the follower's failure
                    raise RuntimeError("follower stopped")
                self._changed.clear()
                await self._changed.wait()
        return self.seen[run_id][0]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


# --- the benchmark ----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env: WorkflowEnvironment | None = None
        self.store: EventStore | None = None
        self.client: SessionClient | None = None
        self.temporal: Client | None = None
        self.workers: list[tuple[Worker, asyncio.Task[None]]] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="asm-bench-runs-")
        self.bare_tq = f"bench-bare-{uuid.uuid4().hex[:8]}"
        self.ours_tq = f"bench-asm-{uuid.uuid4().hex[:8]}"
        self.out: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.server_pids: list[int] = []

    # --- setup / teardown -------------------------------------------------------------------

    async def setup(self) -> None:
        url = self.args.database_url or f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'asm.db'}"
        t = time.perf_counter()
        extra = [a for kv in self.args.dynamic_config for a in ("--dynamic-config-value", kv)]
        self.env = await bounded(
            start_dev_server(home=None, ui=False, extra_args=extra), 120, "dev server start"
        )
        log(f"dev server up in {time.perf_counter() - t:.1f}s")
        self.server_pids = _server_pids()
        await bounded(upgrade(url), 120, "store migration")
        self.store = await bounded(open_store(url), 60, "store open")
        self.temporal = self.env.client
        assert self.temporal.data_converter is data_converter or (
            self.temporal.data_converter.payload_converter_class
            is data_converter.payload_converter_class
        ), "the dev server client must use core.temporal.data_converter"
        settings = Settings()
        ours = build_worker(
            self.temporal,
            self.store,
            task_queue=self.ours_tq,
            providers=discover(),
            secrets={},
            settings=settings,
        )
        bare = Worker(
            self.temporal,
            task_queue=self.bare_tq,
            workflows=[BenchParent, BenchChild],
            activities=[bench_noop],
        )
        for w in (ours, bare):
            self.workers.append((w, asyncio.create_task(w.run())))
        self.client = SessionClient(self.temporal, self.store, task_queue=self.ours_tq)
        self.out["setup"] = {
            "store": self.store.display_url if self.args.database_url else "sqlite (temp dir)",
            "backend": self.store.backend,
            "heartbeat_throttle_seconds": settings.heartbeat_throttle_seconds,
            "dev_server_pids_for_cpu": self.server_pids,
            "dynamic_config": self.args.dynamic_config,
            "python": platform.python_version(),
            "temporalio": _temporalio_version(),
        }

    async def teardown(self) -> dict[str, Any]:
        report: dict[str, Any] = {}
        t = time.perf_counter()
        for w, task in self.workers:
            try:
                await bounded(w.shutdown(), 30, "worker shutdown")
                await bounded(asyncio.gather(task, return_exceptions=True), 10, "worker task")
            except Exception as exc:
                report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        if self.store is not None:
            try:
                await bounded(self.store.close(), 30, "store close")
            except Exception as exc:
                report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        if self.env is not None:
            try:
                await bounded(self.env.shutdown(), 30, "dev server shutdown")
            except Exception as exc:
                report.setdefault("errors", []).append(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            self.tmp.cleanup()
        report["seconds"] = round(time.perf_counter() - t, 2)
        return report

    # --- building blocks --------------------------------------------------------------------

    @property
    def c(self) -> SessionClient:
        assert self.client is not None
        return self.client

    @property
    def s(self) -> EventStore:
        assert self.store is not None
        return self.store

    @property
    def t(self) -> Client:
        assert self.temporal is not None
        return self.temporal

    async def new_session(self, **spec: Any) -> str:
        fields: dict[str, Any] = {"agent_id": "bench", "provider": "mock", "mock": FAST}
        fields.update(spec)
        view = await bounded(self.c.start_session(SessionSpec(**fields)), 60, "start_session")
        return view.session_id

    async def ours_run(self, sid: str, prompt: str = "hi") -> RunResult:
        result = await bounded(self.c.run(sid, prompt), self.args.op_timeout, "run")
        if result.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"run {result.run_id} ended {result.status.value}: {result.error}")
        return result

    async def bare_run(self) -> None:
        wid = f"bench-parent-{uuid.uuid4().hex[:16]}"
        out = await bounded(
            self.t.execute_workflow(BenchParent.run, "x", id=wid, task_queue=self.bare_tq),
            self.args.op_timeout,
            "bare workflow",
        )
        assert out == "x"

    async def bare_limited(self, sem: asyncio.Semaphore) -> None:
        async with sem:
            await self.bare_run()

    async def phase(self, name: str, fn: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        log(f"phase {name} …")
        t = time.perf_counter()
        try:
            self.out[name] = await fn()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            self.out[name] = {"error": self.errors[name]}
            log(f"phase {name} FAILED: {exc}\n{traceback.format_exc()}")
        self.out.setdefault("phase_seconds", {})[name] = round(time.perf_counter() - t, 2)
        log(f"phase {name} done in {time.perf_counter() - t:.1f}s")

    # --- 1. latency -------------------------------------------------------------------------

    async def latency(self) -> dict[str, Any]:
        n, block = self.args.runs, self.args.block
        sid = await self.new_session()
        for _ in range(self.args.warmup):
            await self.ours_run(sid)
            await self.bare_run()
        ours: list[float] = []
        bare: list[float] = []
        submits: list[tuple[str, float, float, float]] = []  # run_id, wall submit, wall end, dur
        cpu = CpuMeter(self.server_pids)
        while len(ours) < n or len(bare) < n:
            k = min(block, n - len(ours))
            with cpu.measure("ours", k):
                for _ in range(k):
                    w0, t0 = time.time(), time.perf_counter()
                    result = await self.ours_run(sid)
                    dt = time.perf_counter() - t0
                    ours.append(dt)
                    submits.append((result.run_id, w0, w0 + dt, dt))
            k = min(block, n - len(bare))
            with cpu.measure("bare", k):
                for _ in range(k):
                    t0 = time.perf_counter()
                    await self.bare_run()
                    bare.append(time.perf_counter() - t0)
        breakdown = await self.store_breakdown(sid, submits)
        return {
            "ours": summary_ms(ours),
            "bare": summary_ms(bare),
            "cpu": cpu.report(),
            "warmup_runs": self.args.warmup,
            "block": block,
            "ours_breakdown_from_event_store": breakdown,
        }

    async def store_breakdown(
        self, sid: str, submits: list[tuple[str, float, float, float]]
    ) -> dict[str, Any]:
        """Median stage times (ms after the submit) from the stored events' ``created_at``."""
        events = await self.s.events(sid, limit=10_000)
        by_run: dict[str, dict[str, float]] = {}
        for e in events:
            if e.run_id is None:
                continue
            stamps = by_run.setdefault(e.run_id, {})
            stamps.setdefault(e.type.value, wall(e.created_at))  # first of each type
        stages: dict[str, list[float]] = {}
        for run_id, w0, w1, _dur in submits:
            stamps = by_run.get(run_id, {})
            for name in (
                "run_started",
                "message_sent",
                "message_streamed",
                "run_completed",
                "turn_completed",
            ):
                if name in stamps:
                    stages.setdefault(f"{name}_ms", []).append(stamps[name] - w0)
            stages.setdefault("result_returned_ms", []).append(w1 - w0)
            if "turn_completed" in stamps:
                # > 0: the session was still bookkeeping the run after the client had its
                # result (the next submit_run waits for the session lock meanwhile).
                stages.setdefault("turn_completed_after_result_ms", []).append(
                    stamps["turn_completed"] - w1
                )
        return {k: ms(statistics.median(v)) for k, v in stages.items()}

    # --- 2. first streamed event --------------------------------------------------------------

    async def first_event(self) -> dict[str, Any]:
        n = self.args.runs
        sid = await self.new_session()
        await self.ours_run(sid)  # warm the session
        follower = Follower(self.c, sid, await self.s.last_seq(sid), types=["message_streamed"])
        await asyncio.sleep(0.2)  # the follower is subscribed and idle before the first submit
        firsts: list[float] = []
        totals: list[float] = []
        commit_to_seen: list[float] = []
        submits: list[tuple[str, float, float, float]] = []
        run_ids: list[str] = []
        try:
            for _ in range(n):
                w0, t0 = time.time(), time.perf_counter()
                ref = await bounded(self.c.submit_run(sid, "hi"), self.args.op_timeout, "submit")
                seen, event = await follower.first(ref.run_id, self.args.op_timeout)
                # created_at is taken when the write starts: this is commit + wake-up + read.
                commit_to_seen.append(w0 + (seen - t0) - wall(event.created_at))
                result = await bounded(
                    self.c.wait_run(ref.run_id, sid), self.args.op_timeout, "wait_run"
                )
                t1 = time.perf_counter()
                if result.status is not RunStatus.COMPLETED:
                    raise RuntimeError(f"run {ref.run_id} ended {result.status.value}")
                firsts.append(seen - t0)
                totals.append(t1 - t0)
                submits.append((ref.run_id, w0, w0 + (t1 - t0), t1 - t0))
                run_ids.append(ref.run_id)
        finally:
            await follower.close()
        history = await self.history_breakdown(run_ids[-min(10, len(run_ids)) :])
        return {
            "ours_submit_to_first_message_streamed": summary_ms(firsts),
            "ours_submit_to_result_with_follower": summary_ms(totals),
            "event_created_at_to_follower_seen": summary_ms(commit_to_seen),
            "ours_breakdown_from_event_store": await self.store_breakdown(sid, submits),
            "agent_run_history_breakdown": history,
            "note": "follower and worker share one EventStore in this process, so SQLite "
            "followers are woken by the writer at once (another process would poll: +10-50 ms)",
        }

    async def history_breakdown(self, run_ids: list[str]) -> dict[str, Any]:
        """Median server-side stage times of AgentRun (and bare BenchChild) histories."""
        ours = [
            _history_stages(await self.t.get_workflow_handle(f"run-{r}").fetch_history())
            for r in run_ids
        ]
        bare_ids = []
        for _ in range(len(run_ids)):
            wid = f"bench-parent-{uuid.uuid4().hex[:16]}"
            await self.t.execute_workflow(BenchParent.run, "x", id=wid, task_queue=self.bare_tq)
            bare_ids.append(wid)
        bare = [
            _history_stages(await self.t.get_workflow_handle(f"{w}-child").fetch_history())
            for w in bare_ids
        ]
        parents = [
            _history_stages(await self.t.get_workflow_handle(w).fetch_history()) for w in bare_ids
        ]

        def med(rows: list[dict[str, float]]) -> dict[str, Any]:
            """Medians; ``*_s`` values become ``*_ms`` (offsets from the workflow's start)."""
            keys = sorted({k for r in rows for k in r})
            out: dict[str, Any] = {}
            for k in keys:
                m = statistics.median([r[k] for r in rows if k in r])
                if k.endswith("_s"):
                    out[k.removesuffix("_s") + "_ms"] = ms(m)
                else:
                    out[k] = m
            return out

        return {
            "n": len(run_ids),
            "agent_run": med(ours),
            "bare_child": med(bare),
            "bare_parent": med(parents),
            "agent_run_event_types": _event_type_counts(
                await self.t.get_workflow_handle(f"run-{run_ids[-1]}").fetch_history()
            )
            if run_ids
            else {},
        }

    # --- 3. throughput ------------------------------------------------------------------------

    async def throughput(self) -> dict[str, Any]:
        sessions, per = self.args.sessions, self.args.runs_per_session
        total = sessions * per
        t = time.perf_counter()
        sids = await asyncio.gather(*(self.new_session() for _ in range(sessions)))
        start_s = time.perf_counter() - t
        rounds: list[dict[str, float]] = []
        cpu = CpuMeter(self.server_pids)
        for r in range(self.args.throughput_rounds):
            # ours: every session runs `per` runs back to back, all sessions at once
            t0 = time.perf_counter()

            async def drive(sid: str) -> None:
                for _ in range(per):
                    await self.ours_run(sid)

            with cpu.measure("ours", total):
                await bounded(asyncio.gather(*(drive(s) for s in sids)), 600, "ours throughput")
            ours_s = time.perf_counter() - t0
            # bare: `total` parent workflows, `sessions` in flight
            sem = asyncio.Semaphore(sessions)
            t0 = time.perf_counter()
            with cpu.measure("bare", total):
                await bounded(
                    asyncio.gather(*(self.bare_limited(sem) for _ in range(total))),
                    600,
                    "bare throughput",
                )
            bare_s = time.perf_counter() - t0
            rounds.append(
                {
                    "ours_runs_per_s": round(total / ours_s, 2),
                    "bare_runs_per_s": round(total / bare_s, 2),
                    "ours_seconds": round(ours_s, 2),
                    "bare_seconds": round(bare_s, 2),
                }
            )
            log(f"throughput round {r + 1}: {rounds[-1]}")
        ours_rate = total * len(rounds) / sum(x["ours_seconds"] for x in rounds)
        bare_rate = total * len(rounds) / sum(x["bare_seconds"] for x in rounds)
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
            "cpu": cpu.report(),
        }

    # --- 5. cancel --------------------------------------------------------------------------

    async def cancel(self) -> dict[str, Any]:
        n = self.args.cancel_runs
        sid = await self.new_session()
        slow = MockScript(steps=[MockText(text="x" * 3000, chunk_size=1, delay_ms=10)])
        follower = Follower(self.c, sid, await self.s.last_seq(sid), types=["message_streamed"])
        await asyncio.sleep(0.2)
        cancel_s: list[float] = []
        stop_s: list[float] = []
        terminal_s: list[float] = []
        statuses: dict[str, int] = {}
        try:
            for _ in range(n):
                ref = await bounded(
                    self.c.submit_run(sid, "slow", mock=slow), self.args.op_timeout, "submit"
                )
                await follower.first(ref.run_id, self.args.op_timeout)
                w0, t0 = time.time(), time.perf_counter()
                done = await bounded(
                    self.c.cancel_run(sid, ref.run_id), self.args.op_timeout, "cancel_run"
                )
                cancel_s.append(time.perf_counter() - t0)
                statuses[done.status.value] = statuses.get(done.status.value, 0) + 1
                evs = await self.s.events(sid, run_id=ref.run_id, limit=10_000)
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

    # --- 6. long session -------------------------------------------------------------------

    async def long_session(self) -> dict[str, Any]:
        n = self.args.long_runs
        spec_default = SessionSpec(agent_id="x").continue_as_new_after_runs
        sid = await self.new_session()
        lat: list[float] = []
        results: list[RunResult] = []
        t = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            results.append(await self.ours_run(sid, f"turn {i + 1}"))
            lat.append(time.perf_counter() - t0)
            if (i + 1) % 100 == 0:
                log(f"long session: {i + 1}/{n} runs")
        elapsed = time.perf_counter() - t
        completed = sum(r.status is RunStatus.COMPLETED for r in results)
        view = await self.c.describe(sid)
        # Every execution of the session workflow (continue-as-new makes a new one).
        wid = f"session-{sid}"
        executions: list[dict[str, Any]] = []
        async for wf in self.t.list_workflows(f'WorkflowId = "{wid}"'):
            handle = self.t.get_workflow_handle(wid, run_id=wf.run_id)
            hist = await handle.fetch_history()
            desc = await handle.describe()
            info = desc.raw_description.workflow_execution_info
            executions.append(
                {
                    "run_id": wf.run_id,
                    "status": wf.status.name if wf.status else None,
                    "events": len(hist.events),
                    "json_bytes": len(hist.to_json()),
                    "server_history_size_bytes": info.history_size_bytes,
                    "server_history_length": info.history_length,
                }
            )
        largest = max(executions, key=lambda e: e["json_bytes"]) if executions else {}
        runs = await self.agent_run_histories([r.run_id for r in results])
        buckets = {
            f"runs_{i + 1}-{min(i + 100, n)}": summary_ms(lat[i : i + 100])
            for i in range(0, n, 100)
        }
        boundary = {
            str(k): ms(lat[k - 1])
            for k in sorted(
                {spec_default, spec_default + 1, 2 * spec_default, 2 * spec_default + 1}
            )
            if k <= n
        }
        return {
            "runs": n,
            "completed": completed,
            "all_completed": completed == n,
            "seconds": round(elapsed, 2),
            "continue_as_new_after_runs": spec_default,
            "continued_as_new": view.continued,
            "executions_found": len(executions),
            "session_run_count": view.run_count,
            "latency": summary_ms(lat),
            "latency_per_100_runs": buckets,
            "latency_around_continue_as_new_ms": boundary,
            "largest_session_history": {
                "events": max((e["events"] for e in executions), default=None),
                "json_bytes": largest.get("json_bytes"),
                "server_history_size_bytes": max(
                    (e["server_history_size_bytes"] for e in executions), default=None
                ),
            },
            "session_executions": executions,
            "largest_agent_run_history": runs,
            "temporal_limits": TEMPORAL_LIMITS,
        }

    async def agent_run_histories(self, run_ids: list[str]) -> dict[str, Any]:
        """The largest AgentRun history (events, JSON bytes) over the given runs."""
        sem = asyncio.Semaphore(8)
        sizes: list[tuple[int, int]] = []

        async def one(run_id: str) -> None:
            async with sem:
                hist = await self.t.get_workflow_handle(f"run-{run_id}").fetch_history()
                sizes.append((len(hist.events), len(hist.to_json())))

        await bounded(asyncio.gather(*(one(r) for r in run_ids)), 300, "AgentRun histories")
        if not sizes:
            return {}
        return {
            "runs_checked": len(sizes),
            "max_events": max(s[0] for s in sizes),
            "max_json_bytes": max(s[1] for s in sizes),
            "median_json_bytes": int(statistics.median(s[1] for s in sizes)),
        }

    # --- ratios -------------------------------------------------------------------------------

    def ratios(self) -> dict[str, Any]:
        lat = self.out.get("latency", {})
        fe = self.out.get("first_event", {})
        tp = self.out.get("throughput", {})
        cn = self.out.get("cancel", {})
        ours_p50 = (lat.get("ours") or {}).get("p50_ms")
        bare_p50 = (lat.get("bare") or {}).get("p50_ms")
        first_p50 = (fe.get("ours_submit_to_first_message_streamed") or {}).get("p50_ms")
        lat_r = ratio(ours_p50, bare_p50)
        first_r = ratio(first_p50, bare_p50)
        tp_r = ratio(tp.get("ours_runs_per_s"), tp.get("bare_runs_per_s"))
        cancel_p95 = (cn.get("cancel_run_returned") or {}).get("p95_ms")
        stop_p95 = (cn.get("cancel_to_last_message_streamed") or {}).get("p95_ms")

        def check(value: float | None, target: float, le: bool) -> dict[str, Any]:
            met = None if value is None else (value <= target if le else value >= target)
            return {"value": value, "target": ("<= " if le else ">= ") + f"{target:g}", "met": met}

        return {
            "latency_p50_ours_over_bare": check(lat_r, TARGETS["latency_p50_ratio_max"], True),
            "first_event_p50_over_bare_latency_p50": check(
                first_r, TARGETS["first_event_p50_over_bare_latency_p50_max"], True
            ),
            "throughput_ours_over_bare": check(tp_r, TARGETS["throughput_ratio_min"], False),
            "cancel_run_p95_s": check(
                None if cancel_p95 is None else round(cancel_p95 / 1000, 3),
                TARGETS["cancel_p95_max_s"],
                True,
            ),
            "cancel_to_provider_stopped_p95_s": check(
                None if stop_p95 is None else round(stop_p95 / 1000, 3),
                TARGETS["cancel_p95_max_s"],
                True,
            ),
        }

    def bytecode_cache(self) -> None:
        """Let the workflow sandbox load cached bytecode, as an installed package would.

        The sandbox re-imports each workflow's module for every new workflow instance. With
        ``PYTHONDONTWRITEBYTECODE=1`` and a source checkout there is no ``.pyc``, so every
        instance would compile its module from source (this 900-line file: ~7 ms per bare
        workflow, twice per bare run; agent_run.py: ~1.5 ms per run), which skews the
        comparison. A pip-installed worker (the Dockerfile) has compiled bytecode, so we give
        the sandbox a bytecode cache in our temp dir (never in the repository).
        """
        if self.args.no_bytecode_cache:
            return
        sys.pycache_prefix = str(Path(self.tmp.name) / "pycache")
        sys.dont_write_bytecode = False

    async def main(self) -> int:
        t = time.perf_counter()
        self.bytecode_cache()
        self.out["args"] = {k: v for k, v in vars(self.args).items() if k != "database_url"}
        self.out["args"]["database"] = "given" if self.args.database_url else "sqlite (temp dir)"
        self.out["args"]["env_PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE")
        self.out["load_before"] = load_snapshot()
        try:
            await self.setup()
        except Exception as exc:
            self.errors["setup"] = f"{type(exc).__name__}: {exc}"
            log(traceback.format_exc())
        else:
            await self.phase("latency", self.latency)
            await self.phase("first_event", self.first_event)
            await self.phase("throughput", self.throughput)
            if self.args.cancel_runs > 0:
                await self.phase("cancel", self.cancel)
            if self.args.long_runs > 0:
                await self.phase("long_session", self.long_session)
        self.out["ratios"] = self.ratios()
        self.out["notes"] = [
            "ours and bare share one process, one dev server and 2 CPUs with whatever else runs "
            "on the machine: compare the two sides, and see load_before/load_after for noise",
            "the dev server runs as `asm dev` runs it (worker.dev_server.DEV_SERVER_TUNING: "
            "history.transferProcessorMaxPollRPS=1000; the stock 20/s makes every task dispatch "
            "wait up to ~50 ms, which dominates both sides and hides our own overhead)",
        ]
        self.out["load_after"] = load_snapshot()
        self.out["teardown"] = await self.teardown()
        self.out["errors"] = self.errors
        self.out["total_seconds"] = round(time.perf_counter() - t, 2)
        return 1 if self.errors else 0


# --- history analysis -----------------------------------------------------------------------


def _ts(e: Any) -> float:
    return float(e.event_time.seconds + e.event_time.nanos / 1e9)


def _history_stages(hist: WorkflowHistory) -> dict[str, float]:
    """Server-side stage durations (s) of one workflow execution, from its event times."""
    events = list(hist.events)
    if not events:
        return {}
    start = _ts(events[0])
    out: dict[str, float] = {"total_s": _ts(events[-1]) - start}
    tasks, task_time = 0, 0.0  # workflow tasks, and their time from scheduled to completed
    sched: float | None = None
    for e in events:
        kind = e.event_type
        if kind == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            sched = _ts(e)
        elif kind == HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and sched is not None:
            tasks += 1
            task_time += _ts(e) - sched
            sched = None
    out["workflow_tasks"] = tasks
    out["workflow_task_time_s"] = task_time

    def first(kind: int) -> float | None:
        return next((_ts(e) - start for e in events if e.event_type == kind), None)

    marks = {
        "first_wft_completed_s": HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        "activity_scheduled_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        "activity_started_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        "activity_completed_s": HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        "child_initiated_s": HistoryEventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        "child_started_s": HistoryEventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        "child_completed_s": HistoryEventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        "signal_initiated_s": (
            HistoryEventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
        ),
    }
    for name, kind in marks.items():
        v = first(kind)
        if v is not None:
            out[name] = v
    return out


def _event_type_counts(hist: WorkflowHistory) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in hist.events:
        name = HistoryEventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower()
        counts[name] = counts.get(name, 0) + 1
    return counts


def _temporalio_version() -> str:
    try:
        from importlib.metadata import version

        return version("temporalio")
    except Exception:
        return "?"


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
        help="do not give the workflow sandbox a bytecode cache (see Bench.bytecode_cache)",
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
    bench = Bench(args)
    code = 1
    try:
        code = asyncio.run(bench.main())
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
