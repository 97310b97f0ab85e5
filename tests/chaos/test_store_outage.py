"""Store outages delay runs, never fail them: PostgreSQL stopped for 30 s, and SQLite's disk full
for 10 s, in the middle of 10 streaming runs. Every run completes with its exact text, in one
provider attempt (the outage is waited out inside it), and every session's ``seq`` is gap-free.

Half the runs finish streaming while the store is out (their reply is saved when it is back, the
provider is not called again); half stream across the whole outage (their deltas wait in memory).
Numbers (outage length, run durations, storage waits) are printed, not asserted: run with ``-s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from agent_session_manager.activities import store_outage
from agent_session_manager.client.session_client import Reset, SessionClient, TextDelta
from agent_session_manager.core.contract import MockScript, MockText, RetrySettings
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.worker import serve
from tests.chaos.pg_cluster import PgCluster, server_binaries
from tests.chaos.test_crash import until_streaming

#: ~4 s of streaming: done before the store is back.
SHORT_TEXT = "".join(f"s{i:03d} " for i in range(100))
SHORT = MockScript(steps=[MockText(text=SHORT_TEXT, chunk_size=10, delay_ms=80)])
#: Streams on through the whole outage and after it.
LONG_TEXT = "".join(f"L{i:03d} " for i in range(120))
RUNS = 10
#: Well under the shortest outage (10 s), so an attempt that stopped heartbeating (or a sink
#: that took the store's silence for the provider's) while the store is out would time out and
#: show as a second attempt; not 2 s, which a loaded two-core machine's stalls alone can pass.
HEARTBEAT_S = 4
#: Any retry would show as attempts > 1: the assertion is that there is none.
RETRY = RetrySettings(initial_interval_seconds=0.1, maximum_interval_seconds=0.5)


def long_script(seconds: float) -> MockScript:
    chunks = len(LONG_TEXT) // 6
    return MockScript(
        steps=[MockText(text=LONG_TEXT, chunk_size=6, delay_ms=int(seconds * 1000 / chunks))]
    )


async def start_runs(client: SessionClient, long: MockScript) -> list[tuple[str, str, str]]:
    """``RUNS`` sessions with one streaming run each: (session, run, expected text)."""

    async def one(n: int) -> tuple[str, str, str]:
        script, text = (SHORT, SHORT_TEXT) if n % 2 else (long, LONG_TEXT)
        view = await client.start_session(
            agent_id="outage", mock=script, retry=RETRY, heartbeat_timeout_seconds=HEARTBEAT_S
        )
        ref = await client.submit_run(view.session_id, "go")
        return view.session_id, ref.run_id, text

    return list(await asyncio.gather(*(one(n) for n in range(RUNS))))


async def check_run(
    client: SessionClient, store: EventStore, sid: str, rid: str, text: str
) -> tuple[int, float]:
    """The run completed with exactly ``text``, in one attempt, its session gap-free; returns
    (attempts, seconds from run_started to run_completed, as committed)."""
    result = await asyncio.wait_for(client.wait_run(rid, sid), 120)
    assert result.status is RunStatus.COMPLETED, result
    assert result.output == text
    assert result.attempts == 1, result  # the outage never cost a provider attempt
    streamed = ""
    async for piece in client.stream_text(sid, rid):
        if isinstance(piece, Reset):
            streamed = ""
        elif isinstance(piece, TextDelta):
            streamed += piece.text
    assert streamed == text
    for _ in range(300):  # the session accounts the turn just after the run's end is visible
        events = await store.events(sid, limit=10_000)
        if any(e.type is EventType.TURN_COMPLETED and e.run_id == rid for e in events):
            break
        await asyncio.sleep(0.1)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # gap-free
    assert len({e.id for e in events}) == len(events)
    mine = [e for e in events if e.run_id == rid]
    assert {e.attempt for e in mine if e.attempt} == {1}
    assert not [e for e in mine if e.type is EventType.ERROR_OCCURRED]
    deltas = [e.data.get("text", "") for e in mine if e.type is EventType.MESSAGE_STREAMED]
    assert "".join(deltas) == text  # none lost, none doubled
    row = await store.get_run(rid)
    assert row is not None and row.output == text and row.attempts == 1
    # From run_started to run_completed as committed: the wait for the store included.
    (started,) = [e.created_at for e in mine if e.type is EventType.RUN_STARTED]
    (completed,) = [e.created_at for e in mine if e.type is EventType.RUN_COMPLETED]
    return result.attempts, (completed - started).total_seconds()


async def outage_during_runs(
    temporal: Client,
    store: EventStore,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
    *,
    long_seconds: float,
    outage: Callable[[], Awaitable[float]],
) -> None:
    """Start the runs, let them stream, run ``outage`` (returns its length), check every run."""
    client = SessionClient(temporal, store, task_queue=task_queue)
    caplog.set_level(logging.WARNING, logger=store_outage.__name__)
    began = time.monotonic()
    async with serve(temporal, store, task_queue=task_queue, secrets={}):
        runs = await start_runs(client, long_script(long_seconds))
        await until_streaming(store, [(s, r) for s, r, _ in runs])
        down = await outage()
        checked = await asyncio.gather(*(check_run(client, store, *run) for run in runs))
    waits = [r for r in caplog.records if r.getMessage().startswith("event store unavailable")]
    # The outage reached the runs' writers (or this test proves nothing), and was waited out.
    assert waits, "no provider activity met the outage"
    attempts = [a for a, _ in checked]
    durations = sorted(round(d, 1) for _, d in checked)
    print(
        f"\n{RUNS} runs: outage {down:.1f}s, completed {len(checked)}/{RUNS}, "
        f"provider attempts {attempts}, run durations {durations}s, "
        f"storage waits logged {len(waits)}, total {time.monotonic() - began:.1f}s"
    )


PG_BIN = server_binaries()


@pytest.mark.skipif(PG_BIN is None, reason="no PostgreSQL server binaries in /usr/lib/postgresql")
async def test_postgresql_down_for_30s_during_10_streaming_runs_every_run_completes(
    temporal: Client, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert PG_BIN is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root, the PostgreSQL cluster needs runuser to run as another user")
    cluster = PgCluster(PG_BIN)
    try:
        await cluster.create()
        await upgrade(cluster.url)
        store = await open_store(cluster.url)

        async def stop_for_30s() -> float:
            start = time.monotonic()
            await cluster.stop()
            await asyncio.sleep(30)
            await cluster.start()
            return time.monotonic() - start

        try:
            await outage_during_runs(
                temporal, store, task_queue, caplog, long_seconds=40, outage=stop_for_30s
            )
        finally:
            await store.close()
    finally:
        await cluster.destroy()


@contextlib.contextmanager
def tiny_filesystem(where: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of ``megabytes`` mounted at ``where`` (root only); skips when not permitted."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; the bytes written."""
    written = 0
    block = b"\0" * (64 * 1024)
    with path.open("wb", buffering=0) as f:
        with contextlib.suppress(OSError):  # ENOSPC: full, as intended
            while True:
                written += f.write(block)
        with contextlib.suppress(OSError):  # the last few bytes, to the very end
            while True:
                written += f.write(b"\0" * 512)
    return written


async def test_sqlite_disk_full_for_10s_during_10_streaming_runs_every_run_completes(
    temporal: Client, task_queue: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with tiny_filesystem(tmp_path / "tiny", 16) as disk:
        url = f"sqlite+aiosqlite:///{disk / 'asm.db'}"
        await upgrade(url)
        store = await open_store(url)
        filler = disk / "filler"

        async def full_for_10s() -> float:
            start = time.monotonic()
            await asyncio.to_thread(fill, filler)
            await asyncio.sleep(10)
            filler.unlink()
            return time.monotonic() - start

        try:
            await outage_during_runs(
                temporal, store, task_queue, caplog, long_seconds=16, outage=full_for_10s
            )
        finally:
            await store.close()
