"""The session and run read models: how lifecycle records change them, and reading them.

A record's patch fields are *set* (never incremented), so re-applying a record is a no-op. A
row in a terminal status keeps it: terminal states are final, and a late or replayed
non-terminal update cannot resurrect it.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.contract import LifecycleRecord, RunPatch, SessionPatch
from agent_session_manager.core.events import EventDraft, parse_event_type
from agent_session_manager.core.status import RunStatus, SessionStatus
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store._context_version import RUN_EXCLUDED_FROM_CONVERSATION, bump
from agent_session_manager.store._engine import Backend, dialect_insert, scrub_nul
from agent_session_manager.store._errors import invalid_input
from agent_session_manager.store._limits import release_session_stmt
from agent_session_manager.store._reads import MAX_PAGE
from agent_session_manager.store._rows import RunRow, SessionRow
from agent_session_manager.store._schema import COUNTERS, EVENTS, RUNS, SESSIONS

_RUN_TERMINAL = tuple(s.value for s in RunStatus if s.is_terminal)
_SESSION_TERMINAL = tuple(s.value for s in SessionStatus if s.is_terminal)

#: Sessions joined with their last seq: what ``SessionRow`` shows.
_SESSIONS = sa.select(SESSIONS, COUNTERS.c.last_seq).select_from(
    SESSIONS.outerjoin(COUNTERS, COUNTERS.c.session_id == SESSIONS.c.session_id)
)


@functools.lru_cache(maxsize=256)  # column sets come from the patch models' fields: few
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
    ins = dialect_insert(backend, table)
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


def record_draft(rec: LifecycleRecord) -> EventDraft:
    """The event a lifecycle record writes (attempt 0: the workflow wrote it)."""
    return EventDraft(
        id=rec.event_id,
        session_id=rec.session_id,
        run_id=rec.run_id,
        attempt=0,
        type=parse_event_type(rec.type),
        data=rec.data,
        provider=rec.provider,
    )


async def with_attempts(conn: AsyncConnection, rec: LifecycleRecord) -> LifecycleRecord:
    """``rec`` with the run's attempts filled in when it is a cancellation that could not know
    them: Temporal tells a cancelled run nothing of its activity's attempts, but every event an
    attempt wrote carries its number, so the last one is how many attempts started."""
    if rec.run_id is None or rec.type != "run_cancelled" or rec.data.get("attempts") != 0:
        return rec
    query = sa.select(sa.func.max(EVENTS.c.attempt)).where(EVENTS.c.run_id == rec.run_id)
    attempts = (await conn.execute(query)).scalar() or 0
    if not attempts:
        return rec  # cancelled before its first attempt wrote anything (e.g. queued)
    row = rec.run_row.model_copy(update={"attempts": attempts}) if rec.run_row else None
    return rec.model_copy(update={"data": {**rec.data, "attempts": attempts}, "run_row": row})


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
        raise invalid_input("run_row / run_status need the record's run_id")
    values = _patch_values(rec.run_row)
    if rec.run_status is not None:
        values["status"] = rec.run_status.value
    return values


def new_run(run_id: str, session_id: str, now: datetime) -> dict[str, Any]:
    """Every column of a new run row, with its defaults (``context_version``: the server's)."""
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
    m.pop("context_version", None)
    return RunRow.model_validate(m)


async def apply_record(
    conn: AsyncConnection, backend: Backend, rec: LifecycleRecord, now: datetime
) -> None:
    """A lifecycle record's read-model change (its event is appended by the caller).

    A run moving to ``running`` gets ``started_at`` and one reaching a terminal status gets
    ``ended_at`` (now, unless the patch sets it).
    """
    run_values = _run_values(rec)
    if run_values is not None and run_values.get("status") in RUN_EXCLUDED_FROM_CONVERSATION:
        # The run's messages leave the conversation: readers that keep it must hear of it.
        # Bumped first: the counter row is locked before session and run rows, everywhere.
        run_values["context_version"] = await bump(conn, backend, rec.session_id)
    session_values = _session_values(rec)
    if session_values is not None:
        await _upsert_session(conn, backend, rec.session_id, session_values, now)
        if session_values.get("status") in _SESSION_TERMINAL:
            # The session's fleet-wide slot (core.limits) ends with it, in the same commit.
            await conn.execute(release_session_stmt(rec.session_id))
    if run_values is not None:
        assert rec.run_id is not None
        await _upsert_run(conn, backend, rec.run_id, rec.session_id, run_values, now)


def _text_safe(backend: Backend, values: dict[str, Any]) -> dict[str, Any]:
    # PostgreSQL text cannot hold NUL either (JSON columns are handled by the serializer).
    if backend != "postgresql":
        return values
    return {k: scrub_nul(v) if isinstance(v, str) else v for k, v in values.items()}


async def _upsert_session(
    conn: AsyncConnection, backend: Backend, session_id: str, values: dict[str, Any], now: datetime
) -> None:
    values = _text_safe(backend, values)
    stmt = _upsert(backend, SESSIONS, "session_id", _SESSION_TERMINAL, tuple(sorted(values)), ())
    await conn.execute(stmt, _new_session(session_id, now) | values)


async def _upsert_run(
    conn: AsyncConnection,
    backend: Backend,
    run_id: str,
    session_id: str,
    values: dict[str, Any],
    now: datetime,
) -> None:
    values = _text_safe(backend, values)
    auto: list[str] = []
    status = values.get("status")
    if status == RunStatus.RUNNING.value and "started_at" not in values:
        values["started_at"] = now
        auto.append("started_at")
    if status in _RUN_TERMINAL and "ended_at" not in values:
        values["ended_at"] = now
        auto.append("ended_at")
    stmt = _upsert(  # first time wins for the automatic timestamps
        backend, RUNS, "run_id", _RUN_TERMINAL, tuple(sorted(values)), tuple(auto)
    )
    await conn.execute(stmt, new_run(run_id, session_id, now) | values)


async def get_session(conn: AsyncConnection, session_id: str) -> SessionRow | None:
    """The session's read model, or None."""
    stmt = _SESSIONS.where(SESSIONS.c.session_id == session_id)
    row = (await conn.execute(stmt)).one_or_none()
    return _session_from_row(row) if row is not None else None


def select_sessions(status: str | None, agent_id: str | None, limit: int) -> sa.Select[Any]:
    """Sessions, newest first, optionally filtered by status and agent (checks the arguments)."""
    if limit < 1:
        raise invalid_input(f"limit must be >= 1, got {limit}")
    stmt = _SESSIONS
    if status is not None:
        try:
            status = SessionStatus(status).value
        except ValueError:
            allowed = ", ".join(s.value for s in SessionStatus)
            raise invalid_input(f"unknown SessionStatus {status!r} (allowed: {allowed})") from None
        stmt = stmt.where(SESSIONS.c.status == status)
    if agent_id is not None:
        stmt = stmt.where(SESSIONS.c.agent_id == agent_id)
    return stmt.order_by(SESSIONS.c.created_at.desc(), SESSIONS.c.session_id.desc()).limit(
        min(limit, MAX_PAGE)
    )


async def list_sessions(conn: AsyncConnection, stmt: sa.Select[Any]) -> list[SessionRow]:
    """The sessions a :func:`select_sessions` statement selects."""
    return [_session_from_row(r) for r in await conn.execute(stmt)]


async def get_run(conn: AsyncConnection, run_id: str) -> RunRow | None:
    """The run's read model, or None."""
    row = (await conn.execute(sa.select(RUNS).where(RUNS.c.run_id == run_id))).one_or_none()
    return _run_from_row(row) if row is not None else None


async def runs(conn: AsyncConnection, session_id: str) -> list[RunRow]:
    """The session's runs ordered by turn."""
    stmt = (
        sa.select(RUNS)
        .where(RUNS.c.session_id == session_id)
        .order_by(RUNS.c.turn, RUNS.c.created_at, RUNS.c.run_id)
    )
    return [_run_from_row(r) for r in await conn.execute(stmt)]
