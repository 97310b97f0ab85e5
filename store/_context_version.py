"""The session's conversation version: bumped by every change to what its conversation holds.

A run's messages saved, a run rolled back, a run ended ``failed``/``cancelled``/``timeout``:
each bumps the session's ``context_version`` (on its ``asm_event_counters`` row) and stamps
the changed run row with the new value, in the writer's transaction. A reader holding the
conversation as of version ``v`` then learns everything that changed by reading the runs
stamped after ``v`` (``store._context_cache``), however long the session is.

Versions are handed out under the counter row's lock, held to commit, so they commit in order:
a reader that sees version ``v`` has seen every change below it. The counter row is locked
first, as every writer does (``store._append``: counters, then session and run rows).
"""

from __future__ import annotations

import functools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.status import RunStatus
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import COUNTERS

#: Runs whose saved messages do not count in the conversation.
RUN_EXCLUDED_FROM_CONVERSATION = (
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.TIMEOUT.value,
)


@functools.cache
def _bump_stmt(backend: Backend) -> Any:
    ins = dialect_insert(backend, COUNTERS).values(
        session_id=sa.bindparam("session_id"), last_seq=0, context_version=1
    )
    return ins.on_conflict_do_update(
        index_elements=["session_id"],
        set_={"context_version": COUNTERS.c.context_version + 1},
    ).returning(COUNTERS.c.context_version)


async def bump(conn: AsyncConnection, backend: Backend, session_id: str) -> int:
    """Bump the session's conversation version; return the new one (to stamp the run with)."""
    return int((await conn.execute(_bump_stmt(backend), {"session_id": session_id})).scalar_one())


__all__ = ["RUN_EXCLUDED_FROM_CONVERSATION", "bump"]
