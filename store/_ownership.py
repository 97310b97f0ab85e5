"""Ownership of ids, enforced by the database: a session id has one session workflow, a run id
one session.

Each claim is one transaction: insert the claim unless one exists (``ON CONFLICT DO
NOTHING``), then read the claim that stands. The primary key decides every race, so however
claims interleave, one id never gets two owners; claiming again what one owns is a no-op (a
retried or replayed local activity claims twice). A claim is made *before* anything else is
written for the session or run, so a rejected start or submit leaves no trace.

An id already in the log without a claim (written before ownership was kept, or by a run
started on its own) counts as owned by someone else.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.errors import ResourceError, ValidationError
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import RUN_OWNERS, RUNS, SESSION_OWNERS, SESSIONS


async def claim_session(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    owner: str,
    workflow_id: str,
    now: datetime,
) -> None:
    """Make ``owner`` the session's owner, or raise ``session_already_exists``."""
    c = SESSION_OWNERS.c
    standing = await _standing(conn, c.session_id, session_id, c.owner)
    if standing is None:
        if await _exists(conn, SESSIONS.c.session_id, session_id):
            standing = "legacy"  # in the log from before claims: not ours to take
        else:
            await conn.execute(
                dialect_insert(backend, SESSION_OWNERS)
                .values(session_id=session_id, owner=owner, workflow_id=workflow_id, created_at=now)
                .on_conflict_do_nothing(index_elements=["session_id"])
            )
            standing = await _standing(conn, c.session_id, session_id, c.owner)
    if standing != owner:
        raise ResourceError(
            "session_already_exists",
            f"session id {session_id!r} belongs to another session: start this one with a new "
            "session_id (or omit it), or talk to the existing session",
            details={"session_id": session_id},
        )


async def claim_run(
    conn: AsyncConnection, backend: Backend, run_id: str, session_id: str, now: datetime
) -> None:
    """Make the run ``session_id``'s, or raise ``validation_error`` if another session has it."""
    c = RUN_OWNERS.c
    standing = await _standing(conn, c.run_id, run_id, c.session_id)
    if standing is None:
        in_log = await _standing(conn, RUNS.c.run_id, run_id, RUNS.c.session_id)
        if in_log is not None:
            standing = in_log
        else:
            await conn.execute(
                dialect_insert(backend, RUN_OWNERS)
                .values(run_id=run_id, session_id=session_id, created_at=now)
                .on_conflict_do_nothing(index_elements=["run_id"])
            )
            standing = await _standing(conn, c.run_id, run_id, c.session_id)
    if standing != session_id:
        # The other session's id stays out of the message: it is not this caller's business.
        raise ValidationError(
            "validation_error",
            f"run id {run_id!r} belongs to another session: submit with a new run_id, or omit "
            "it to have one generated",
            details={"run_id": run_id},
        )


async def _standing(
    conn: AsyncConnection, key: sa.Column[str], value: str, col: sa.Column[str]
) -> str | None:
    row = (await conn.execute(sa.select(col).where(key == value))).first()
    return None if row is None else str(row[0])


async def _exists(conn: AsyncConnection, key: sa.Column[str], value: str) -> bool:
    return (await conn.execute(sa.select(key).where(key == value))).first() is not None
