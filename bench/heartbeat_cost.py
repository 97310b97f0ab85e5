"""What one activity heartbeat costs in CPU: in the worker process and in the Temporal server.

Prints ONE JSON document on stdout (progress on stderr). One embedded dev server; a bare
worker whose heartbeat throttle is 5 ms runs an activity that sleeps 4 ms ``--calls`` times,
heartbeating before each sleep or not, alternately ``--rounds`` times each. The CPU the two
processes spend beyond the silent run, divided by the heartbeats, is the cost of one. This is
the number ``activities/heartbeat.py`` weighs cancel latency against.

Run: ``.venv/bin/python bench/heartbeat_cost.py [--calls 1500] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import psutil
from run_bench.machine import load_snapshot
from temporalio import activity, workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from agent_session_manager.worker.dev_server import start_dev_server

THROTTLE = timedelta(milliseconds=5)
SLEEP_S = 0.004


@activity.defn(name="bench_heartbeats")
async def heartbeats(args: list[int]) -> int:
    calls, send = args
    for n in range(calls):
        if send:
            activity.heartbeat(n)
        await asyncio.sleep(SLEEP_S)
    return calls


@workflow.defn(name="BenchHeartbeats")
class BenchHeartbeats:
    @workflow.run
    async def run(self, args: list[int]) -> int:
        return int(
            await workflow.execute_activity(
                heartbeats,
                args,
                start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=30),
            )
        )


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def main(calls: int, rounds: int) -> dict[str, Any]:
    before = load_snapshot()
    env = await start_dev_server(home=None, ui=False)
    port = env.client.service_client.config.target_host.rsplit(":", 1)[1]
    server = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"] and "start-dev" in p.info["cmdline"] and port in p.info["cmdline"]
    )
    worker = psutil.Process(os.getpid())
    task_queue = f"hb-{uuid.uuid4().hex[:6]}"
    spent: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    try:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[BenchHeartbeats],
            activities=[heartbeats],
            max_heartbeat_throttle_interval=THROTTLE,
            default_heartbeat_throttle_interval=THROTTLE,
            # The workflow is this script's own; the sandbox would re-import __main__.
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):
            for r in range(rounds):
                for send in (False, True):
                    w0, s0, t0 = cpu_seconds(worker), cpu_seconds(server), time.perf_counter()
                    await env.client.execute_workflow(
                        BenchHeartbeats.run,
                        [calls, int(send)],
                        id=f"hb-{uuid.uuid4().hex}",
                        task_queue=task_queue,
                    )
                    spent[send].append((cpu_seconds(worker) - w0, cpu_seconds(server) - s0))
                    print(
                        f"round {r + 1} heartbeats={send}: {time.perf_counter() - t0:.1f} s",
                        file=sys.stderr,
                    )
    finally:
        await env.shutdown()

    def per_beat(side: int) -> float:
        extra = statistics.median(x[side] for x in spent[True]) - statistics.median(
            x[side] for x in spent[False]
        )
        return round(extra / calls * 1000, 3)

    worker_ms, server_ms = per_beat(0), per_beat(1)
    return {
        "calls": calls,
        "rounds": rounds,
        "throttle_ms": THROTTLE.total_seconds() * 1000,
        "worker_cpu_ms_per_heartbeat": worker_ms,
        "server_cpu_ms_per_heartbeat": server_ms,
        "cpu_ms_per_heartbeat": round(worker_ms + server_ms, 3),
        "note": "per heartbeat call; Core sends at most one per throttle (5 ms), the calls are "
        "4 ms apart plus the loop's delay, so nearly every call is sent",
        "load_before": before,
        "load_after": load_snapshot(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.calls, args.rounds)), indent=2))
