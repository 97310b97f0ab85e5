"""The audit log: status changes with who/what caused them, from the store and the history."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.client.audit import AuditEntry, audit_log, parse_since, write_jsonl
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.contract import MockScript, MockText
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.store import EventStore
from agent_session_manager.worker.worker import serve

ALICE = "alice@ops-console"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def alice(env: WorkflowEnvironment) -> Client:
    """A client with a recognisable identity (the default is pid@host)."""
    return await Client.connect(
        env.client.service_client.config.target_host,
        identity=ALICE,
        data_converter=data_converter,
    )


def find(entries: list[AuditEntry], type_: str) -> AuditEntry:
    matches = [e for e in entries if e.type == type_]
    assert matches, f"no {type_} in {[e.type for e in entries]}"
    return matches[0]


async def test_audit_log_records_who_changed_status(
    alice: Client, store: EventStore, task_queue: str, tmp_path: Path
) -> None:
    async with serve(alice, store, task_queue=task_queue, secrets={}):
        client = SessionClient(alice, store, task_queue=task_queue)
        view = await client.start_session(agent_id="audited", provider="mock")
        sid = view.session_id
        await client.pause(sid, reason="maintenance")
        await client.resume(sid, reason="back")
        done = await client.run(sid, "first")
        slow = MockScript(steps=[MockText(text="slow", chunk_size=1, delay_ms=200)] * 20)
        ref = await client.submit_run(sid, "second", mock=slow)
        await asyncio.sleep(0.3)
        await client.cancel_run(sid, ref.run_id, reason="too slow")
        await client.complete_session(sid, reason="finished")

        entries = await client.audit_log(sid)

    # Token deltas are not audit material by default.
    assert not any(e.type == "message_streamed" for e in entries)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)

    created = find(entries, "session_created")
    assert (created.actor, created.identity, created.status_to) == ("start", ALICE, "pending")

    paused = find(entries, "session_paused")
    assert paused.actor == "update:pause" and paused.update == "pause"
    assert paused.identity == ALICE and paused.reason == "maintenance"
    assert (paused.scope, paused.status_from, paused.status_to) == ("session", "active", "paused")

    resumed = find(entries, "session_resumed")
    assert (resumed.actor, resumed.identity) == ("update:resume", ALICE)
    assert (resumed.status_from, resumed.status_to) == ("paused", "active")

    started = [e for e in entries if e.type == "run_started"]
    assert {e.run_id for e in started} == {done.run_id, ref.run_id}
    assert all(e.actor == "update:submit_run" and e.identity == ALICE for e in started)

    finished = find(entries, "run_completed")
    assert (finished.run_id, finished.actor, finished.status_to) == (
        done.run_id,
        "workflow",
        "completed",
    )

    cancelled = find(entries, "run_cancelled")
    assert (cancelled.run_id, cancelled.actor, cancelled.identity) == (
        ref.run_id,
        "update:cancel_run",
        ALICE,
    )

    completed = find(entries, "session_completed")
    assert (completed.actor, completed.identity, completed.reason) == (
        "update:complete",
        ALICE,
        "finished",
    )

    # Exportable as JSON Lines: one object per entry, same content.
    out = io.StringIO()
    assert write_jsonl(entries, out) == len(entries)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["seq"] for r in rows] == [e.seq for e in entries]
    assert rows[[e.type for e in entries].index("session_paused")]["identity"] == ALICE
    assert {"at", "actor", "update", "identity", "status_from", "status_to"} <= set(rows[0])


async def test_audit_log_filters_by_run_type_and_time(
    client: SessionClient, store: EventStore, run_worker: Callable[..., Any]
) -> None:
    async with run_worker():
        view = await client.start_session(agent_id="audited", provider="mock")
        first = await client.run(view.session_id, "one")
        second = await client.run(view.session_id, "two")

    by_run = await audit_log(store, run_id=second.run_id)
    assert by_run and {e.run_id for e in by_run} == {second.run_id}
    assert {"run_started", "run_completed"} <= {e.type for e in by_run}
    assert all(e.identity is None for e in by_run), "no Temporal client: no identities"

    only = await audit_log(store, view.session_id, types=["run_completed"])
    assert [e.run_id for e in only] == [first.run_id, second.run_id]

    streamed = await audit_log(store, view.session_id, types=["message_streamed"])
    assert streamed and all(e.actor == "provider" and e.attempt == 1 for e in streamed)

    cutoff = only[1].at
    later = await audit_log(store, view.session_id, since=cutoff)
    assert later and all(e.at >= cutoff for e in later)
    assert await audit_log(store, view.session_id, since=datetime.now(UTC) + timedelta(1)) == []

    with pytest.raises(AsmError):
        await audit_log(store)
    with pytest.raises(AsmError) as info:
        await audit_log(store, run_id="run_missing")
    assert info.value.code == "run_not_found"


def test_since_accepts_iso_and_relative_times() -> None:
    now = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
    assert parse_since("15m", now) == now - timedelta(minutes=15)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2025-01-30T10:00:00Z") == datetime(2025, 1, 30, 10, tzinfo=UTC)
    assert parse_since("2025-01-30T10:00:00").tzinfo is UTC
    with pytest.raises(AsmError):
        parse_since("yesterday")


async def test_asm_audit_command_exports_json_lines(
    env: WorkflowEnvironment, alice: Client, tmp_path: Path, task_queue: str
) -> None:
    from agent_session_manager.store import open_store, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'agent_session_manager.cli.db'}"
    await upgrade(url)
    store = await open_store(url)
    try:
        async with serve(alice, store, task_queue=task_queue, secrets={}):
            client = SessionClient(alice, store, task_queue=task_queue)
            view = await client.start_session(agent_id="cli-audit", provider="mock")
            await client.run(view.session_id, "hello")
            await client.pause(view.session_id)
    finally:
        await store.close()

    environ = {
        **os.environ,
        "ASM_DATABASE_URL": url,
        "ASM_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
    }
    main = "import sys; from agent_session_manager.cli import main; main(sys.argv[1:])"
    target = tmp_path / "audit.jsonl"
    cmd = [sys.executable, "-c", main, "audit", view.session_id, "--export", str(target)]
    proc = await asyncio.to_thread(
        subprocess.run, cmd, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    paused = next(r for r in rows if r["type"] == "session_paused")
    assert (paused["actor"], paused["identity"]) == ("update:pause", ALICE)
    assert rows[0]["type"] == "session_created"

    cmd = [sys.executable, "-c", main, "audit", view.session_id, "--type", "session_paused"]
    proc = await asyncio.to_thread(
        subprocess.run, cmd, env=environ, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "session_paused" in proc.stdout and "update:pause" in proc.stdout
    assert ALICE in proc.stdout and "session_created" not in proc.stdout
