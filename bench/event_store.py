"""Event store benchmark: ingest vs raw executemany, follower delay vs one committed insert.

Prints one JSON document. For each backend (SQLite in a temp dir; PostgreSQL from
``ASM_BENCH_DATABASE_URL`` or the local default, in a throwaway database when the role may
create one, skipped with a message when unreachable):

* ``ingest``: events/s of ``EventStore.append`` in batches, and of the same rows inserted by a
  raw SQLAlchemy ``executemany`` (one transaction per batch) into the same table through the
  same engine, measured in alternating rounds of the same run. Target: ratio >= 0.5.
* ``follow``: delay from the start of a flush (``append`` of a small batch) to a follower on
  another store instance (another process, as far as wake-ups go: LISTEN/NOTIFY or polling)
  yielding it, p50/p99; beside the latency of one committed single-row insert
  (``BEGIN; INSERT; COMMIT`` through the same engine). Targets: PostgreSQL p50 <= 3x the
  insert p50; SQLite p99 <= 100 ms.

* ``cpu`` (only with ``--cpu``): CPU time (``time.process_time``, all threads, so SQLite's
  driver thread counts) per call of ``record``, ``save_messages``, ``append`` and
  ``conversation`` while simulating runs the way the workflows and the provider activity make
  them: ``run_started``, ``conversation``, an ``append`` of 5 streamed events,
  ``save_messages`` (2 messages + 5 events), the ending record and ``turn_completed``. Medians
  of ``--cpu-repeats`` passes of ``--cpu-runs`` runs each, in µs per call.

Run: ``.venv/bin/python bench/event_store.py [--quick] [--cpu]`` (total run time well under
60 s without ``--cpu``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy.engine import make_url

from agent_session_manager.core.contract import LifecycleRecord, Message, RunPatch, SessionPatch
from agent_session_manager.core.events import (
    Event,
    EventDraft,
    EventType,
    activity_event_id,
    lifecycle_event_id,
)
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.store._schema import EVENTS

LOCAL_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def _drafts(session_id: str, run_id: str, n: int, start: int = 0) -> list[EventDraft]:
    return [
        EventDraft(
            id=activity_event_id(run_id, 1, i),
            session_id=session_id,
            run_id=run_id,
            attempt=1,
            type=EventType.MESSAGE_STREAMED,
            # A coalesced text delta: what the provider activity flushes.
            data={"text": "The quick brown fox jumps over the lazy dog. " * 2, "index": i},
            provider="mock",
        )
        for i in range(start, start + n)
    ]


def _raw_rows(session_id: str, run_id: str, n: int, first_seq: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "session_id": session_id,
            "seq": first_seq + i,
            "id": f"{run_id}/raw/{first_seq + i}",
            "run_id": run_id,
            "attempt": 1,
            "type": d.type.value,
            "data": d.data,
            "provider": d.provider,
            "created_at": now,
        }
        for i, d in enumerate(_drafts(session_id, run_id, n))
    ]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def _time_appends(store: EventStore, work: list[list[EventDraft]]) -> float:
    """events/s of sequential batched appends."""
    t = time.perf_counter()
    for batch in work:
        await store.append(batch)
    return sum(map(len, work)) / (time.perf_counter() - t)


async def _time_raw(store: EventStore, work: list[list[dict[str, Any]]]) -> float:
    """events/s of raw SQLAlchemy executemany, one transaction per batch, same engine."""
    t = time.perf_counter()
    for rows in work:
        async with store.engine.begin() as conn:
            await conn.execute(EVENTS.insert(), rows)
    return sum(map(len, work)) / (time.perf_counter() - t)


async def bench_ingest(
    store: EventStore, batches: int, batch_size: int, rounds: int
) -> dict[str, Any]:
    engine = store.engine
    tag = uuid.uuid4().hex[:8]
    store_rates: list[float] = []
    raw_rates: list[float] = []
    # Warm-up: connections, prepared statements, SQLite page cache.
    await store.append(_drafts(f"warm-{tag}", f"warm-{tag}", batch_size))
    async with engine.begin() as conn:
        await conn.execute(
            EVENTS.insert(), _raw_rows(f"warmraw-{tag}", f"warmraw-{tag}", batch_size, 1)
        )
    for r in range(rounds):
        sid, run = f"ingest-{tag}-{r}", f"ingest-{tag}-{r}-run"
        raw_sid, raw_run = f"raw-{tag}-{r}", f"raw-{tag}-{r}-run"
        work = [_drafts(sid, run, batch_size, b * batch_size) for b in range(batches)]
        raw_work = [
            _raw_rows(raw_sid, raw_run, batch_size, b * batch_size + 1) for b in range(batches)
        ]

        # Alternate the order so drift (cache warm-up, checkpoints) hits both sides alike.
        if r % 2 == 0:
            store_rates.append(await _time_appends(store, work))
            raw_rates.append(await _time_raw(store, raw_work))
        else:
            raw_rates.append(await _time_raw(store, raw_work))
            store_rates.append(await _time_appends(store, work))
        assert await store.last_seq(sid) == batches * batch_size
    ours, raw = statistics.median(store_rates), statistics.median(raw_rates)
    return {
        "batch_size": batch_size,
        "events_per_round": batches * batch_size,
        "rounds": rounds,
        "append_events_per_s": round(ours),
        "raw_executemany_events_per_s": round(raw),
        "ratio": round(ours / raw, 3),
    }


async def bench_follow(
    writer: EventStore, follower: EventStore, samples: int, flush_size: int, max_gap_ms: float
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    sid, run = f"follow-{tag}", f"follow-{tag}-run"
    flushed_at: dict[int, float] = {}
    delays: list[float] = []
    total = samples * flush_size
    ready = asyncio.Event()

    async def follow() -> None:
        it = follower.follow(sid)
        async with contextlib.aclosing(it):  # type: ignore[type-var]
            ready.set()
            ev: Event
            async for ev in it:
                if ev.seq % flush_size == 0:  # the last event of its flush
                    delays.append(time.perf_counter() - flushed_at[ev.seq])
                if ev.seq == total:
                    return

    task = asyncio.create_task(follow())
    await ready.wait()
    await asyncio.sleep(0.1)
    rng = random.Random(7)
    for i in range(samples):
        flushed_at[(i + 1) * flush_size] = time.perf_counter()
        await writer.append(_drafts(sid, run, flush_size, i * flush_size))
        # Irregular gaps, like a model's token stream, so polling is sampled at every phase
        # (including after its idle back-off).
        await asyncio.sleep(rng.uniform(0, max_gap_ms) / 1000)
    async with asyncio.timeout(30):
        await task

    # One committed single-row insert, through the same engine, same table, same run.
    engine = writer.engine
    inserts: list[float] = []
    for i in range(samples):
        row = _raw_rows(f"single-{tag}", f"single-{tag}-run", 1, i + 1)[0]
        t = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(EVENTS.insert(), row)
        inserts.append(time.perf_counter() - t)
        await asyncio.sleep(rng.uniform(0, max_gap_ms) / 1000)
    return {
        "samples": samples,
        "flush_size": flush_size,
        "delay_ms": {
            "p50": _ms(_pct(delays, 50)),
            "p99": _ms(_pct(delays, 99)),
            "max": _ms(max(delays)),
        },
        "single_insert_commit_ms": {"p50": _ms(_pct(inserts, 50)), "p99": _ms(_pct(inserts, 99))},
        "p50_ratio_to_single_insert": round(_pct(delays, 50) / _pct(inserts, 50), 3),
    }


async def bench_backend(url: str, quick: bool) -> dict[str, Any]:
    await upgrade(url)
    writer = await open_store(url)
    follower = await open_store(url)
    try:
        ingest = await bench_ingest(
            writer, batches=40 if quick else 100, batch_size=100, rounds=2 if quick else 4
        )
        follow = await bench_follow(
            writer, follower, samples=100 if quick else 300, flush_size=4, max_gap_ms=30
        )
    finally:
        await follower.close()
        await writer.close()
    return {"url": writer.display_url, "ingest": ingest, "follow": follow}


# --- CPU per call ---------------------------------------------------------------------------

_USAGE = TokenUsage(input_tokens=1200, output_tokens=340, cache_read_input_tokens=800)
_TURNS_PER_SESSION = 5


def _session_created(sid: str) -> LifecycleRecord:
    """What ``AgentSession`` records first (workflows/agent_session.py)."""
    row = {"agent_id": "bench", "provider": "mock", "model": "m-1", "tags": ["a", "b"]}
    return LifecycleRecord(
        event_id=lifecycle_event_id(sid, 1, EventType.SESSION_CREATED),
        session_id=sid,
        type=EventType.SESSION_CREATED.value,
        data=row | {"metadata": {"k": "v"}},
        session_status=SessionStatus.PENDING,
        session_row=SessionPatch(
            agent_id="bench", provider="mock", model="m-1", tags=["a", "b"], metadata={"k": "v"}
        ),
    )


def _run_records(sid: str, run_id: str, turn: int) -> list[LifecycleRecord]:
    """``run_started``, ``run_completed`` (core/lifecycle.py) and ``turn_completed``."""
    now = datetime.now(UTC)
    messages = [Message(role="user", content=f"turn {turn}: summarize the repository layout")]
    started = LifecycleRecord(
        event_id=lifecycle_event_id(run_id, 1, EventType.RUN_STARTED),
        session_id=sid,
        run_id=run_id,
        type=EventType.RUN_STARTED.value,
        data={
            "provider": "mock",
            "model": "m-1",
            "turn": turn,
            "input": [m.model_dump() for m in messages],
        },
        provider="mock",
        run_status=RunStatus.RUNNING,
        run_row=RunPatch(
            session_id=sid,
            turn=turn,
            input_text=messages[-1].text(),
            input_messages=messages,
            provider="mock",
            model="m-1",
            started_at=now,
        ),
    )
    ended = LifecycleRecord(
        event_id=lifecycle_event_id(run_id, 2, EventType.RUN_COMPLETED),
        session_id=sid,
        run_id=run_id,
        type=EventType.RUN_COMPLETED.value,
        data={"attempts": 1, "stop_reason": "end_turn", "usage": _USAGE.model_dump()},
        provider="mock",
        run_status=RunStatus.COMPLETED,
        run_row=RunPatch(
            output="The repository has core/, store/ and workflows/.",
            stop_reason="end_turn",
            usage=_USAGE,
            error=None,
            attempts=1,
            ended_at=now,
        ),
    )
    turn_completed = LifecycleRecord(
        event_id=lifecycle_event_id(sid, 100 + turn, EventType.TURN_COMPLETED),
        session_id=sid,
        run_id=run_id,
        type=EventType.TURN_COMPLETED.value,
        data={"turn": turn, "status": "completed", "usage": _USAGE.model_dump()},
        session_row=SessionPatch(usage=_USAGE, run_count=turn),
    )
    return [started, ended, turn_completed]


async def _cpu_pass(store: EventStore, runs: int, tag: str) -> dict[str, list[float]]:
    """CPU seconds of every call, per method, over ``runs`` simulated runs."""
    spent: dict[str, list[float]] = {
        "record": [],
        "save_messages": [],
        "append": [],
        "conversation": [],
    }

    async def timed(name: str, call: Any) -> None:
        t = time.process_time()
        await call
        spent[name].append(time.process_time() - t)

    sid = ""
    for i in range(runs):
        turn = i % _TURNS_PER_SESSION + 1
        if turn == 1:
            sid = f"cpu-{tag}-{i}"
            await timed("record", store.record(_session_created(sid)))
        run_id = f"{sid}-run-{turn}"
        started, ended, turn_completed = _run_records(sid, run_id, turn)
        await timed("record", store.record(started))
        await timed("conversation", store.conversation(sid, before_turn=turn))
        await timed("append", store.append(_drafts(sid, run_id, 5)))
        messages = [
            Message(role="user", content=f"turn {turn}: summarize the repository layout"),
            Message(role="assistant", content=[{"type": "text", "text": "It has core/ ..."}]),
        ]
        await timed(
            "save_messages",
            store.save_messages(sid, run_id, turn, messages, events=_drafts(sid, run_id, 5, 5)),
        )
        await timed("record", store.record(ended))
        await timed("record", store.record(turn_completed))
    return spent


async def bench_cpu(url: str, runs: int, repeats: int) -> dict[str, Any]:
    await upgrade(url)
    store = await open_store(url)
    try:
        await _cpu_pass(store, 20, f"warm-{uuid.uuid4().hex[:8]}")  # caches, prepared statements
        per_pass: dict[str, list[float]] = {}
        calls: dict[str, int] = {}
        for _ in range(repeats):
            spent = await _cpu_pass(store, runs, uuid.uuid4().hex[:8])
            for name, times in spent.items():
                per_pass.setdefault(name, []).append(sum(times) / len(times))
                calls[name] = len(times)
    finally:
        await store.close()
    return {
        name: {
            "calls_per_pass": calls[name],
            "us_per_call_median": round(statistics.median(v) * 1e6, 1),
            "us_per_call_passes": [round(x * 1e6, 1) for x in v],
        }
        for name, v in per_pass.items()
    }


async def main_cpu(runs: int, repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {"python": sys.version.split()[0], "runs_per_pass": runs}
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = await bench_cpu(
            f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", runs, repeats
        )
    pg_base = os.environ.get("ASM_BENCH_DATABASE_URL") or LOCAL_PG
    try:
        async with pg_database(pg_base) as pg_url:
            result["postgresql"] = await bench_cpu(pg_url, runs, repeats)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        result["postgresql"] = {"skipped": f"PostgreSQL unreachable: {exc}"}
    return result


def _pg_kwargs(url: str) -> dict[str, Any]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "database": u.database,
        "timeout": 5,
    }


@contextlib.asynccontextmanager
async def pg_database(base: str) -> Any:
    """A throwaway database on the server (or ``base`` itself if the role cannot create one)."""
    admin = await asyncpg.connect(**_pg_kwargs(base))
    name = f"asm_bench_{uuid.uuid4().hex[:10]}"
    try:
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.PostgresError:
            yield base
            return
        try:
            yield make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def main(quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        sqlite = await bench_backend(sqlite_url, quick)
    sqlite["targets"] = {
        "ingest_ratio_ge_0.5": sqlite["ingest"]["ratio"] >= 0.5,
        "follow_p99_le_100ms": sqlite["follow"]["delay_ms"]["p99"] <= 100,
    }
    result["sqlite"] = sqlite

    pg_base = os.environ.get("ASM_BENCH_DATABASE_URL") or LOCAL_PG
    try:
        async with pg_database(pg_base) as pg_url:
            pg = await bench_backend(pg_url, quick)
        pg["targets"] = {
            "ingest_ratio_ge_0.5": pg["ingest"]["ratio"] >= 0.5,
            "follow_p50_le_3x_single_insert": pg["follow"]["p50_ratio_to_single_insert"] <= 3,
        }
        result["postgresql"] = pg
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        result["postgresql"] = {
            "skipped": f"PostgreSQL unreachable at {make_url(pg_base).render_as_string()}: {exc}"
            " (set ASM_BENCH_DATABASE_URL)"
        }
    result["elapsed_s"] = round(time.perf_counter() - started, 2)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument(
        "--cpu", action="store_true", help="CPU per call of the store's hot methods instead"
    )
    parser.add_argument("--cpu-runs", type=int, default=700, help="simulated runs per pass")
    parser.add_argument("--cpu-repeats", type=int, default=3, help="passes (median reported)")
    args = parser.parse_args()
    if args.cpu:
        print(json.dumps(asyncio.run(main_cpu(args.cpu_runs, args.cpu_repeats)), indent=2))
    else:
        print(json.dumps(asyncio.run(main(args.quick)), indent=2))
