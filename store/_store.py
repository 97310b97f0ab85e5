"""The event store: append-only events with gap-free per-session ``seq``, read models, follow.

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
      counter bump. ``database is locked`` from another process is retried for
      :data:`SQLITE_LOCK_RETRY_S`. Requires SQLite >= 3.35 (RETURNING, JSON functions).

    Either way a batch is all-or-nothing, and a writer cancelled or disconnected mid-batch
    leaves no gap: its counter bump rolls back with its rows.

Idempotency
    An event whose ``id`` exists is skipped (within a batch, the first occurrence wins), so a
    retried activity or a replayed local activity writes nothing twice. ``record`` and
    ``save_messages`` apply their read-model changes as *sets*, so re-applying them is a no-op.

Text that PostgreSQL cannot store (NUL characters) becomes U+FFFD there; SQLite keeps it.

Cursors
    ``after_seq`` is "the last seq I have": valid values are ``0 .. last_seq(session)``.
    Negative values are always ``invalid_cursor``; values beyond the end are ``invalid_cursor``
    unless ``strict=False`` (a cursor beyond the end was never handed out by this store, so it
    means a wrong session or a reset database, and waiting on it would hang silently).
    An unknown session is not an error unless ``must_exist=True`` (``session_not_found``): a
    follower may legitimately start before the session's first event is written.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg  # no stubs published: ignore_missing_imports in pyproject.toml
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_session_manager.core.contract import LifecycleRecord, Message, RunPatch, SessionPatch
from agent_session_manager.core.errors import AsmError, ResourceError, StateError, ValidationError
from agent_session_manager.core.events import Event, EventDraft, EventType, parse_event_type
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store._engine import (
    Backend,
    asyncpg_connect_kwargs,
    backend_of,
    json_serializer,
    make_engines,
    pg_json_serializer,
    resolve_url,
    scrub_nul,
)
from agent_session_manager.store._errors import DB_ERRORS, is_sqlite_locked, redact, translate
from agent_session_manager.store._hub import CHANNEL, Hub, ListenHub, PollingHub
from agent_session_manager.store._migrate import check_schema as _check_schema
from agent_session_manager.store._rows import RunRow, SessionRow
from agent_session_manager.store._schema import (
    COUNTERS,
    EVENTS,
    MESSAGES,
    RUNS,
    SESSIONS,
    Timestamp,
)

T = TypeVar("T")

#: How long a SQLite write keeps retrying while another process holds the write lock (on top
#: of each attempt's busy_timeout).
SQLITE_LOCK_RETRY_S = 30.0
#: Re-runs of a write that lost a race on an event id or hit a PostgreSQL deadlock /
#: serialization failure. Each re-run sees the winner's commit, so one is normally enough.
WRITE_CONFLICT_RETRIES = 5
#: Variables per ``IN (…)`` on SQLite (the compiled-in limit is 32766 on 3.32+; stay modest).
_SQLITE_IN_CHUNK = 500
#: Largest page ``events()`` returns; bigger limits are clamped (a reader pages with after_seq).
MAX_PAGE = 10_000

_RUN_TERMINAL = tuple(s.value for s in RunStatus if s.is_terminal)
_SESSION_TERMINAL = tuple(s.value for s in SessionStatus if s.is_terminal)
#: Runs whose saved messages do not count in ``conversation()``.
_RUN_EXCLUDED_FROM_CONVERSATION = (
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.TIMEOUT.value,
)

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

# The statements of the hot paths are built once, here or in the cached builders below, and
# executed with their parameters: building a Core statement (``insert().values()``,
# ``on_conflict_do_update()`` with its ``excluded`` proxies, ``select().where()``) and
# generating its compile-cache key cost more CPU than running it. A prebuilt statement
# memoizes its cache key, so each call only looks the compiled form up.

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

_DELETE_MESSAGES = sa.delete(MESSAGES).where(MESSAGES.c.run_id == sa.bindparam("run_id"))
_INSERT_MESSAGES = MESSAGES.insert()

#: ``conversation()``: see its docstring for which runs count.
_CONVERSATION = (
    sa.select(MESSAGES.c.role, MESSAGES.c.content)
    .select_from(MESSAGES.join(RUNS, RUNS.c.run_id == MESSAGES.c.run_id))
    .where(
        MESSAGES.c.session_id == sa.bindparam("session_id"),
        MESSAGES.c.turn < sa.bindparam("before_turn"),
        RUNS.c.rolled_back.is_(False),
        RUNS.c.status.not_in(_RUN_EXCLUDED_FROM_CONVERSATION),
    )
    .order_by(MESSAGES.c.turn, MESSAGES.c.run_id, MESSAGES.c.idx)
)


def _now() -> datetime:
    return datetime.now(UTC)


def _dialect_insert(backend: Backend, table: sa.Table) -> Any:
    return (pg_insert if backend == "postgresql" else sqlite_insert)(table)


@functools.lru_cache(maxsize=256)  # column sets come from validated row keys: few in practice
def _upsert(
    backend: Backend,
    table: sa.Table,
    key: str,
    terminal: tuple[str, ...],
    columns: tuple[str, ...],
    first_wins: tuple[str, ...],
) -> Any:
    """Insert a whole read-model row, or set ``columns`` (and ``updated_at``) of the existing one.

    A status already in ``terminal`` is kept; ``first_wins`` columns keep a value already set.
    Cached per column set: the workflows send a handful of distinct sets, so this is built a
    few times per process, not per call. Executed with the full row as parameters.
    """
    ins = _dialect_insert(backend, table)
    excluded = ins.excluded
    set_: dict[str, Any] = {k: excluded[k] for k in columns}
    for k in first_wins:
        set_[k] = sa.func.coalesce(table.c[k], excluded[k])
    if "status" in columns:
        set_["status"] = sa.case(
            (table.c.status.in_(terminal), table.c.status), else_=excluded.status
        )
    set_["updated_at"] = excluded.updated_at
    return ins.on_conflict_do_update(index_elements=[key], set_=set_)


@functools.cache
def _claim_run(backend: Backend) -> Any:
    """Create the run row unless it exists, lock it, and return its session (one round trip).

    The conflict branch is a no-op update (the session is set to itself): unlike ``DO
    NOTHING`` it locks the existing row and lets ``RETURNING`` report its owner, which
    otherwise takes a second ``SELECT … FOR UPDATE``.
    """
    ins = _dialect_insert(backend, RUNS)
    return ins.on_conflict_do_update(
        index_elements=["run_id"], set_={"session_id": RUNS.c.session_id}
    ).returning(RUNS.c.session_id)


def _invalid_cursor(session_id: str, after_seq: int, last: int | None) -> StateError:
    if after_seq < 0:
        message = f"after_seq must be >= 0, got {after_seq}"
    else:
        message = (
            f"after_seq {after_seq} is beyond the end of session {session_id!r}: "
            f"valid after_seq is 0..{last}"
        )
    return StateError(
        "invalid_cursor",
        message,
        details={"session_id": session_id, "after_seq": after_seq, "min": 0, "max": last},
    )


def _event_from_row(row: sa.Row[Any]) -> Event:
    # Validating constructor on purpose: pydantic-core validates faster than model_construct
    # builds (about 2 vs 3 us per event), and a bad row fails here, not in a consumer.
    return Event(
        id=row.id,
        session_id=row.session_id,
        run_id=row.run_id,
        attempt=row.attempt,
        type=row.type,
        data=row.data,
        provider=row.provider,
        seq=row.seq,
        created_at=row.created_at,
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


def _dedupe(drafts: Iterable[EventDraft]) -> list[EventDraft]:
    seen: set[str] = set()
    out: list[EventDraft] = []
    for d in drafts:
        if not isinstance(d, EventDraft):
            raise TypeError(f"append() takes EventDraft objects, got {type(d).__name__}")
        if d.id not in seen:
            seen.add(d.id)
            out.append(d)
    return out


def _group(drafts: list[EventDraft]) -> dict[str, list[EventDraft]]:
    groups: dict[str, list[EventDraft]] = {}
    for d in drafts:
        groups.setdefault(d.session_id, []).append(d)
    return groups


def _type_values(types: Sequence[str | EventType] | None) -> list[str] | None:
    if types is None:
        return None
    if isinstance(types, str):
        types = [types]
    return [parse_event_type(str(t)).value for t in types]


# --- read-model field normalization ---------------------------------------------------------


def _bad(message: str, **details: Any) -> ValidationError:
    return ValidationError("invalid_input", message, details=details)


def _status(kind: type[SessionStatus] | type[RunStatus], value: Any) -> str:
    try:
        return kind(str(value)).value
    except ValueError:
        allowed = ", ".join(s.value for s in kind)
        raise _bad(f"unknown {kind.__name__} {value!r} (allowed: {allowed})") from None


def _record_draft(rec: LifecycleRecord) -> EventDraft:
    return EventDraft(
        id=rec.event_id,
        session_id=rec.session_id,
        run_id=rec.run_id,
        attempt=0,
        type=parse_event_type(rec.type),
        data=rec.data,
        provider=rec.provider,
    )


def _patch_values(patch: SessionPatch | RunPatch | None) -> dict[str, Any]:
    """The columns a patch sets: its set fields, and ``total_tokens`` with ``usage``."""
    if patch is None:
        return {}
    values = patch.model_dump()
    if "usage" in values:
        values["total_tokens"] = patch.usage.total_tokens
    return values


def _session_values(rec: LifecycleRecord) -> dict[str, Any] | None:
    if rec.session_row is None and rec.session_status is None:
        return None
    values = _patch_values(rec.session_row)
    if rec.session_status is not None:
        values["status"] = rec.session_status.value
    return values


def _run_values(rec: LifecycleRecord) -> dict[str, Any] | None:
    if rec.run_row is None and rec.run_status is None:
        return None
    if rec.run_id is None:
        raise _bad("run_row / run_status need the record's run_id")
    values = _patch_values(rec.run_row)
    if rec.run_status is not None:
        values["status"] = rec.run_status.value
    return values


def _new_run(run_id: str, session_id: str, now: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "session_id": session_id,
        "turn": 0,
        "status": RunStatus.PENDING.value,
        "input_text": None,
        "input_messages": [],
        "output": None,
        "stop_reason": None,
        "model": None,
        "provider": None,
        "usage": {},
        "total_tokens": 0,
        "error": None,
        "attempts": 0,
        "metadata": {},
        "rolled_back": False,
        "started_at": None,
        "ended_at": None,
        "created_at": now,
        "updated_at": now,
    }


def _new_session(session_id: str, now: datetime) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "agent_id": "",
        "provider": "",
        "model": None,
        "status": SessionStatus.PENDING.value,
        "tags": [],
        "metadata": {},
        "usage": {},
        "total_tokens": 0,
        "run_count": 0,
        "error": None,
        "created_at": now,
        "updated_at": now,
    }


def _session_from_row(row: sa.Row[Any]) -> SessionRow:
    m = row._mapping
    return SessionRow(
        session_id=m["session_id"],
        agent_id=m["agent_id"],
        provider=m["provider"],
        model=m["model"],
        status=SessionStatus(m["status"]),
        tags=m["tags"] or [],
        metadata=m["metadata"] or {},
        usage=TokenUsage.model_validate(m["usage"] or {}),
        run_count=m["run_count"],
        error=m["error"],
        last_seq=m["last_seq"] or 0,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def _run_from_row(row: sa.Row[Any]) -> RunRow:
    m = dict(row._mapping)
    m["usage"] = TokenUsage.model_validate(m["usage"] or {})
    m["status"] = RunStatus(m["status"])
    m.pop("total_tokens", None)
    return RunRow.model_validate(m)


class EventStore:
    """Events, sessions, runs and conversation messages in SQL (SQLite or PostgreSQL).

    Open with :func:`open_store`; one store per process is the intent (it owns the pools and,
    on PostgreSQL, one ``LISTEN`` connection shared by every follower). Every public method
    raises only :class:`core.errors.AsmError` for storage failures and bad input.
    """

    #: See :data:`SQLITE_LOCK_RETRY_S` (an attribute so tests can shorten it).
    sqlite_lock_retry_s: float = SQLITE_LOCK_RETRY_S

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend: Backend = backend_of(url)
        self._writer, self._reader = make_engines(url)
        self._closed = False
        self._writes: set[asyncio.Task[Any]] = set()
        # In-process SQLite writers queue here rather than in SQLite's sleeping busy handler.
        self._write_lock: asyncio.Lock | None = None
        self._hub: Hub
        if self.backend == "sqlite":
            self._write_lock = asyncio.Lock()
            self._hub = PollingHub(self._reader)
            self._autocommit: AsyncEngine = self._writer
        else:
            # Reads and single-statement appends need no transaction: AUTOCOMMIT saves the
            # BEGIN and COMMIT round trips (an append is then one round trip).
            self._autocommit = self._writer.execution_options(isolation_level="AUTOCOMMIT")
            self._reader = self._autocommit
            connect_kwargs = asyncpg_connect_kwargs(self._writer)
            self._hub = ListenHub(lambda: asyncpg.connect(**connect_kwargs))

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def display_url(self) -> str:
        """The URL with its password redacted: safe for logs and messages."""
        return redact(self.url)

    @property
    def engine(self) -> AsyncEngine:
        """The writer engine (benchmarks compare against raw inserts through it)."""
        return self._writer

    def __repr__(self) -> str:
        return f"EventStore({self.display_url!r})"

    async def close(self) -> None:
        """Stop followers (they raise ``stream_closed``) and release every connection."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*self._writes, return_exceptions=True)  # let them commit
        await self._hub.close()
        await self._writer.dispose()
        if self._reader is not self._writer and self.backend == "sqlite":
            await self._reader.dispose()

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _check_connection(self, check_schema: bool) -> None:
        try:
            async with self._reader.connect() as conn:
                if check_schema:
                    await _check_schema(conn, self.url)
                else:
                    await conn.execute(sa.text("SELECT 1"))
        except AsmError:
            raise
        except DB_ERRORS as exc:
            raise translate(exc, "connect", self.url) from exc

    def _ensure_open(self) -> None:
        if self._closed:
            raise StateError("stream_closed", f"the event store {self.display_url} is closed")

    # --- transactions ------------------------------------------------------------------------

    async def _run_write(
        self,
        fn: Callable[[AsyncConnection], Awaitable[T]],
        *,
        ids: Mapping[str, str] | None = None,
        autocommit: bool = False,
    ) -> T:
        """Run ``fn`` in one write transaction, retrying lock waits and lost id races.

        The transaction is shielded from the caller's cancellation: a cancelled activity
        would otherwise abandon it half-way, and on SQLite the abandoned transaction keeps
        the database's write lock until its connection is reclaimed, stalling every other
        writer (seen: a cancelled run's lifecycle write waiting 8 s). The caller still gets
        its ``CancelledError`` at once; the write commits (or fails) on its own.
        """
        self._ensure_open()
        task = asyncio.ensure_future(self._write(fn, ids=ids, autocommit=autocommit))
        self._writes.add(task)  # referenced until done, and awaited by close()
        task.add_done_callback(self._write_done)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled no longer wants it

    async def _write(
        self,
        fn: Callable[[AsyncConnection], Awaitable[T]],
        *,
        ids: Mapping[str, str] | None,
        autocommit: bool,
    ) -> T:
        loop = asyncio.get_running_loop()
        lock_deadline: float | None = None
        conflicts = 0
        while True:
            try:
                if self._write_lock is not None:
                    async with self._write_lock, self._writer.begin() as conn:
                        return await fn(conn)
                if autocommit:
                    async with self._autocommit.connect() as conn:
                        return await fn(conn)
                async with self._writer.begin() as conn:
                    return await fn(conn)
            except AsmError:
                raise
            except DB_ERRORS as exc:
                if is_sqlite_locked(exc):
                    lock_deadline = lock_deadline or loop.time() + self.sqlite_lock_retry_s
                    if loop.time() < lock_deadline:
                        await asyncio.sleep(0.01)
                        continue
                elif _is_conflict(exc) and conflicts < WRITE_CONFLICT_RETRIES:
                    conflicts += 1
                    if "uq_asm_events_id" in str(exc) and ids:
                        await self._raise_if_foreign(ids)
                    continue
                raise translate(exc, "write", self.url) from exc

    async def _run_read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``fn`` on a reader connection; a connection the server dropped is retried once."""
        self._ensure_open()
        for attempt in (1, 2):
            try:
                async with self._reader.connect() as conn:
                    return await fn(conn)
            except AsmError:
                raise
            except DB_ERRORS as exc:
                # A pooled connection killed by a server restart: the pool was invalidated by
                # this failure, so one retry gets a fresh connection. Reads are idempotent.
                if (
                    attempt == 1
                    and isinstance(exc, sa_exc.DBAPIError)
                    and (exc.connection_invalidated)
                ):
                    continue
                raise translate(exc, "read", self.url) from exc
        raise AssertionError("unreachable")

    async def _raise_if_foreign(self, owners: Mapping[str, str]) -> None:
        """``session_mismatch`` if one of the ids exists in another session than intended."""
        ids = list(owners)

        async def q(conn: AsyncConnection) -> dict[str, str]:
            found: dict[str, str] = {}
            for chunk in _chunks(ids, _SQLITE_IN_CHUNK):
                rows = await conn.execute(_OWNERS, {"ids": list(chunk)})
                found.update((r.id, r.session_id) for r in rows)
            return found

        for event_id, session_id in (await self._run_read(q)).items():
            _raise_foreign({event_id: session_id}, owners[event_id])

    # --- append ------------------------------------------------------------------------------

    async def append(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Write ``drafts`` in one transaction; return the events newly written, with ``seq``.

        Events whose id already exists are skipped (so a retried write changes nothing); the
        first of several drafts sharing an id wins. No session row is needed. Drafts of several
        sessions may be mixed; each session's events get consecutive seqs in draft order.
        Raises ``session_mismatch`` when an id exists in another session.
        """
        batch = _dedupe(drafts)
        if not batch:
            return []
        now = _now()
        groups = _group(batch)
        ids = {d.id: d.session_id for d in batch}
        if self.backend == "postgresql" and len(groups) == 1:
            ((sid, group),) = groups.items()

            async def single(conn: AsyncConnection) -> list[Event]:
                return await self._append_group(conn, sid, group, now)

            written = await self._run_write(single, ids=ids, autocommit=True)
        else:

            async def tx(conn: AsyncConnection) -> list[Event]:
                return await self._append_tx(conn, batch, now)

            written = await self._run_write(tx, ids=ids)
        self._published(written)
        return written

    def _published(self, written: Sequence[Event]) -> None:
        # PostgreSQL followers hear the NOTIFY; SQLite followers of this store are woken here
        # (followers in other processes see it on their next poll).
        if self.backend == "sqlite":
            for sid in {e.session_id for e in written}:
                self._hub.publish(sid)

    async def _append_tx(
        self, conn: AsyncConnection, batch: list[EventDraft], now: datetime
    ) -> list[Event]:
        groups = _group(batch)
        by_id: dict[str, Event] = {}
        # Sorted: two multi-session transactions lock counters in the same order (no deadlock).
        for sid in sorted(groups):
            for ev in await self._append_group(conn, sid, groups[sid], now):
                by_id[ev.id] = ev
        return [by_id[d.id] for d in batch if d.id in by_id]

    async def _append_group(
        self, conn: AsyncConnection, sid: str, group: list[EventDraft], now: datetime
    ) -> list[Event]:
        if self.backend == "postgresql":
            return await self._append_group_pg(conn, sid, group, now)
        return await self._append_group_sqlite(conn, sid, group, now)

    async def _append_group_pg(
        self, conn: AsyncConnection, sid: str, group: list[EventDraft], now: datetime
    ) -> list[Event]:
        payload = _batch_json(group, pg_json_serializer)
        result = await conn.execute(
            _PG_APPEND, {"batch": payload, "sid": sid, "now": now, "channel": CHANNEL}
        )
        rows = result.all()
        # seq 0 marks an id that exists in another session: the statement wrote nothing.
        _raise_foreign({r.id: r.owner for r in rows if r.seq == 0}, sid)
        seqs: dict[str, int] = {r.id: r.seq for r in rows}
        return [_built(d, seqs[d.id], now) for d in group if d.id in seqs]

    async def _append_group_sqlite(
        self, conn: AsyncConnection, sid: str, group: list[EventDraft], now: datetime
    ) -> list[Event]:
        result = await conn.execute(
            _SQLITE_APPEND,
            {"sid": sid, "batch": _batch_json(group, json_serializer), "now": now},
        )
        seqs: dict[str, int] = {r.id: r.seq for r in result}
        if len(seqs) < len(group):  # some ids exist: a retry (fine) or another session's ids
            existing: dict[str, str] = {}
            skipped = [d.id for d in group if d.id not in seqs]
            for chunk in _chunks(skipped, _SQLITE_IN_CHUNK):
                rows = await conn.execute(_OWNERS, {"ids": list(chunk)})
                existing.update((r.id, r.session_id) for r in rows)
            _raise_foreign(existing, sid)
        if not seqs:
            return []
        await conn.execute(_SQLITE_BUMP_COUNTER, {"sid": sid, "n": len(seqs)})
        return [_built(d, seqs[d.id], now) for d in group if d.id in seqs]

    # --- reads -------------------------------------------------------------------------------

    def _select_events(
        self,
        session_id: str,
        after_seq: int,
        before_seq: int | None,
        run_id: str | None,
        types: list[str] | None,
        limit: int,
        upto: int | None = None,
    ) -> sa.Select[Any]:
        stmt = sa.select(EVENTS).where(EVENTS.c.session_id == session_id, EVENTS.c.seq > after_seq)
        if before_seq is not None:
            stmt = stmt.where(EVENTS.c.seq < before_seq)
        if upto is not None:
            stmt = stmt.where(EVENTS.c.seq <= upto)
        if run_id is not None:
            stmt = stmt.where(EVENTS.c.run_id == run_id)
        if types is not None:
            stmt = stmt.where(EVENTS.c.type.in_(types))
        return stmt.order_by(EVENTS.c.seq).limit(limit)

    async def _session_state(self, session_id: str) -> tuple[int, bool]:
        """``(last_seq, exists)``: a session exists when it has events or a session row."""
        last_q = sa.select(COUNTERS.c.last_seq).where(COUNTERS.c.session_id == session_id)
        row_q = sa.select(SESSIONS.c.session_id).where(SESSIONS.c.session_id == session_id)
        stmt = sa.select(last_q.scalar_subquery().label("last"), sa.exists(row_q).label("row"))

        async def q(conn: AsyncConnection) -> tuple[int, bool]:
            last, row = (await conn.execute(stmt)).one()
            return int(last or 0), last is not None or bool(row)

        return await self._run_read(q)

    async def _check_cursor(
        self, session_id: str, after_seq: int, *, strict: bool, must_exist: bool
    ) -> None:
        last, exists = await self._session_state(session_id)
        if must_exist and not exists:
            raise ResourceError(
                "session_not_found",
                f"session {session_id!r} not found (no events and no session record)",
                details={"session_id": session_id},
            )
        if strict and after_seq > last:
            raise _invalid_cursor(session_id, after_seq, last)

    async def _read_page(
        self,
        session_id: str,
        after_seq: int,
        before_seq: int | None,
        run_id: str | None,
        types: list[str] | None,
        limit: int,
    ) -> tuple[list[Event], int]:
        """A page of events and the seq the caller may resume after (past filtered-out rows)."""
        filtered = run_id is not None or types is not None

        async def q(conn: AsyncConnection) -> tuple[list[Event], int]:
            upto: int | None = None
            if filtered:
                upto = (
                    await conn.execute(
                        sa.select(COUNTERS.c.last_seq).where(COUNTERS.c.session_id == session_id)
                    )
                ).scalar_one_or_none() or 0
                if before_seq is not None:
                    upto = min(upto, before_seq - 1)
            stmt = self._select_events(
                session_id, after_seq, before_seq, run_id, types, limit, upto
            )
            events = [_event_from_row(r) for r in await conn.execute(stmt)]
            if len(events) >= limit:
                return events, events[-1].seq
            if upto is not None:
                return events, max(after_seq, upto)
            return events, events[-1].seq if events else after_seq

        return await self._run_read(q)

    async def events(
        self,
        session_id: str,
        after_seq: int = 0,
        before_seq: int | None = None,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        *,
        strict: bool = True,
        must_exist: bool = False,
    ) -> list[Event]:
        """Events of a session with ``after_seq < seq < before_seq``, in seq order.

        Filters: ``run_id``, ``types`` (event type names). At most ``limit`` events (clamped
        to :data:`MAX_PAGE`); page by passing the last seq as ``after_seq``. See the module
        docstring for ``strict`` (cursor beyond the end) and ``must_exist``.
        """
        if after_seq < 0:
            raise _invalid_cursor(session_id, after_seq, None)
        if before_seq is not None and before_seq < 1:
            raise StateError(
                "invalid_cursor",
                f"before_seq must be >= 1, got {before_seq}",
                details={"session_id": session_id, "before_seq": before_seq},
            )
        if limit < 1:
            raise _bad(f"limit must be >= 1, got {limit}")
        type_values = _type_values(types)
        stmt = self._select_events(
            session_id, after_seq, before_seq, run_id, type_values, min(limit, MAX_PAGE)
        )

        async def q(conn: AsyncConnection) -> list[Event]:
            return [_event_from_row(r) for r in await conn.execute(stmt)]

        events = await self._run_read(q)
        if not events and ((strict and after_seq > 0) or must_exist):
            await self._check_cursor(session_id, after_seq, strict=strict, must_exist=must_exist)
        return events

    async def last_seq(self, session_id: str) -> int:
        """The session's highest seq; 0 when it has no events."""
        stmt = sa.select(COUNTERS.c.last_seq).where(COUNTERS.c.session_id == session_id)

        async def q(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).scalar_one_or_none() or 0

        return await self._run_read(q)

    async def wait_events(
        self,
        session_id: str,
        after_seq: int,
        timeout: float,  # noqa: ASYNC109 - the long-poll budget is the API, not a wrapper timeout
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        limit: int = 1000,
        strict: bool = True,
        must_exist: bool = False,
    ) -> list[Event]:
        """Long poll: events after ``after_seq`` as soon as there are any, ``[]`` after ``timeout``.

        Returns at once when matching events exist. Same filters and cursor rules as
        :meth:`events`.
        """
        if timeout < 0:
            raise _bad(f"timeout must be >= 0, got {timeout}")
        first = await self.events(
            session_id,
            after_seq,
            None,
            run_id,
            types,
            limit,
            strict=strict,
            must_exist=must_exist,
        )
        if first or timeout == 0:
            return first
        type_values = _type_values(types)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sub = await self._hub.subscribe(session_id)
        try:
            cursor = after_seq
            while True:
                sub.clear()
                events, cursor = await self._read_page(
                    session_id, cursor, None, run_id, type_values, min(limit, MAX_PAGE)
                )
                if events:
                    return events
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                if sub.closed:
                    self._ensure_open()
                await sub.wait(min(remaining, self._hub.wait_interval))
        finally:
            self._hub.unsubscribe(sub)

    def follow(
        self,
        session_id: str,
        after_seq: int = 0,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        strict: bool = True,
        must_exist: bool = False,
        page_size: int = 1000,
        reconnect_timeout: float = 60.0,
    ) -> AsyncIterator[Event]:
        """Every event after ``after_seq``, then new ones live, forever, in seq order.

        Stops when the consumer stops iterating (use ``contextlib.aclosing`` to release the
        subscription at once) or is cancelled; raises ``stream_closed`` if the store closes.
        Resume from any seq by passing it as ``after_seq``: every event is delivered exactly
        once. Wake-ups: PostgreSQL ``LISTEN/NOTIFY``, with a catch-up read whenever the
        listener (re)connects; SQLite polls every 10-50 ms (instant for writes made through this
        same store). Connection failures are retried for ``reconnect_timeout`` seconds before
        ``storage_connection_failed`` is raised.

        A negative ``after_seq`` raises here; cursor/session checks happen on the first
        iteration (see the module docstring for ``strict`` and ``must_exist``).
        """
        if after_seq < 0:
            raise _invalid_cursor(session_id, after_seq, None)
        if page_size < 1:
            raise _bad(f"page_size must be >= 1, got {page_size}")
        return self._follow(
            session_id,
            after_seq,
            run_id,
            _type_values(types),
            strict,
            must_exist,
            min(page_size, MAX_PAGE),
            reconnect_timeout,
        )

    async def _follow(
        self,
        session_id: str,
        after_seq: int,
        run_id: str | None,
        types: list[str] | None,
        strict: bool,
        must_exist: bool,
        page_size: int,
        reconnect_timeout: float,
    ) -> AsyncIterator[Event]:
        self._ensure_open()
        loop = asyncio.get_running_loop()
        sub = await self._hub.subscribe(session_id)
        try:
            cursor = after_seq
            checked = not (strict and after_seq > 0) and not must_exist
            failing_since: float | None = None
            backoff = 0.05
            while True:
                if sub.closed:
                    self._ensure_open()
                sub.clear()
                try:
                    events, scanned = await self._read_page(
                        session_id, cursor, None, run_id, types, page_size
                    )
                    if not checked:
                        if not events:
                            await self._check_cursor(
                                session_id, after_seq, strict=strict, must_exist=must_exist
                            )
                        checked = True
                except AsmError as exc:
                    if exc.code != "storage_connection_failed" or self._closed:
                        raise
                    failing_since = failing_since or loop.time()
                    if loop.time() - failing_since > reconnect_timeout:
                        raise
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                failing_since, backoff = None, 0.05
                for ev in events:
                    yield ev
                cursor = scanned
                if len(events) >= page_size:
                    continue  # catching up: next page at once
                await sub.wait(self._hub.wait_interval)
        finally:
            self._hub.unsubscribe(sub)

    # --- read models -------------------------------------------------------------------------

    async def record(self, rec: LifecycleRecord) -> Event | None:
        """Append a lifecycle event and apply its read-model change in one transaction.

        The event (id ``rec.event_id``, attempt 0) is written idempotently. Session and run
        fields are *set* (never incremented), so a re-applied record is a no-op; a row in a
        terminal status keeps it (terminal states are final; a late or replayed non-terminal
        update cannot resurrect it). A run moving to ``running`` gets ``started_at`` and one
        reaching a terminal status gets ``ended_at`` (now, unless given). Returns the new
        event, or None if it already existed.
        """
        draft = _record_draft(rec)
        now = _now()

        async def tx(conn: AsyncConnection) -> list[Event]:
            written = await self._append_group(conn, rec.session_id, [draft], now)
            await self._apply_record(conn, rec, now)
            return written

        written = await self._run_write(tx, ids={draft.id: draft.session_id})
        self._published(written)
        return written[0] if written else None

    async def _apply_record(
        self, conn: AsyncConnection, rec: LifecycleRecord, now: datetime
    ) -> None:
        """A lifecycle record's read-model change (its event is appended by the caller)."""
        session_values = _session_values(rec)
        if session_values is not None:
            await self._upsert_session(conn, rec.session_id, session_values, now)
        run_values = _run_values(rec)
        if run_values is not None:
            assert rec.run_id is not None
            await self._upsert_run(conn, rec.run_id, rec.session_id, run_values, now)

    def _text_safe(self, values: dict[str, Any]) -> dict[str, Any]:
        # PostgreSQL text cannot hold NUL either (JSON columns are handled by the serializer).
        if self.backend != "postgresql":
            return values
        return {k: scrub_nul(v) if isinstance(v, str) else v for k, v in values.items()}

    async def _upsert_session(
        self, conn: AsyncConnection, session_id: str, values: dict[str, Any], now: datetime
    ) -> None:
        values = self._text_safe(values)
        stmt = _upsert(
            self.backend, SESSIONS, "session_id", _SESSION_TERMINAL, tuple(sorted(values)), ()
        )
        await conn.execute(stmt, _new_session(session_id, now) | values)

    async def _upsert_run(
        self,
        conn: AsyncConnection,
        run_id: str,
        session_id: str,
        values: dict[str, Any],
        now: datetime,
    ) -> None:
        values = self._text_safe(values)
        auto: list[str] = []
        status = values.get("status")
        if status == RunStatus.RUNNING.value and "started_at" not in values:
            values["started_at"] = now
            auto.append("started_at")
        if status in _RUN_TERMINAL and "ended_at" not in values:
            values["ended_at"] = now
            auto.append("ended_at")
        stmt = _upsert(  # first time wins for the automatic timestamps
            self.backend, RUNS, "run_id", _RUN_TERMINAL, tuple(sorted(values)), tuple(auto)
        )
        await conn.execute(stmt, _new_run(run_id, session_id, now) | values)

    def _sessions_query(self) -> sa.Select[Any]:
        return sa.select(SESSIONS, COUNTERS.c.last_seq).select_from(
            SESSIONS.outerjoin(COUNTERS, COUNTERS.c.session_id == SESSIONS.c.session_id)
        )

    async def get_session(self, session_id: str) -> SessionRow | None:
        """The session's read model, or None."""
        stmt = self._sessions_query().where(SESSIONS.c.session_id == session_id)

        async def q(conn: AsyncConnection) -> SessionRow | None:
            row = (await conn.execute(stmt)).one_or_none()
            return _session_from_row(row) if row is not None else None

        return await self._run_read(q)

    async def list_sessions(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        limit: int = 100,
    ) -> list[SessionRow]:
        """Sessions, newest first, optionally filtered by status and agent."""
        if limit < 1:
            raise _bad(f"limit must be >= 1, got {limit}")
        stmt = self._sessions_query()
        if status is not None:
            stmt = stmt.where(SESSIONS.c.status == _status(SessionStatus, status))
        if agent_id is not None:
            stmt = stmt.where(SESSIONS.c.agent_id == agent_id)
        stmt = stmt.order_by(SESSIONS.c.created_at.desc(), SESSIONS.c.session_id.desc()).limit(
            min(limit, MAX_PAGE)
        )

        async def q(conn: AsyncConnection) -> list[SessionRow]:
            return [_session_from_row(r) for r in await conn.execute(stmt)]

        return await self._run_read(q)

    async def get_run(self, run_id: str) -> RunRow | None:
        """The run's read model, or None."""
        stmt = sa.select(RUNS).where(RUNS.c.run_id == run_id)

        async def q(conn: AsyncConnection) -> RunRow | None:
            row = (await conn.execute(stmt)).one_or_none()
            return _run_from_row(row) if row is not None else None

        return await self._run_read(q)

    async def runs(self, session_id: str) -> list[RunRow]:
        """The session's runs ordered by turn."""
        stmt = (
            sa.select(RUNS)
            .where(RUNS.c.session_id == session_id)
            .order_by(RUNS.c.turn, RUNS.c.created_at, RUNS.c.run_id)
        )

        async def q(conn: AsyncConnection) -> list[RunRow]:
            return [_run_from_row(r) for r in await conn.execute(stmt)]

        return await self._run_read(q)

    # --- conversation ------------------------------------------------------------------------

    async def save_messages(
        self,
        session_id: str,
        run_id: str,
        turn: int,
        messages: Sequence[Message],
        events: Sequence[EventDraft] = (),
        record: LifecycleRecord | None = None,
    ) -> list[Event]:
        """Replace the run's conversation messages and append ``events``, atomically.

        ``record`` (e.g. the run's ``run_completed``) is applied in the same transaction, as
        :meth:`record` would, its event after ``events``. Idempotent per run: saving again
        replaces the run's messages. The run row is created (status ``running``) if no
        lifecycle record made it yet. Returns the newly written events. ``run_mismatch`` if
        the run belongs to another session; ``session_mismatch`` if an event does.
        """
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in messages]
        batch = _dedupe([*events, _record_draft(record)] if record is not None else events)
        for d in batch:
            if d.session_id != session_id:
                raise StateError(
                    "session_mismatch",
                    f"event {d.id!r} belongs to session {d.session_id!r}, not {session_id!r}",
                    details={"event_id": d.id, "session_id": d.session_id},
                )
        now = _now()

        async def tx(conn: AsyncConnection) -> list[Event]:
            # Lock order everywhere: counters, then session/run rows (no deadlock cycles).
            written = await self._append_tx(conn, batch, now) if batch else []
            new_run = _new_run(run_id, session_id, now) | {
                "turn": turn,
                "status": RunStatus.RUNNING.value,
                "started_at": now,
            }
            owner = (await conn.execute(_claim_run(self.backend), new_run)).scalar_one()
            if owner != session_id:
                raise StateError(
                    "run_mismatch",
                    f"run {run_id!r} belongs to session {owner!r}, not {session_id!r}",
                    details={"run_id": run_id, "session_id": owner},
                )
            await conn.execute(_DELETE_MESSAGES, {"run_id": run_id})
            if msgs:
                await conn.execute(
                    _INSERT_MESSAGES,
                    [
                        {
                            "run_id": run_id,
                            "idx": i,
                            "session_id": session_id,
                            "turn": turn,
                            "role": m.role,
                            "content": m.content,
                            "created_at": now,
                        }
                        for i, m in enumerate(msgs)
                    ],
                )
            if record is not None:
                await self._apply_record(conn, record, now)
            return written

        written = await self._run_write(tx, ids={d.id: session_id for d in batch})
        self._published(written)
        return written

    async def conversation(self, session_id: str, before_turn: int) -> list[Message]:
        """The conversation so far: saved messages of the session's earlier runs.

        A run's messages count iff the run's turn is below ``before_turn``, its messages were
        saved, it was not rolled back (:meth:`mark_rolled_back`), and its status is not
        ``failed``, ``cancelled`` or ``timeout`` (a run still ``running`` whose messages were
        saved counts). Ordered by turn, then run id, then message index.
        """
        params = {"session_id": session_id, "before_turn": before_turn}

        async def q(conn: AsyncConnection) -> list[Message]:
            # Validated when saved; re-validating every earlier message on every turn would
            # make a long session's turns cost more and more.
            return [
                Message.model_construct(role=r.role, content=r.content)
                for r in await conn.execute(_CONVERSATION, params)
            ]

        return await self._run_read(q)

    async def mark_rolled_back(self, run_id: str) -> None:
        """Exclude the run's messages from :meth:`conversation` (``run_not_found`` if unknown)."""
        now = _now()
        stmt = (
            sa.update(RUNS).where(RUNS.c.run_id == run_id).values(rolled_back=True, updated_at=now)
        )

        async def tx(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        if await self._run_write(tx) == 0:
            raise ResourceError(
                "run_not_found", f"run {run_id!r} not found", details={"run_id": run_id}
            )


def _is_conflict(exc: BaseException) -> bool:
    """A lost race worth re-running: id uniqueness, deadlock, serialization failure."""
    text = str(exc)
    if "uq_asm_events_id" in text or "asm_events.id" in text:
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(
        getattr(getattr(exc, "orig", None), "__cause__", None), "sqlstate", None
    )
    return isinstance(state, str) and state in ("40001", "40P01")


def _raise_foreign(existing: dict[str, str], sid: str) -> None:
    foreign = {i: s for i, s in existing.items() if s != sid}
    if foreign:
        event_id, other = next(iter(foreign.items()))
        raise StateError(
            "session_mismatch",
            f"event id {event_id!r} already exists in session {other!r} (appending to {sid!r})",
            details={"event_ids": sorted(foreign), "session_id": other},
        )


async def open_store(url: str | None = None, *, check_schema: bool = True) -> EventStore:
    """Open the event store at ``url`` (default ``$ASM_DATABASE_URL``, then ``.asm/asm.db``).

    Connects once to fail fast: ``storage_connection_failed`` names the URL (password
    redacted) and what to check. With ``check_schema`` (the default, and what the worker
    does) an out-of-date schema raises :class:`store.SchemaOutOfDate` saying to run
    ``asm db upgrade``.
    """
    resolved = resolve_url(url)
    try:
        store = EventStore(resolved)
    except OSError as exc:  # e.g. the SQLite file's directory cannot be created
        raise translate(exc, "connect", resolved) from exc
    try:
        await store._check_connection(check_schema)
    except BaseException:
        await store.close()
        raise
    return store
