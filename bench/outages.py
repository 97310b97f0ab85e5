"""Outage benchmark: how soon a waiting caller hears of an outage, and how soon it recovers.

Two scenarios, each a real outage made by cutting a TCP proxy (tests/fakes/tcp_proxy.py)
between the client and one component while the worker keeps its direct connection, so the
run goes on and ends during the outage:

1. ``temporal``: the client's Temporal connection is cut for ``--seconds`` while it is in
   ``wait_run`` (and ``stream_text``). The client uses the SDK's default retry settings, as a
   real application would: the SDK itself retries each call for ~10 s before the client layer
   hears of the outage. ``temporal_cli``: the same with the CLI's connection settings
   (``cli.runtime.CLI_SDK_RETRIES``: the SDK gives up after ~3 s).
2. ``store``: the client's PostgreSQL connection is cut for ``--seconds`` while it follows the
   run's events (``stream_events``) and waits for it. Needs ``--database-url`` or
   ``ASM_TEST_DATABASE_URL`` (a throwaway database is created and dropped); skipped otherwise.

For each: ``first_report_s`` (cut → first progress report), ``recovery_s`` (restore → the
waiting call returned), ``reports``, and whether the text came through exact with ``seq``
gap-free. Prints one JSON document on stdout; progress on stderr.

Run: ``.venv/bin/python bench/outages.py [--seconds 10]`` (about 45 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.activities.providers import discover
from agent_session_manager.cli.app import sdk_logs_to_stderr
from agent_session_manager.cli.runtime import CLI_SDK_RETRIES
from agent_session_manager.client.outages import Outage, Patience
from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core.contract import MockScript, MockText, SessionSpec
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve
from tests.fakes.tcp_proxy import TcpProxy
from tests.postgres import PgServer

TEXT = "still here " * 10
#: ~2 s of streaming, so the run ends well inside the outage.
SCRIPT = MockScript(steps=[MockText(text=TEXT, chunk_size=5, delay_ms=90)])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Timeline:
    """Progress reports with the time they were made."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, Outage]] = []

    def __call__(self, outage: Outage) -> None:
        self.reports.append((time.monotonic(), outage))
        log(f"  progress: {outage}")


def patience(timeline: Timeline) -> Patience:
    return Patience(seconds=300, on_progress=timeline)


async def collect_text(client: SessionClient, sid: str, run_id: str) -> str:
    text = ""
    async for piece in client.stream_text(sid, run_id):
        if isinstance(piece, Reset):
            text = ""
        elif isinstance(piece, TextDelta):
            text += piece.text
    return text


def gap_free(seqs: list[int]) -> bool:
    return seqs == list(range(1, len(seqs) + 1))


def summary(
    cut_at: float, restored_at: float, returned_at: float, timeline: Timeline
) -> dict[str, Any]:
    first = timeline.reports[0][0] - cut_at if timeline.reports else None
    return {
        "first_report_s": None if first is None else round(first, 2),
        "recovery_s": round(returned_at - restored_at, 2),
        "reports": len(timeline.reports),
        "components": sorted({o.component for _, o in timeline.reports}),
    }


async def temporal_outage(
    env: WorkflowEnvironment, store: EventStore, seconds: float, retries: RetryConfig | None
) -> dict[str, Any]:
    task_queue = f"bench-outage-{uuid.uuid4().hex[:8]}"
    direct = SessionClient(env.client, store, task_queue=task_queue)
    timeline = Timeline()
    async with (
        TcpProxy.to(env.client.service_client.config.target_host) as proxy,
        serve(env.client, store, task_queue=task_queue, providers=discover(), secrets={}),
    ):
        proxied = SessionClient(
            await Client.connect(
                proxy.address, data_converter=data_converter, retry_config=retries
            ),
            store,
            task_queue=task_queue,
            patience=patience(timeline),
        )
        sid = (await direct.start_session(SessionSpec(agent_id="bench", mock=SCRIPT))).session_id
        ref = await direct.submit_run(sid, "go")
        waiting = asyncio.create_task(proxied.wait_run(ref.run_id, sid))
        streaming = asyncio.create_task(collect_text(proxied, sid, ref.run_id))
        await asyncio.sleep(0.2)  # wait_run is in its long poll when the line goes down
        log(f"temporal: cutting the client's connection for {seconds} s")
        await proxy.cut()
        cut_at = time.monotonic()
        await asyncio.sleep(seconds)
        await proxy.restore()
        restored_at = time.monotonic()
        result = await waiting
        returned_at = time.monotonic()
        text = await streaming
    seqs = [e.seq for e in await store.events(sid, limit=10_000)]
    return {
        **summary(cut_at, restored_at, returned_at, timeline),
        "status": result.status.value,
        "exact_text": text == result.output == TEXT,
        "seq_gap_free": gap_free(seqs),
    }


async def store_outage(temporal: Client, database_url: str, seconds: float) -> dict[str, Any]:
    task_queue = f"bench-outage-{uuid.uuid4().hex[:8]}"
    parsed = make_url(database_url)
    timeline = Timeline()
    async with TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
        worker_store = await open_store(database_url)
        client_store = await open_store(
            parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        )
        try:
            client = SessionClient(
                temporal, client_store, task_queue=task_queue, patience=patience(timeline)
            )
            async with serve(
                temporal, worker_store, task_queue=task_queue, providers=discover(), secrets={}
            ):
                sid = (
                    await client.start_session(SessionSpec(agent_id="bench", mock=SCRIPT))
                ).session_id
                ref = await client.submit_run(sid, "go")
                streaming = asyncio.create_task(collect_text(client, sid, ref.run_id))
                await asyncio.sleep(0.5)  # the follower is mid-stream
                log(f"store: cutting the client's PostgreSQL connection for {seconds} s")
                await proxy.cut()
                cut_at = time.monotonic()
                await asyncio.sleep(seconds)
                await proxy.restore()
                restored_at = time.monotonic()
                text = await streaming
                returned_at = time.monotonic()
                result = await client.wait_run(ref.run_id, sid)
            seqs = [e.seq for e in await worker_store.events(sid, limit=10_000)]
        finally:
            await client_store.close()
            await worker_store.close()
    return {
        **summary(cut_at, restored_at, returned_at, timeline),
        "status": result.status.value,
        "exact_text": text == result.output == TEXT,
        "seq_gap_free": gap_free(seqs),
    }


@asynccontextmanager
async def throwaway_database(base: str | None) -> AsyncIterator[str | None]:
    if not base:
        yield None
        return
    server = PgServer(base)
    url = await server.create()
    try:
        await upgrade(url)
        yield url
    finally:
        await server.drop_all()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"outage_seconds": args.seconds}
    sdk_logs_to_stderr()  # its retry warnings would land in the JSON on stdout
    env = await start_dev_server(home=None, ui=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/asm.db"
            await upgrade(url)
            store = await open_store(url)
            try:
                out["temporal"] = await temporal_outage(env, store, args.seconds, None)
                out["temporal_cli"] = await temporal_outage(
                    env, store, args.seconds, CLI_SDK_RETRIES
                )
            finally:
                await store.close()
        async with throwaway_database(args.database_url) as pg_url:
            if pg_url is None:
                out["store"] = {"skipped": "no --database-url / ASM_TEST_DATABASE_URL"}
            else:
                out["store"] = await store_outage(env.client, pg_url, args.seconds)
    finally:
        await env.shutdown()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each outage")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ASM_TEST_DATABASE_URL"),
        help="PostgreSQL server for the store outage (a throwaway database is made on it)",
    )
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2), flush=True)
    sys.stdout.flush()
    os._exit(0)  # a process that used a Temporal client can abort at exit (sdk-python#300)
