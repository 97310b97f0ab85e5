"""Large content benchmark: history bytes per run for a 10 MB prompt and a 10 MB reply.

Prompts, system prompts and replies over 4 KiB travel by reference (``core.content``); this
prints what that leaves in Temporal: the session's and the run's history size as the server
counts it (``history_size_bytes``, the figure its 50 MB limit is of), the largest payload in
either, and the wall time of the run, for

* ``prompt_10mb``: a 10 MB prompt (and a 1 MB system prompt) through ``SessionClient``;
* ``reply_10mb``: a short prompt whose (mock) reply is 10 MB.

Backends: SQLite in a temp dir; PostgreSQL too when ``ASM_TEST_DATABASE_URL`` names a server
(a throwaway database is created and dropped). One embedded Temporal dev server.

Run: ``.venv/bin/python bench/large_content.py`` (well under a minute). Prints one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs published
from google.protobuf.message import Message
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowHandle

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    RunResult,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve

TEN_MB = 10_000_000
PG_ENV = "ASM_TEST_DATABASE_URL"


async def _history(handle: WorkflowHandle[Any, Any]) -> dict[str, int]:
    desc = await handle.describe()
    info = desc.raw_description.workflow_execution_info
    history = await handle.fetch_history()
    largest = 0
    stack: list[Message] = list(history.events)
    while stack:
        message = stack.pop()
        if message.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
            largest = max(largest, len(getattr(message, "data", b"")))
            continue
        for field, value in message.ListFields():
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                stack.extend(v for v in value.values() if isinstance(v, Message))
            elif isinstance(value, Message):
                stack.append(value)
            else:
                stack.extend(value)
    return {
        "history_bytes": int(info.history_size_bytes),
        "events": int(info.history_length),
        "largest_payload_bytes": largest,
    }


async def _case(
    client: SessionClient, name: str, prompt: str, mock: MockScript, system: str | None
) -> dict[str, Any]:
    sid = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    await client.start_session(agent_id="bench", session_id=sid, system_prompt=system, mock=mock)
    started = time.perf_counter()
    result: RunResult = await client.run(sid, prompt)
    elapsed = time.perf_counter() - started
    await client.complete_session(sid)
    assert result.output_ref is None or len(result.output) == result.output_ref.size
    session = await _history(client.temporal.get_workflow_handle(session_workflow_id(sid)))
    run = await _history(client.temporal.get_workflow_handle(run_workflow_id(result.run_id)))
    return {
        "prompt_bytes": len(prompt.encode()),
        "reply_bytes": len(result.output.encode()),
        "run_s": round(elapsed, 3),
        "session": session,
        "run": run,
    }


async def _backend(temporal: Client, url: str) -> dict[str, Any]:
    await upgrade(url)
    store = await open_store(url)
    queue = f"bench-content-{uuid.uuid4().hex[:8]}"
    client = SessionClient(temporal, store, task_queue=queue)
    ok = MockScript(steps=[MockText(text="ok")])
    big = MockScript(steps=[MockText(text="abcdefghij", repeat=TEN_MB // 10, chunk_size=1 << 20)])
    try:
        async with serve(temporal, store, task_queue=queue, providers=discover(), secrets={}):
            return {
                "prompt_10mb": await _case(
                    client, "prompt", "0123456789" * (TEN_MB // 10), ok, "terse. " * 150_000
                ),
                "reply_10mb": await _case(client, "reply", "write a lot", big, None),
            }
    finally:
        await store.close()


async def _pg_database(base: str) -> tuple[str, str]:
    url = make_url(base)
    name = f"asm_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    target = url.set(drivername="postgresql+asyncpg", database=name)
    return target.render_as_string(hide_password=False), name


async def _drop(base: str, name: str) -> None:
    url = make_url(base)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password,
        database=url.database,
    )  # fmt: skip
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    env = await start_dev_server(home=None, ui=False)
    report: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report["sqlite"] = await _backend(env.client, f"sqlite+aiosqlite:///{tmp}/asm.db")
        base = os.environ.get(PG_ENV)
        if base:
            url, name = await _pg_database(base)
            try:
                report["postgresql"] = await _backend(env.client, url)
            finally:
                await _drop(base, name)
        else:
            report["postgresql"] = f"skipped: set {PG_ENV} to include PostgreSQL"
    finally:
        await env.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
