"""One worker in its own process, ours or the session-shaped bare one, for the CPU phase.

Both sides run the same way: this script, a Temporal client on the harness's dev server, the
harness's store URL, one worker on its own task queue; it prints ``ready`` once polling and
runs until it gets SIGTERM. So the CPU the harness reads from this process (psutil) is the
worker's alone, for either side, in the same process shape.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from agent_session_manager.activities.providers import discover
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import open_store
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve
from run_bench.bare import BenchRun, BenchSession
from run_bench.bare_store import BareStore


async def main(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address, data_converter=data_converter)
    store = await open_store(args.database_url)
    async with contextlib.AsyncExitStack() as stack:
        if args.kind == "ours":
            await stack.enter_async_context(
                serve(
                    client,
                    store,
                    task_queue=args.task_queue,
                    providers=discover(),
                    secrets={},
                    settings=Settings(),
                )
            )
        else:
            worker = Worker(
                client,
                task_queue=args.task_queue,
                workflows=[BenchSession, BenchRun],
                activities=[BareStore(store).run],
            )
            await stack.enter_async_context(worker)
        # Until the harness sends SIGTERM (or SIGINT), and say so. It used to be "until stdin
        # closes", silently: a 10,000-session run then looked like a worker dying on its own at
        # ~1,500 sessions, when it was the harness's cleanup after a failed session start.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        received: list[str] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda s=sig: (received.append(s.name), stop.set()))
        print("ready", flush=True)
        await stop.wait()
        # A worker never ends silently: say why it stops.
        print(
            f"worker_proc {args.kind}: {received[0]} received, stopping",
            file=sys.stderr,
            flush=True,
        )
    await store.close()


if __name__ == "__main__":
    faulthandler.enable()  # a fatal signal (SIGSEGV, SIGABRT) dumps every thread's stack
    faulthandler.register(signal.SIGHUP, chain=True)  # a hang-up says so before it ends us
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker_proc %(message)s")
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["ours", "bare"], required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--task-queue", required=True)
    p.add_argument("--database-url", required=True)
    asyncio.run(main(p.parse_args()))
    sys.stdout.flush()
    import os

    os._exit(0)  # temporalio/sdk-python#300: no abort at interpreter exit
