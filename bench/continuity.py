"""Continuity read benchmark: what reading the conversation costs at turn 2 and at turn N.

A run reads its session's earlier conversation from the store before calling its model
(``EventStore.conversation``). This fills one session, straight through the store, with
``--turns`` runs of a user and an assistant message each (as runs save them), then times
the read each run makes (the session's context policy: by default the newest whole runs
within 200 messages and 400,000 characters, read newest first), at turn 2 and at each of
``--at`` turns, ``--reads`` times each, reporting the median and the spread; and, beside it,
the whole-conversation read (``policy=None``) the store made before. Target: the windowed
read at turn 1,000 <= 2x the read at turn 2.

Run: ``.venv/bin/python bench/continuity.py [--turns 1000] [--database-url postgresql+asyncpg://…]``
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


async def fill(store: EventStore, sid: str, turns: int) -> None:
    for turn in range(1, turns + 1):
        run_id = f"run_{uuid.uuid4().hex}"
        messages = [
            Message(role="user", content=f"question {turn}: " + "q" * 80),
            Message(role="assistant", content=f"answer {turn}: " + "a" * 300),
        ]
        done = LifecycleRecord(
            event_id=f"{run_id}/done",
            session_id=sid,
            run_id=run_id,
            type="run_completed",
            run_status="completed",
            run_row=RunPatch(turn=turn),
        )
        await store.save_messages(sid, run_id, turn, messages, record=done)
        if turn % 200 == 0:
            log(f"filled {turn}/{turns} turns")


async def timed(
    store: EventStore, sid: str, turn: int, policy: ContextPolicy | None, n: int
) -> dict[str, Any]:
    times = []
    count = 0
    for _ in range(n):
        t0 = time.perf_counter()
        convo = await store.conversation(sid, before_turn=turn, policy=policy)
        times.append(time.perf_counter() - t0)
        count = len(convo)
    times.sort()
    return {
        "messages": count,
        "median_ms": round(statistics.median(times) * 1000, 3),
        "q1_ms": round(times[len(times) // 4] * 1000, 3),
        "q3_ms": round(times[3 * len(times) // 4] * 1000, 3),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="asm-bench-continuity-")
    url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp.name) / 'asm.db'}"
    await upgrade(url)
    store = await open_store(url)
    try:
        sid = f"bench-{uuid.uuid4().hex[:12]}"
        t = time.perf_counter()
        await fill(store, sid, args.turns)
        log(f"filled in {time.perf_counter() - t:.1f}s")
        policy = ContextPolicy()
        out: dict[str, Any] = {
            "turns": args.turns,
            "reads_each": args.reads,
            "policy": policy.model_dump(),
            "backend": store.backend,
        }
        at = sorted({2, *args.at})
        # Interleaved, so load from elsewhere on the machine hits every turn alike.
        windowed: dict[int, list[dict[str, Any]]] = {k: [] for k in at}
        whole: dict[int, list[dict[str, Any]]] = {k: [] for k in at}
        for _ in range(args.rounds):
            for turn in at:
                windowed[turn].append(await timed(store, sid, turn, policy, args.reads))
                whole[turn].append(await timed(store, sid, turn, None, args.reads))

        def med(rs: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                **rs[-1],
                "median_ms": round(statistics.median(r["median_ms"] for r in rs), 3),
                "round_medians_ms": [r["median_ms"] for r in rs],
            }

        out["windowed"] = {f"turn_{k}": med(v) for k, v in windowed.items()}
        out["whole_conversation"] = {f"turn_{k}": med(v) for k, v in whole.items()}
        top = max(at)
        base = out["windowed"]["turn_2"]["median_ms"]
        out["ratio_windowed_turn_max_over_turn_2"] = {
            "turn": top,
            "value": round(out["windowed"][f"turn_{top}"]["median_ms"] / base, 3),
            "target": "<= 2",
        }
        out["ratio_whole_turn_max_over_turn_2"] = round(
            out["whole_conversation"][f"turn_{top}"]["median_ms"]
            / out["whole_conversation"]["turn_2"]["median_ms"],
            3,
        )
        out["loadavg"] = os.getloadavg()
        return out
    finally:
        await store.close()
        tmp.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--turns", type=int, default=1000, help="runs in the session (1000)")
    p.add_argument("--at", type=int, nargs="*", default=[300, 1000], help="turns to read at")
    p.add_argument("--reads", type=int, default=20, help="reads per measurement (20)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    p.add_argument("--database-url", default=None)
    a = p.parse_args()
    a.at = [x for x in a.at if 2 <= x <= a.turns + 1]
    print(json.dumps(asyncio.run(main(a)), indent=2))
