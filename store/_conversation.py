"""Conversation continuity: each run's messages, and the conversation of earlier runs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.contract import Message
from agent_session_manager.core.errors import StateError
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._read_models import new_run
from agent_session_manager.store._schema import MESSAGES, RUNS

#: Runs whose saved messages do not count in ``conversation()``.
_RUN_EXCLUDED_FROM_CONVERSATION = (
    RunStatus.FAILED.value,
    RunStatus.CANCELLED.value,
    RunStatus.TIMEOUT.value,
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


@functools.cache
def _claim_run(backend: Backend) -> Any:
    """Create the run row unless it exists, lock it, and return its session (one round trip).

    The conflict branch is a no-op update (the session is set to itself): unlike ``DO
    NOTHING`` it locks the existing row and lets ``RETURNING`` report its owner, which
    otherwise takes a second ``SELECT … FOR UPDATE``.
    """
    ins = dialect_insert(backend, RUNS)
    return ins.on_conflict_do_update(
        index_elements=["run_id"], set_={"session_id": RUNS.c.session_id}
    ).returning(RUNS.c.session_id)


async def replace_messages(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    run_id: str,
    turn: int,
    messages: Sequence[Message],
    now: datetime,
) -> None:
    """Replace the run's messages; create its row (``running``) if no lifecycle record did.

    ``run_mismatch`` if the run belongs to another session.
    """
    row = new_run(run_id, session_id, now) | {
        "turn": turn,
        "status": RunStatus.RUNNING.value,
        "started_at": now,
    }
    owner = (await conn.execute(_claim_run(backend), row)).scalar_one()
    if owner != session_id:
        raise StateError(
            "run_mismatch",
            f"run {run_id!r} belongs to session {owner!r}, not {session_id!r}",
            details={"run_id": run_id, "session_id": owner},
        )
    await conn.execute(_DELETE_MESSAGES, {"run_id": run_id})
    if messages:
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
                for i, m in enumerate(messages)
            ],
        )


async def conversation(conn: AsyncConnection, session_id: str, before_turn: int) -> list[Message]:
    """Saved messages of the session's runs before ``before_turn`` that count (see the store)."""
    params = {"session_id": session_id, "before_turn": before_turn}
    # Validated when saved; re-validating every earlier message on every turn would make a
    # long session's turns cost more and more.
    return [
        Message.model_construct(role=r.role, content=r.content)
        for r in await conn.execute(_CONVERSATION, params)
    ]


_RUN_MESSAGES = (
    sa.select(MESSAGES.c.role, MESSAGES.c.content)
    .where(MESSAGES.c.run_id == sa.bindparam("run_id"))
    .order_by(MESSAGES.c.idx)
)


async def run_messages(conn: AsyncConnection, run_id: str) -> list[Message]:
    """The messages saved for one run so far, in order (the agent loop's transcript)."""
    return [
        Message.model_construct(role=r.role, content=r.content)
        for r in await conn.execute(_RUN_MESSAGES, {"run_id": run_id})
    ]


async def mark_rolled_back(conn: AsyncConnection, run_id: str, now: datetime) -> bool:
    """Exclude the run's messages from the conversation; False if the run is unknown."""
    stmt = sa.update(RUNS).where(RUNS.c.run_id == run_id).values(rolled_back=True, updated_at=now)
    return bool((await conn.execute(stmt)).rowcount)
