"""Continuity read benchmark: what reading the conversation costs at turn 2 and at turn N.

A run reads its session's earlier conversation from the store before calling its model
(``EventStore.conversation``). For turn 2 and each of ``--at`` turns, this fills a session,
straight through the store, with the runs before it (a user and an assistant message each,
as runs save them), then times the read that turn's run makes (the session's context
policy: by default the newest whole runs within 200 messages and 400,000 characters),
``--reads`` times per round, reporting medians and spread:

* ``windowed``: the read in a live session: the previous turn's run was just saved (saved
  again before each read, untimed), and the process read the previous turn's context (the
  store keeps it: ``store._context_cache``). Target: turn 1,000 <= 2x turn 2.
* ``windowed_cold``: the same read in a process that has not read this session yet (a
  restarted worker): the window from SQL.
* ``whole_conversation``: the whole-conversation read (``policy=None``) the store once made.

Run: ``.venv/bin/python bench/continuity.py [--at 300 1000] [--database-url postgresql+asyncpg://…]``
(SQLite in a temp dir by default; about half a minute). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agent_session_manager.core.contract import ContextPolicy, LifecycleRecord, Message, RunPatch
from agent_session_manager.store import EventStore, open_store, upgrade


def log(msg: str) -> None:
    print(f"[bench/continuity {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def turn_messages(turn: int) -> list[Message]:
    return [
        Message(role="user", content=f"question {turn}: " + "q" * 80),
        Message(role="assistant", content=f"answer {turn}: " + "a" * 300),
    ]


async def save_turn(store: EventStore, sid: str, turn: int, run_id: str) -> None:
    done = LifecycleRecord(
        event_id=f"{run_id}/done",
        session_id=sid,
        run_id=run_id,
        type="run_completed",
        run_status="completed",
        run_row=RunPatch(turn=turn),
    )
    await store.save_messages(sid, run_id, turn, turn_messages(turn), record=done)


async def fill(store: EventStore, sid: str, turns: int) -> str:
    """``turns`` runs of one user and one assistant message; returns the last run's id."""
    run_id = ""
    for turn in range(1, turns + 1):
        run_id = f"run_{uuid.uuid4().hex}"
        await save_turn(store, sid, turn, run_id)
        if turn % 200 == 0:
            log(f"{sid}: filled {turn}/{turns} turns")
    return run_id


def summary(times: list[float], count: int) -> dict[str, Any]:
    times = sorted(times)
    return {
        "messages": count,
        "median_ms": round(statistics.median(times) * 1000, 3),
        "q1_ms": round(times[len(times) // 4] * 1000, 3),
        "q3_ms": round(times[3 * len(times) // 4] * 1000, 3),
    }


async def timed(
    store: EventStore,
    sid: str,
    last_run: str,
    turn: int,
    policy: ContextPolicy | None,
    n: int,
    how: str,
) -> dict[str, Any]:
    """``n`` reads of turn ``turn``'s context, each preceded (untimed) by what precedes it.

    ``warm``: the previous turn's run saved again (as it is saved when it ends), so the read
    finds what a run's read finds in a live session: the snapshot of the last read, and one
    run changed since. ``cold``: the process's snapshots dropped first (a worker restart, a
    session read for the first time by this worker). ``whole``: the whole conversation.
    """
    times = []
    count = 0
    for _ in range(n):
        if how == "warm":
            await save_turn(store, sid, turn - 1, last_run)
        elif how == "cold":
            store._contexts.forget()  # bench only: what a fresh worker process starts with
        t0 = time.perf_counter()
        convo = await store.conversation(sid, before_turn=turn, policy=policy)
        times.append(time.perf_counter() - t0)
        count = len(convo)
    return summary(times, count)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="asm-bench-continuity-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'asm.db'}"
    await upgrade(url)
    store = await open_store(url)
    try:
        at = sorted({2, *args.at})
        # One session per measured turn, holding the turns before it.
        sids: dict[int, tuple[str, str]] = {}
        t = time.perf_counter()
        for turn in at:
            sid = f"bench-{uuid.uuid4().hex[:12]}"
            sids[turn] = (sid, await fill(store, sid, turn - 1))
        log(f"filled in {time.perf_counter() - t:.1f}s")
        policy = ContextPolicy()
        out: dict[str, Any] = {
            "turns": at,
            "reads_each": args.reads,
            "policy": policy.model_dump(),
            "backend": store.backend,
        }
        kinds = {"warm": policy, "cold": policy, "whole": None}
        # Interleaved, so load from elsewhere on the machine hits every turn alike.
        got: dict[str, dict[int, list[dict[str, Any]]]] = {k: {n: [] for n in at} for k in kinds}
        for _ in range(args.rounds):
            for turn in at:
                for how, pol in kinds.items():
                    got[how][turn].append(
                        await timed(store, *sids[turn], turn, pol, args.reads, how)
                    )

        def med(rs: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                **rs[-1],
                "median_ms": round(statistics.median(r["median_ms"] for r in rs), 3),
                "round_medians_ms": [r["median_ms"] for r in rs],
            }

        names = {"warm": "windowed", "cold": "windowed_cold", "whole": "whole_conversation"}
        for how, name in names.items():
            out[name] = {f"turn_{k}": med(v) for k, v in got[how].items()}
        top = max(at)

        def ratio(name: str) -> float:
            rows = out[name]
            return round(rows[f"turn_{top}"]["median_ms"] / rows["turn_2"]["median_ms"], 3)

        out["ratio_windowed_turn_max_over_turn_2"] = {
            "turn": top,
            "value": ratio("windowed"),
            "target": "<= 2",
        }
        out["ratio_windowed_cold_turn_max_over_turn_2"] = ratio("windowed_cold")
        out["ratio_whole_turn_max_over_turn_2"] = ratio("whole_conversation")
        out["loadavg"] = os.getloadavg()
        return out
    finally:
        await store.close()
        tmp.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--at", type=int, nargs="*", default=[300, 1000], help="turns to read at")
    p.add_argument("--reads", type=int, default=20, help="reads per measurement (20)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument("--database-url", default=None)
    a = p.parse_args()
    if any(x < 2 for x in a.at) or a.reads < 1 or a.rounds < 1:
        p.error("--at turns must be >= 2, --reads and --rounds >= 1")
    print(json.dumps(asyncio.run(main(a)), indent=2))
