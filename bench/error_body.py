"""A provider that answers every call with a 5 MB HTML 503 page echoing the API key.

One anthropic session on an embedded dev server (in memory), a SQLite store in a temp dir and
an in-process worker; the real ``anthropic`` SDK talks to the wire fake
(``tests/fakes/anthropic_server.py``). One run with three fast attempts. Prints one JSON
document:

* ``final_code``: the run's error code (the promise: ``provider_unavailable``);
* ``seconds_per_attempt``: from the fake receiving the attempt's request to the next
  attempt's request (the 0.1 s retry interval included), the last one to the run's end as
  the client sees it: an attempt whose failure never reaches the server shows up here as the
  activity's timeout; ``seconds_to_error_row``: from the request to the attempt's
  ``error_occurred`` row; ``run_seconds`` end to end;
* ``largest_error_occurred_row_bytes``: the biggest ``error_occurred`` row's ``data`` JSON;
* ``largest_history_event_bytes``: the biggest event in the session's and the run's histories;
* ``key_in_history`` / ``key_in_sql``: whether the echoed key is anywhere in either.

Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python bench/error_body.py [--body-mb 5] [--attempts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

from temporalio.api.enums.v1 import EventType as EventType_

from agent_session_manager.activities.providers import discover
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import (
    RetrySettings,
    SessionSpec,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.events import EventType
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.dev_server import start_dev_server
from agent_session_manager.worker.worker import serve
from tests.fakes.anthropic_server import AnthropicFake, HttpError, html_error_page

API_KEY = "sk-ant-api03-BENCH-" + "k" * 40


async def main(body_mb: float, attempts: int, dump: bool) -> int:
    page = html_error_page(int(body_mb * 1024 * 1024), echo=API_KEY)
    env = await start_dev_server(home=None, ui=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "asm.db"
            url = f"sqlite+aiosqlite:///{db}"
            await upgrade(url)
            store = await open_store(url)
            task_queue = f"bench-{uuid.uuid4().hex[:8]}"
            try:
                async with AnthropicFake(api_key=API_KEY) as fake:
                    fake.default = HttpError(503, body=page, content_type="text/html")
                    secrets = {"ANTHROPIC_API_KEY": API_KEY, "ANTHROPIC_BASE_URL": fake.base_url}
                    async with serve(
                        env.client,
                        store,
                        task_queue=task_queue,
                        providers=discover(),
                        secrets=secrets,
                    ):
                        client = SessionClient(env.client, store, task_queue=task_queue)
                        spec = SessionSpec(
                            agent_id="bench-error-body",
                            provider="anthropic",
                            model="claude-sonnet-4-6",
                            retry=RetrySettings(
                                max_attempts=attempts,
                                initial_interval_seconds=0.1,
                                maximum_interval_seconds=0.1,
                            ),
                        )
                        sid = (await client.start_session(spec)).session_id
                        # The fake stamps arrivals with time.monotonic(): map them to wall time.
                        offset = time.time() - time.monotonic()
                        started = time.perf_counter()
                        result = await client.run(sid, "hello")
                        ended = time.time()
                        run_seconds = time.perf_counter() - started
                        arrivals = [r.received_at + offset for r in fake.message_requests]
                        events = await store.events(sid, run_id=result.run_id, limit=10_000)
                        errors = {
                            e.attempt: e for e in events if e.type is EventType.ERROR_OCCURRED
                        }
                        ends = [*arrivals[1:], ended]
                        per_attempt = [round(b - a, 3) for a, b in zip(arrivals, ends, strict=True)]
                        to_row = [
                            round(_epoch(errors[i + 1].created_at) - at, 3)
                            if i + 1 in errors
                            else None
                            for i, at in enumerate(arrivals)
                        ]
                        histories = [
                            await env.client.get_workflow_handle(wf).fetch_history()
                            for wf in (session_workflow_id(sid), run_workflow_id(result.run_id))
                        ]
            finally:
                await store.close()
            largest_row, key_in_sql = _sql(db)
    finally:
        await env.shutdown()
    biggest = max((e for h in histories for e in h.events), key=lambda e: e.ByteSize())
    report = {
        "body_bytes": len(page.encode()),
        "final_status": result.status.value,
        "final_code": (result.error or {}).get("code"),
        "attempts": result.attempts,
        "seconds_per_attempt": per_attempt,
        "seconds_to_error_row": to_row,
        "run_seconds": round(run_seconds, 3),
        "largest_error_occurred_row_bytes": largest_row,
        "largest_history_event_bytes": biggest.ByteSize(),
        "largest_history_event": EventType_.Name(biggest.event_type),
        "key_in_history": any(API_KEY in h.to_json() for h in histories),
        "key_in_sql": key_in_sql,
    }
    print(json.dumps(report, indent=2))
    if dump:
        from google.protobuf.json_format import MessageToJson

        print(MessageToJson(biggest), file=sys.stderr)
    return 0


def _epoch(value: datetime | str) -> float:
    return (datetime.fromisoformat(value) if isinstance(value, str) else value).timestamp()


def _sql(db: Path) -> tuple[int, bool]:
    """The largest ``error_occurred`` row (its data JSON, bytes); whether any row holds the key."""
    con = sqlite3.connect(db)
    try:
        (largest,) = con.execute(
            "SELECT coalesce(max(length(CAST(data AS BLOB))), 0) FROM asm_events WHERE type = ?",
            (EventType.ERROR_OCCURRED.value,),
        ).fetchone()
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        key_in_sql = any(
            API_KEY in repr(row) for t in tables for row in con.execute(f'SELECT * FROM "{t}"')
        )
    finally:
        con.close()
    return int(largest), key_in_sql


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body-mb", type=float, default=5.0)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--dump", action="store_true", help="the largest event, on stderr")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.body_mb, args.attempts, args.dump)))
