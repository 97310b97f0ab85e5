"""The fuzz, longer and standalone: more requests, several seeds, or a replay of a few.

Same generator and invariants as ``tests/chaos/test_fuzz.py`` (tests/chaos/fuzz_inputs.py and
fuzz_run.py), against an embedded dev server (in memory), a SQLite store in a temp dir and an
in-process worker; one fresh task queue per seed. Prints each seed's report (outcome counts,
then every violation with its request) and exits 1 if any seed found one.

Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python bench/fuzz.py [--seeds 13,14] [--requests 3000]
    PYTHONPATH=$PWD .venv/bin/python bench/fuzz.py --seeds 13 --only 8,17,60   # replay a few
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path

from agent_session_manager.activities.providers import discover
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve
from tests.chaos.fuzz_inputs import generate
from tests.chaos.fuzz_run import run_fuzz


async def main(seeds: list[int], count: int, only: set[int] | None, lanes: int) -> int:
    env = await start_dev_server(home=None, ui=False)
    found = 0
    try:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                db = Path(tmp) / "asm.db"
                url = f"sqlite+aiosqlite:///{db}"
                await upgrade(url)
                store = await open_store(url)
                task_queue = f"fuzz-{uuid.uuid4().hex[:8]}"
                requests = generate(seed, count)
                if only is not None:
                    requests = [r for r in requests if r.index in only]
                try:
                    async with serve(
                        env.client, store, task_queue=task_queue, providers=discover(), secrets={}
                    ):
                        report = await run_fuzz(
                            env.client, store, task_queue, db, requests, seed, lanes=lanes
                        )
                finally:
                    await store.close()
                print(report.text(), flush=True)
                found += len(report.violations)
    finally:
        await env.shutdown()
    return 1 if found else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="13", help="comma-separated seeds")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--only", default=None, help="comma-separated request indices")
    parser.add_argument("--lanes", type=int, default=24, help="requests in flight")
    args = parser.parse_args()
    only = {int(i) for i in args.only.split(",")} if args.only else None
    code = asyncio.run(
        main([int(s) for s in args.seeds.split(",")], args.requests, only, args.lanes)
    )
    sys.stdout.flush()
    os._exit(code)  # temporalio/sdk-python#300: leave without the interpreter's teardown
