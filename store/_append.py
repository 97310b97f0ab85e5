"""Appending events: gap-free per-session ``seq`` allocation, idempotent by event id.

Sequence allocation
    Each session has a counter row (``asm_event_counters``), created by its first append. An
    append upserts ``last_seq = last_seq + <new events>`` and inserts its events in the same
    transaction, so writers of one session serialize on that row and commit in ``seq`` order:
    no gaps, no duplicates, no lock errors.

    * PostgreSQL: one statement does it all (skip existing ids, bump the counter, insert, NOTIFY)
      and runs in autocommit mode — one round trip per batch. A concurrent writer committing
      the same ids first makes it fail on ``uq_asm_events_id``; it is re-run and skips them.
    * SQLite: ``BEGIN IMMEDIATE`` (the whole database is write-locked up front), one
      ``INSERT … SELECT`` over ``json_each`` numbering the new rows from the counter, then the
      counter bump. ``database is locked`` from another process is retried (see
      ``store._database``). Requires SQLite >= 3.35 (RETURNING, JSON functions).

    Either way a batch is all-or-nothing, and a writer cancelled or disconnected mid-batch
    leaves no gap: its counter bump rolls back with its rows.

Idempotency
    An event whose ``id`` exists is skipped (within a batch, the first occurrence wins), so a
    retried activity or a replayed local activity writes nothing twice.

The statements of the hot paths are built once and executed with their parameters: building a
Core statement (``insert().values()``, ``on_conflict_do_update()`` with its ``excluded``
proxies, ``select().where()``) and generating its compile-cache key cost more CPU than running
it. A prebuilt statement memoizes its cache key, so each call only looks the compiled form up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.errors import StateError
from agent_session_manager.core.events import Event, EventDraft
from agent_session_manager.store._engine import Backend, json_serializer, pg_json_serializer
from agent_session_manager.store._hub import CHANNEL
from agent_session_manager.store._schema import EVENTS, Timestamp

#: Variables per ``IN (…)`` on SQLite (the compiled-in limit is 32766 on 3.32+; stay modest).
_SQLITE_IN_CHUNK = 500

# One statement per batch and session (see the module docstring). Parameters are passed as a
# single JSON array, so the statement text is the same for every batch size (one prepared
# statement, one plan). ``f``: ids that exist in *another* session — if any, nothing is written
# and they come back with seq 0 (``session_mismatch``). Existing ids are probed one by one with
# a scalar subquery on the unique ``id`` index: written as a join or ``NOT EXISTS``, the planner
# (with the stale statistics of a growing table) picks sequential scans and hash joins, and an
# append gets slower with every event already stored.
# ``x`` is referenced so the NOTIFY runs exactly once per statement.
_PG_APPEND = sa.text(
    """
WITH d AS (
    SELECT t.id, t.run_id, t.attempt, t.type, t.data, t.provider, o.ord,
           (SELECT e.session_id FROM asm_events e WHERE e.id = t.id) AS owner
    FROM jsonb_array_elements(CAST(:batch AS jsonb)) WITH ORDINALITY AS o(e, ord)
    CROSS JOIN LATERAL jsonb_to_record(o.e)
        AS t(id text, run_id text, attempt int, type text, data jsonb, provider text)
), f AS (
    SELECT d.id, d.owner FROM d WHERE d.owner <> CAST(:sid AS varchar)
), n AS (
    SELECT d.*, row_number() OVER (ORDER BY d.ord) AS rn
    FROM d
    WHERE d.owner IS NULL AND NOT EXISTS (SELECT 1 FROM f)
), k AS (
    SELECT count(*)::int AS k FROM n
), c AS (
    INSERT INTO asm_event_counters AS c (session_id, last_seq)
    SELECT CAST(:sid AS varchar), k.k FROM k
    ON CONFLICT (session_id) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
    RETURNING c.last_seq
), i AS (
    INSERT INTO asm_events (session_id, seq, id, run_id, attempt, type, data, provider, created_at)
    SELECT CAST(:sid AS varchar), c.last_seq - k.k + n.rn, n.id, n.run_id, n.attempt, n.type,
           n.data, n.provider, CAST(:now AS timestamptz)
    FROM n, c, k
    ORDER BY n.rn
    RETURNING id, seq
), x AS (
    SELECT pg_notify(:channel, c.last_seq::text || ':' || CAST(:sid AS varchar)) AS z
    FROM c, k WHERE k.k > 0
)
SELECT i.id, i.seq, NULL AS owner FROM i LEFT JOIN x ON true
UNION ALL
SELECT f.id, 0, f.owner FROM f
"""
).bindparams(sa.bindparam("now", type_=Timestamp))


# SQLite: the same idea in two statements (no data-modifying CTEs), inside BEGIN IMMEDIATE so
# the counter read cannot race. Rows arrive as one JSON array, parsed by SQLite's json_each:
# one thread hop instead of binding 9 parameters per row in Python. Nothing is inserted when an
# id exists in another session (the caller then finds out which, on that rare path).
_SQLITE_APPEND = sa.text(
    """
INSERT INTO asm_events (session_id, seq, id, run_id, attempt, type, data, provider, created_at)
SELECT :sid,
       COALESCE((SELECT last_seq FROM asm_event_counters WHERE session_id = :sid), 0)
           + row_number() OVER (ORDER BY j.key),
       json_extract(j.value, '$.id'), json_extract(j.value, '$.run_id'),
       json_extract(j.value, '$.attempt'), json_extract(j.value, '$.type'),
       json_extract(j.value, '$.data'), json_extract(j.value, '$.provider'), :now
FROM json_each(:batch) AS j
WHERE NOT EXISTS (SELECT 1 FROM asm_events e WHERE e.id = json_extract(j.value, '$.id'))
  AND NOT EXISTS (
      SELECT 1 FROM json_each(:batch) AS j2
      JOIN asm_events e2 ON e2.id = json_extract(j2.value, '$.id')
      WHERE e2.session_id <> :sid
  )
ORDER BY j.key
RETURNING id, seq
"""
).bindparams(sa.bindparam("now", type_=Timestamp))

# The second statement of a SQLite append: bump the counter by the events just numbered.
_SQLITE_BUMP_COUNTER = sa.text(
    """
INSERT INTO asm_event_counters (session_id, last_seq) VALUES (:sid, :n)
ON CONFLICT (session_id) DO UPDATE SET last_seq = asm_event_counters.last_seq + excluded.last_seq
"""
)

#: Which session each of ``:ids`` belongs to (the rare "some ids already exist" path).
_OWNERS = sa.select(EVENTS.c.id, EVENTS.c.session_id).where(
    EVENTS.c.id.in_(sa.bindparam("ids", expanding=True))
)


def _built(draft: EventDraft, seq: int, now: datetime) -> Event:
    return Event(
        id=draft.id,
        session_id=draft.session_id,
        run_id=draft.run_id,
        attempt=draft.attempt,
        type=draft.type,
        data=draft.data,
        provider=draft.provider,
        seq=seq,
        created_at=now,
    )


def _batch_json(group: Sequence[EventDraft], serialize: Callable[[Any], str]) -> str:
    """The drafts as one JSON array: the single parameter of the append statements."""
    return serialize(
        [
            {
                "id": d.id,
                "run_id": d.run_id,
                "attempt": d.attempt,
                "type": d.type.value,
                "data": d.data,
                "provider": d.provider,
            }
            for d in group
        ]
    )


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def dedupe(drafts: Iterable[EventDraft]) -> list[EventDraft]:
    """The drafts without repeated ids (the first occurrence wins)."""
    seen: set[str] = set()
    out: list[EventDraft] = []
    for d in drafts:
        if not isinstance(d, EventDraft):
            raise TypeError(f"append() takes EventDraft objects, got {type(d).__name__}")
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out


def group_by_session(drafts: Sequence[EventDraft]) -> dict[str, list[EventDraft]]:
    """The drafts per session, each list in draft order."""
    groups: dict[str, list[EventDraft]] = {}
    for d in drafts:
        groups.setdefault(d.session_id, []).append(d)
    return groups


def raise_foreign(existing: dict[str, str], sid: str) -> None:
    """``session_mismatch`` if one of ``existing`` (id -> session) is not in session ``sid``."""
    foreign = {i: s for i, s in existing.items() if s != sid}
    if foreign:
        event_id, other = next(iter(foreign.items()))
        raise StateError(
            "session_mismatch",
            f"event id {event_id!r} already exists in session {other!r} (appending to {sid!r})",
            details={"event_ids": sorted(foreign), "session_id": other},
        )


async def owners(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, str]:
    """The session of each of ``ids`` that exists."""
    found: dict[str, str] = {}
    for chunk in _chunks(ids, _SQLITE_IN_CHUNK):
        rows = await conn.execute(_OWNERS, {"ids": list(chunk)})
        found.update((r.id, r.session_id) for r in rows)
    return found


async def append_batch(
    conn: AsyncConnection, backend: Backend, batch: Sequence[EventDraft], now: datetime
) -> list[Event]:
    """Append deduplicated drafts of any sessions; the events newly written, in draft order."""
    groups = group_by_session(batch)
    by_id: dict[str, Event] = {}
    # Sorted: two multi-session transactions lock counters in the same order (no deadlock).
    for sid in sorted(groups):
        for ev in await append_group(conn, backend, sid, groups[sid], now):
            by_id[ev.id] = ev
    return [by_id[d.id] for d in batch if d.id in by_id]


async def append_group(
    conn: AsyncConnection, backend: Backend, sid: str, group: Sequence[EventDraft], now: datetime
) -> list[Event]:
    """Append deduplicated drafts of session ``sid``; the events newly written."""
    if backend == "postgresql":
        return await _append_group_pg(conn, sid, group, now)
    return await _append_group_sqlite(conn, sid, group, now)


async def _append_group_pg(
    conn: AsyncConnection, sid: str, group: Sequence[EventDraft], now: datetime
) -> list[Event]:
    payload = _batch_json(group, pg_json_serializer)
    result = await conn.execute(
        _PG_APPEND, {"batch": payload, "sid": sid, "now": now, "channel": CHANNEL}
    )
    rows = result.all()
    # seq 0 marks an id that exists in another session: the statement wrote nothing.
    raise_foreign({r.id: r.owner for r in rows if r.seq == 0}, sid)
    seqs: dict[str, int] = {r.id: r.seq for r in rows}
    return [_built(d, seqs[d.id], now) for d in group if d.id in seqs]


async def _append_group_sqlite(
    conn: AsyncConnection, sid: str, group: Sequence[EventDraft], now: datetime
) -> list[Event]:
    result = await conn.execute(
        _SQLITE_APPEND,
        {"sid": sid, "batch": _batch_json(group, json_serializer), "now": now},
    )
    seqs: dict[str, int] = {r.id: r.seq for r in result}
    if len(seqs) < len(group):  # some ids exist: a retry (fine) or another session's ids
        raise_foreign(await owners(conn, [d.id for d in group if d.id not in seqs]), sid)
    if not seqs:
        return []
    await conn.execute(_SQLITE_BUMP_COUNTER, {"sid": sid, "n": len(seqs)})
    return [_built(d, seqs[d.id], now) for d in group if d.id in seqs]
