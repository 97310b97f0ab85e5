"""Fleet-wide limits benchmark (issue 16): a fleet of workers against a rate-limited account.

Prints ONE JSON document on stdout; progress goes to stderr. Phases:

1. ``fleet``: ``--workers`` worker processes (``asm worker``, the real entry point) share one
   embedded Temporal dev server and one event store, with ``ASM_LIMITS`` = at most ``--limit``
   concurrent runs and ``--rpm`` calls per minute per credential. Every run calls the
   ``anthropic`` provider (the real SDK) against a wire fake (``tests/fakes/
   rate_limited_anthropic.py``) that enforces ``--limit`` concurrent requests and a ``--rpm``
   token bucket and answers 429 with ``retry-after`` beyond. Four tenants (one session each,
   tag ``tenant:<name>``) submit ``--tenant-runs`` runs (40/20/10/2), the largest first.
   Measured: the most requests in flight at the fake, the share of 429s, whether every run
   completed, and Jain's fairness index of per-tenant slot grants while all tenants were
   backlogged (from each tenant's first ``run_queued`` to the earliest last grant).
2. ``kill``: ``--limit`` long runs hold every slot and one more waits; the worker holding the
   most slots is killed with SIGKILL. Measured: when its slots were free again (reclaimed by
   expiry, or taken over by the runs' retries) against the heartbeat timeout + 5 s; the most
   slots ever held at once (never over the limit: nothing double-counted); every run completed.
3. ``latency``: two in-process workers on the same server, one with limits off, one with run
   slots on (a limit far above the load, so a slot is always free): sequential one-step mock
   runs in alternating blocks; p50 ratio on/off (target ≤ 1.10).

Run: ``.venv/bin/python bench/limits.py [--database-url postgresql+asyncpg://…]``
(default: SQLite in a temp dir; several minutes: at 60 RPM the fleet phase alone takes > 1 min).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent_session_manager.activities.providers import discover  # noqa: E402
from agent_session_manager.client.session_client import SessionClient  # noqa: E402
from agent_session_manager.core.contract import (  # noqa: E402
    MockScript,
    MockText,
    RetrySettings,
    SessionSpec,
)
from agent_session_manager.core.events import EventType  # noqa: E402
from agent_session_manager.core.limits import Limits, jain_index  # noqa: E402
from agent_session_manager.core.status import RunStatus  # noqa: E402
from agent_session_manager.store import EventStore, open_store, upgrade  # noqa: E402
from agent_session_manager.worker.dev_server import DevServer, start_dev_server  # noqa: E402
from agent_session_manager.worker.settings import Settings  # noqa: E402
from agent_session_manager.worker.worker import serve  # noqa: E402
from tests.chaos.worker_process import WorkerProcess, worker_fleet  # noqa: E402
from tests.fakes.anthropic_server import Reply, Text  # noqa: E402
from tests.fakes.rate_limited_anthropic import RateLimitedFake  # noqa: E402

API_KEY = "sk-bench-limits"
MODEL = "claude-sonnet-4-6"
RETRY = RetrySettings(max_attempts=30, initial_interval_seconds=1.0, maximum_interval_seconds=10.0)


def log(msg: str) -> None:
    print(f"[bench/limits {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "?"


async def start(client: SessionClient, spec: SessionSpec) -> str:
    """Start a session, riding out a slow first workflow task (a cold worker process on a
    loaded machine can take longer than the client's query timeout)."""
    sid = f"ses_bench_{uuid.uuid4().hex[:12]}"
    spec = spec.model_copy(update={"session_id": sid})
    try:
        await client.start_session(spec)
    except Exception as exc:
        log(f"start_session {sid}: {exc}; waiting for it to be ready")
        for _ in range(240):
            with contextlib.suppress(Exception):
                if (await client.describe(sid)).ready:
                    return sid
            await asyncio.sleep(0.5)
        raise
    return sid


async def run_times(
    store: EventStore, sid: str, run_id: str
) -> tuple[float | None, float | None, float | None, int, list[str]]:
    """(first run_queued, run_started, run_completed, number of run_queued, error codes)."""
    events = await store.events(sid, run_id=run_id, limit=10_000)
    queued = [e.created_at.timestamp() for e in events if e.type is EventType.RUN_QUEUED]
    started = [e.created_at.timestamp() for e in events if e.type is EventType.RUN_STARTED]
    ended = [e.created_at.timestamp() for e in events if e.type is EventType.RUN_COMPLETED]
    errors = [str(e.data.get("code")) for e in events if e.type is EventType.ERROR_OCCURRED]
    return (
        (min(queued) if queued else None),
        (max(started) if started else None),
        (max(ended) if ended else None),
        len(queued),
        errors,
    )


def fairness(per_tenant: dict[str, list[tuple[float | None, float, float]]]) -> dict[str, Any]:
    """Jain's index of per-tenant throughput while every tenant had runs waiting.

    The window runs from the last tenant's first wait to the first tenant's last grant (after
    it, one tenant has nothing left to wait for). Throughput is counted two ways: grants
    (``run_started``) in the window, and slot-seconds (``run_started`` to ``run_completed``
    clipped to the window: a tenant's share of the slots).
    """
    first_wait = {}
    last_grant = {}
    for tenant, runs in per_tenant.items():
        waits = [q for q, _, _ in runs if q is not None]
        if not waits:
            return {"window": None, "why": f"tenant {tenant} never waited"}
        first_wait[tenant] = min(waits)
        last_grant[tenant] = max(s for _, s, _ in runs)
    start, end = max(first_wait.values()), min(last_grant.values())
    if end <= start:
        return {"window": None, "why": "no moment when every tenant was backlogged"}
    grants = {t: sum(1 for _, s, _ in r if start <= s <= end) for t, r in per_tenant.items()}
    held = {
        t: round(sum(max(0.0, min(e, end) - max(s, start)) for _, s, e in r), 2)
        for t, r in per_tenant.items()
    }
    return {
        "tenants": sorted(per_tenant),
        "window_seconds": round(end - start, 2),
        "grants_in_window": grants,
        "slot_seconds_in_window": held,
        "jain_grants": round(jain_index(list(grants.values())), 4),
        "jain_slot_seconds": round(jain_index(list(held.values())), 4),
    }


async def progress(
    fake: RateLimitedFake, store: EventStore, started: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5)
        leases = await store.leases(now=time.time())
        held = sum(1 for x in leases if x.kind == "run" and x.state == "held")
        waiting = sum(1 for x in leases if x.kind == "run" and x.state != "held")
        log(
            f"t={time.monotonic() - started:5.1f}s fake: ok={fake.accepted} 429={fake.rejected} "
            f"in flight={fake.in_flight} (max {fake.max_in_flight}); slots held={held} "
            f"waiting={waiting}; load {loadavg()}"
        )


async def phase_fleet(
    args: argparse.Namespace, server: DevServer, url: str, store: EventStore
) -> dict[str, Any]:
    tenants = dict(zip("ABCD", (int(x) for x in args.tenant_runs.split(",")), strict=False))
    total = sum(tenants.values())
    chunks = 10
    reply = Reply(
        [Text(*["word " for _ in range(chunks)])], delay=args.reply_seconds / (chunks + 6)
    )
    task_queue = f"bench-limits-{uuid.uuid4().hex[:8]}"
    limits = {"max_runs": args.limit, "rpm_per_credential": args.rpm, "poll_seconds": 0.2}
    async with RateLimitedFake(
        max_concurrent=args.limit, rpm=args.rpm, api_key=API_KEY, default=reply
    ) as fake:
        env = {
            "ASM_LIMITS": json.dumps(limits),
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": fake.base_url,
        }
        workers = [
            WorkerProcess(server.address, url, task_queue, **env) for _ in range(args.workers)
        ]
        async with worker_fleet(workers):
            log(f"{args.workers} workers up; {total} runs over tenants {tenants}, limits {limits}")
            client = SessionClient(server.client, store, task_queue=task_queue)
            sessions = {}
            for tenant in tenants:
                sessions[tenant] = await start(
                    client,
                    SessionSpec(
                        agent_id="bench-limits",
                        provider="anthropic",
                        model=MODEL,
                        tags=[f"tenant:{tenant}"],
                        max_concurrent_runs=100,
                        retry=RETRY,
                        heartbeat_timeout_seconds=10,
                        run_timeout_seconds=900,
                    ),
                )
            t0 = time.monotonic()
            stop = asyncio.Event()
            ticker = asyncio.create_task(progress(fake, store, t0, stop))
            refs: list[tuple[str, str, str]] = []
            # Temporal admits 10 in-flight updates per workflow: submit 8 at a time.
            gate = asyncio.Semaphore(8)

            async def submit(sid: str, prompt: str) -> str:
                async with gate:
                    return (await client.submit_run(sid, prompt)).run_id

            try:
                for tenant, n in tenants.items():  # the biggest tenant queues first
                    sid = sessions[tenant]
                    for rid in await asyncio.gather(
                        *(submit(sid, f"{tenant} {i}") for i in range(n))
                    ):
                        refs.append((tenant, sid, rid))
                results = await asyncio.gather(
                    *(asyncio.wait_for(client.wait_run(r, s), 1200) for _, s, r in refs)
                )
            finally:
                elapsed = time.monotonic() - t0
                stop.set()
                await ticker
    statuses = Counter(r.status.value for r in results)
    per_tenant: dict[str, list[tuple[float | None, float, float]]] = {t: [] for t in tenants}
    queued_events = 0
    errors: Counter[str] = Counter()
    for tenant, sid, rid in refs:
        first_queued, started, ended, n_queued, codes = await run_times(store, sid, rid)
        queued_events += n_queued
        errors.update(codes)
        if started is not None and ended is not None:
            per_tenant[tenant].append((first_queued, started, ended))
    calls = fake.accepted + fake.rejected
    share_429 = fake.rejected / calls if calls else 0.0
    fair = fairness(per_tenant)
    # After the smallest tenant drains, the other three stay backlogged much longer.
    smallest = min(tenants, key=lambda t: tenants[t])
    fair_rest = fairness({t: r for t, r in per_tenant.items() if t != smallest})
    return {
        "runs": total,
        "statuses": dict(statuses),
        "seconds": round(elapsed, 1),
        "fake": {
            "calls": calls,
            "accepted": fake.accepted,
            "rejected_429": fake.rejected,
            "rejected_for_concurrency": fake.rejected_concurrency,
            "max_in_flight": fake.max_in_flight,
        },
        "share_429": round(share_429, 4),
        "run_queued_events": queued_events,
        "attempts": dict(Counter(r.attempts for r in results)),
        "failed_attempt_codes": dict(errors),
        "fairness": fair,
        "fairness_without_smallest_tenant": fair_rest,
        "targets": {
            "concurrency_at_fake_le_limit": fake.max_in_flight <= args.limit,
            "share_429_le_5pct": share_429 <= 0.05,
            "every_run_completed": statuses == Counter({"completed": total}),
            "jain_ge_0.9": (fair.get("jain_slot_seconds") or 0) >= 0.9,
        },
    }


async def phase_kill(
    args: argparse.Namespace, server: DevServer, url: str, store: EventStore
) -> dict[str, Any]:
    heartbeat = args.kill_heartbeat
    task_queue = f"bench-limits-kill-{uuid.uuid4().hex[:8]}"
    reply = Reply([Text(*["slow " for _ in range(40)])], delay=args.kill_reply_seconds / 46)
    limits = {"max_runs": args.limit, "poll_seconds": 0.2}
    async with RateLimitedFake(
        max_concurrent=args.limit, rpm=100_000, api_key=API_KEY, default=reply
    ) as fake:
        env = {
            "ASM_LIMITS": json.dumps(limits),
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_BASE_URL": fake.base_url,
        }
        workers = [
            WorkerProcess(server.address, url, task_queue, **env) for _ in range(args.workers)
        ]
        async with worker_fleet(workers):
            client = SessionClient(server.client, store, task_queue=task_queue)
            sid = await start(
                client,
                SessionSpec(
                    agent_id="bench-limits-kill",
                    provider="anthropic",
                    model=MODEL,
                    tags=["tenant:K"],
                    max_concurrent_runs=100,
                    retry=RETRY,
                    heartbeat_timeout_seconds=heartbeat,
                    run_timeout_seconds=900,
                ),
            )
            refs = [await client.submit_run(sid, f"long {i}") for i in range(args.limit + 1)]
            mine = {f"run:{r.run_id}" for r in refs}

            async def held_by() -> dict[str, list[str]]:
                out: dict[str, list[str]] = {}
                for x in await store.leases(now=time.time()):
                    if x.lease_id in mine and x.state == "held":
                        out.setdefault(x.holder.split("/")[0], []).append(x.lease_id)
                return out

            for _ in range(600):
                holders = await held_by()
                if sum(len(v) for v in holders.values()) >= args.limit:
                    break
                await asyncio.sleep(0.1)
            holders = await held_by()
            victim_holder, victim_slots = max(holders.items(), key=lambda kv: len(kv[1]))
            victim_pid = int(victim_holder.rsplit(":", 1)[1])
            victim = next(w for w in workers if w.pid == victim_pid)
            log(f"slots held {holders}; SIGKILL worker pid {victim_pid} holding {victim_slots}")
            killed_at = time.monotonic()
            await victim.kill9()
            max_held = 0
            freed_after: float | None = None
            while time.monotonic() - killed_at < heartbeat + 60:
                leases = [x for x in await store.leases(now=time.time()) if x.lease_id in mine]
                held = [x for x in leases if x.state == "held"]
                max_held = max(max_held, len(held))
                still = [x for x in held if x.holder.split("/")[0] == victim_holder]
                if freed_after is None and not still:
                    freed_after = time.monotonic() - killed_at
                    log(f"the killed worker's slots are free {freed_after:.1f}s after the kill")
                if freed_after is not None and not leases:
                    break
                await asyncio.sleep(0.1)
            results = await asyncio.gather(
                *(asyncio.wait_for(client.wait_run(r.run_id, sid), 600) for r in refs)
            )
    statuses = Counter(r.status.value for r in results)
    return {
        "heartbeat_timeout_seconds": heartbeat,
        "killed_worker_held": len(victim_slots),
        "freed_after_seconds": None if freed_after is None else round(freed_after, 2),
        "max_slots_held_after_kill": max_held,
        "fake_max_in_flight": fake.max_in_flight,
        "statuses": dict(statuses),
        "attempts": sorted(r.attempts for r in results),
        "targets": {
            "freed_within_heartbeat_plus_5s": freed_after is not None
            and freed_after <= heartbeat + 5,
            "never_over_limit": max_held <= args.limit and fake.max_in_flight <= args.limit,
            "every_run_completed": statuses == Counter({"completed": len(refs)}),
        },
    }


async def phase_latency(
    args: argparse.Namespace, server: DevServer, store: EventStore
) -> dict[str, Any]:
    script = MockScript(steps=[MockText(text="ok")])
    sides = {
        "off": Limits(share_cooldowns=False),
        "on": Limits(max_runs=10_000, max_runs_per_tenant=10_000),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        sids = {}
        for name, limits in sides.items():
            tq = f"bench-limits-lat-{name}-{uuid.uuid4().hex[:6]}"
            await stack.enter_async_context(
                serve(
                    server.client,
                    store,
                    task_queue=tq,
                    providers=discover(),
                    secrets={},
                    settings=Settings(limits=limits),
                )
            )
            clients[name] = SessionClient(server.client, store, task_queue=tq)
            view = await clients[name].start_session(
                SessionSpec(agent_id="bench-latency", mock=script, tags=["tenant:L"])
            )
            sids[name] = view.session_id
        for name in sides:  # warm-up
            await clients[name].run(sids[name], "warm")
        block = 10
        for b in range(max(1, args.latency_runs // block)):
            for name in sides if b % 2 == 0 else reversed(list(sides)):
                for _ in range(block):
                    t = time.perf_counter()
                    result = await clients[name].run(sids[name], "hi")
                    times[name].append(time.perf_counter() - t)
                    assert result.status is RunStatus.COMPLETED, result
    p50 = {k: statistics.median(v) for k, v in times.items()}
    p95 = {k: statistics.quantiles(v, n=20)[-1] for k, v in times.items()}
    ratio = p50["on"] / p50["off"]
    return {
        "runs_per_side": len(times["on"]),
        "p50_ms": {k: round(v * 1000, 1) for k, v in p50.items()},
        "p95_ms": {k: round(v * 1000, 1) for k, v in p95.items()},
        "ratio_p50_on_off": round(ratio, 3),
        "targets": {"ratio_p50_le_1.10": ratio <= 1.10},
    }


async def main(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {"args": vars(args) | {"database_url": bool(args.database_url)}}
    out["load_before"] = loadavg()
    tmp = tempfile.TemporaryDirectory(prefix="asm-bench-limits-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'asm.db'}"
    server = await start_dev_server(home=None, ui=False)
    failed = False
    try:
        await upgrade(url)
        store = await open_store(url)
        out["backend"] = store.backend
        try:
            phases = args.phases.split(",")
            for name in phases:
                log(f"phase {name} …")
                try:
                    if name == "fleet":
                        out[name] = await phase_fleet(args, server, url, store)
                    elif name == "kill":
                        out[name] = await phase_kill(args, server, url, store)
                    elif name == "latency":
                        out[name] = await phase_latency(args, server, store)
                    else:
                        raise ValueError(f"unknown phase {name!r}")
                except Exception as exc:
                    failed = True
                    out[name] = {"error": f"{type(exc).__name__}: {exc}"}
                    log(traceback.format_exc())
                log(f"phase {name}: {json.dumps(out[name])}")
        finally:
            await store.close()
    finally:
        await server.shutdown()
        tmp.cleanup()
    out["load_after"] = loadavg()
    print(json.dumps(out, indent=2), flush=True)
    return 1 if failed else 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phases", default="fleet,kill,latency")
    p.add_argument("--database-url", default=None)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--tenant-runs", default="40,20,10,2")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--rpm", type=int, default=60)
    p.add_argument("--reply-seconds", type=float, default=1.0)
    p.add_argument("--kill-heartbeat", type=float, default=5.0)
    p.add_argument("--kill-reply-seconds", type=float, default=12.0)
    p.add_argument("--latency-runs", type=int, default=100)
    return p.parse_args()


if __name__ == "__main__":
    code = asyncio.run(main(parse()))
    sys.stdout.flush()
    os._exit(code)  # a Temporal client can abort at interpreter exit (sdk-python#300)
