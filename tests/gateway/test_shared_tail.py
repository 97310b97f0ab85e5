"""The gateway's shared tail: many streams following many sessions at once, fed by one reader
per process, each stream getting every event exactly once and in seq order — streams that
start at random cursors while events are being written, streams filtered to a run, streams
that drop and resume with ``Last-Event-ID``, and a stream whose backlog overflows.

The writer is a second store on the same database (as the worker is), so the gateway learns
of events only through the store's wake-ups: SQLite polling, PostgreSQL LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from temporalio.client import Client

from agent_session_manager.client import SessionClient
from agent_session_manager.core.events import Event, EventDraft, EventType
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.gateway import GatewaySettings, tail
from agent_session_manager.store import EventStore, open_store, upgrade
from tests.gateway.conftest import serving
from tests.gateway.sse import messages
from tests.postgres import SKIP_REASON, PgServer, pg_base_url

SESSIONS = 24
EVENTS = 60
RUNS = ("run_a", "run_b")


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'asm.db'}"
        await upgrade(url)
        yield url
        return
    base = pg_base_url()
    if base is None:
        pytest.skip(SKIP_REASON)
    server = PgServer(base)
    try:
        url = await server.create()
        await upgrade(url)
        yield url
    finally:
        await server.drop_all()


def draft(sid: str, i: int) -> EventDraft:
    return EventDraft(
        id=f"{sid}:{i}",
        session_id=sid,
        run_id=RUNS[i % 2],
        attempt=1,
        type=EventType.MESSAGE_STREAMED,
        data={"text": f"{sid} {i} résumé 🙂", "index": 0},
    )


async def write(writer: EventStore, sids: list[str], rng: random.Random) -> None:
    """Every session's events, interleaved, in small batches of mixed sessions."""
    pending = {sid: 0 for sid in sids}
    while pending:
        batch: list[EventDraft] = []
        for sid in rng.sample(list(pending), k=min(len(pending), 6)):
            n = rng.randint(1, 4)
            batch += [draft(sid, i) for i in range(pending[sid], min(EVENTS, pending[sid] + n))]
            pending[sid] += n
            if pending[sid] >= EVENTS:
                del pending[sid]
        await writer.append(batch)
        await asyncio.sleep(rng.uniform(0, 0.01))


async def follow(
    http: httpx.AsyncClient,
    key: str,
    sid: str,
    after: int,
    run_id: str | None,
    drop_after: int | None,
) -> list[dict[str, Any]]:
    """Events of ``sid`` after ``after`` until the last one, reconnecting with Last-Event-ID
    after ``drop_after`` messages (once)."""
    got: list[dict[str, Any]] = []
    last = after
    params: dict[str, Any] = {"after": after}
    if run_id is not None:
        params["run_id"] = run_id
    headers = {"Authorization": f"Bearer {key}"}
    while True:
        async with http.stream(
            "GET", f"/v1/sessions/{sid}/events", params=params, headers=headers
        ) as r:
            assert r.status_code == 200, await r.aread()
            async for m in messages(r.aiter_lines()):
                assert m.event == "message", m
                event = m.json()
                assert m.id == str(event["seq"])
                got.append(event)
                last = event["seq"]
                if last >= EVENTS or (run_id is not None and last >= EVENTS - 1):
                    return got
                if drop_after is not None and len(got) >= drop_after:
                    break
        drop_after = None
        headers["Last-Event-ID"] = str(last)


@pytest.mark.parametrize("backlog", [None, 0], ids=["shared", "always-lagging"])
async def test_many_followers_of_many_sessions_get_every_event_once_in_order(
    db_url: str, backlog: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backlog is not None:
        # Every batch overflows: each stream is told it lagged and re-reads from its cursor
        # (what a slow client's stream does).
        monkeypatch.setattr(tail, "_BACKLOG", backlog)
    rng = random.Random(19)
    store = await open_store(db_url)
    writer = await open_store(db_url)
    temporal = await Client.connect("127.0.0.1:1", lazy=True, data_converter=data_converter)
    try:
        _, key = await store.create_api_key("tenant-a", "test")
        sids = [f"tail_{i:03d}" for i in range(SESSIONS)]
        for sid in sids:
            await store.record_session_tenant(sid, "tenant-a")
        await writer.append([draft(sid, 0) for sid in sids[::2]])  # some already started
        settings = GatewaySettings(
            rate_per_second=10_000,
            rate_burst=10_000,
            keepalive_seconds=1.0,
            max_streams_per_key=1000,
        )
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with (
            serving(SessionClient(temporal, store), store, settings) as (url, _server),
            httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http,
        ):
            plans: list[tuple[str, int, str | None, int | None]] = []
            for sid in sids:
                plans += [
                    (sid, 0, None, None),
                    (sid, 0, None, rng.randint(1, EVENTS - 2)),  # drops once and resumes
                    (sid, 0, rng.choice(RUNS), None),  # one run's events only
                ]
            followers = [
                asyncio.create_task(follow(http, key, sid, after, run, drop))
                for sid, after, run, drop in plans
            ]
            writing = asyncio.create_task(write(writer, sids, rng))
            # Late joiners at random cursors while events are being written.
            await asyncio.sleep(0.05)
            late = []
            for sid in sids:
                after = min(await store.last_seq(sid), rng.randint(0, EVENTS - 1))
                late.append((sid, after))
                followers.append(asyncio.create_task(follow(http, key, sid, after, None, None)))
            await writing
            async with asyncio.timeout(120):  # a hang guard, not a timing assertion
                results = await asyncio.gather(*followers)
        truth: dict[str, list[Event]] = {sid: await store.events(sid) for sid in sids}
        for (sid, after, run, _drop), got in zip(
            plans + [(s, a, None, None) for s, a in late], results, strict=True
        ):
            want = [
                e.model_dump(mode="json")
                for e in truth[sid]
                if e.seq > after and (run is None or e.run_id == run)
            ]
            assert [e["seq"] for e in got] == [e["seq"] for e in want], (sid, after, run)
            assert got == want
        assert all(len(truth[sid]) == EVENTS for sid in sids)
        # Every stream left: the shared reader holds no session any more.
        assert tail.shared_tail(store).sessions == 0
    finally:
        await writer.close()
        await store.close()
