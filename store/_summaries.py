"""Stored summaries of a conversation's older turns (the ``summarize`` context policy)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import SUMMARIES


class Summary(NamedTuple):
    """A stored summary: it covers the session's runs with a turn below ``through_turn``."""

    through_turn: int
    text: str


#: The newest summary a run at ``turn`` may use (one written for a later turn covers runs
#: this one does not have before it): the primary key's order, so one index probe.
_LATEST = (
    sa.select(SUMMARIES.c.through_turn, SUMMARIES.c.text)
    .where(
        SUMMARIES.c.session_id == sa.bindparam("session_id"),
        SUMMARIES.c.through_turn <= sa.bindparam("turn"),
    )
    .order_by(SUMMARIES.c.through_turn.desc())
    .limit(1)
)


async def latest(conn: AsyncConnection, session_id: str, turn: int) -> Summary | None:
    """The summary with the highest ``through_turn`` not above ``turn``, if any."""
    row = (await conn.execute(_LATEST, {"session_id": session_id, "turn": turn})).first()
    return None if row is None else Summary(row.through_turn, row.text)


@functools.cache
def _insert(backend: Backend) -> Any:
    # The first writer wins: a concurrent attempt's summary of the same turns is as good.
    return dialect_insert(backend, SUMMARIES).on_conflict_do_nothing(
        index_elements=["session_id", "through_turn"]
    )


async def save(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    summary: Summary,
    run_id: str,
    now: datetime,
) -> Summary:
    """Store ``summary`` unless one covering the same turns exists; the one stored."""
    row = {
        "session_id": session_id,
        "through_turn": summary.through_turn,
        "text": summary.text,
        "run_id": run_id,
        "created_at": now,
    }
    await conn.execute(_insert(backend), row)
    stored = await latest(conn, session_id, summary.through_turn)
    assert stored is not None and stored.through_turn == summary.through_turn
    return stored
