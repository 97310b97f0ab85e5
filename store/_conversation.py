"""Conversation continuity: each run's messages, and the conversation of earlier runs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.context import fit_context
from agent_session_manager.core.contract import ContextPolicy, Message
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


#: The windowed read: the rows that count, newest first, at most ``limit`` of them (the index
#: on ``(session_id, turn)`` lets the database stop there), folded by the database into ONE
#: JSON array. One value to fetch and parse (``_WINDOW_ROWS``) instead of a driver row per message:
#: the read then costs about what turn 2's does at any turn (``bench/continuity.py``).
_NEWEST = (
    sa.select(
        MESSAGES.c.turn, MESSAGES.c.run_id, MESSAGES.c.idx, MESSAGES.c.role, MESSAGES.c.content
    )
    .select_from(MESSAGES.join(RUNS, RUNS.c.run_id == MESSAGES.c.run_id))
    .where(
        MESSAGES.c.session_id == sa.bindparam("session_id"),
        MESSAGES.c.turn < sa.bindparam("before_turn"),
        RUNS.c.rolled_back.is_(False),
        RUNS.c.status.not_in(_RUN_EXCLUDED_FROM_CONVERSATION),
    )
    # By turn alone, so the database walks the index backwards and stops at ``limit``
    # (adding run_id and idx would make it sort the whole session first); the rows of a run
    # are put in order below, and a run the limit cut is dropped by fit_context().
    .order_by(MESSAGES.c.turn.desc())
    .limit(sa.bindparam("limit"))
    .subquery()
)


@functools.cache
def _window(backend: Backend) -> Any:
    w = _NEWEST.c
    if backend == "postgresql":
        msg = sa.func.jsonb_build_object("role", w.role, "content", w.content)
        row = sa.func.jsonb_build_array(w.turn, w.run_id, w.idx, msg)
        return sa.select(sa.func.coalesce(sa.func.jsonb_agg(row), sa.text("'[]'::jsonb")))
    msg = sa.func.json_object("role", w.role, "content", sa.func.json(w.content))
    return sa.select(sa.func.json_group_array(sa.func.json_array(w.turn, w.run_id, w.idx, msg)))


#: The window's rows as the database folded them: ``[turn, run_id, idx, message]``. Parsed and
#: validated in one pass by pydantic's JSON parser: cheaper than ``json.loads`` and then a
#: ``Message.model_construct`` per row (which runs in Python), about half of the read's
#: cost at a full window (``bench/continuity.py``).
_WINDOW_ROWS: TypeAdapter[list[tuple[int, str, int, Message]]] = TypeAdapter(
    list[tuple[int, str, int, Message]]
)


async def conversation(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    before_turn: int,
    policy: ContextPolicy | None,
) -> list[Message]:
    """Saved messages of the session's runs before ``before_turn`` that count (see the store):
    all of them (``policy`` None), or the newest whole runs within ``policy``."""
    params: dict[str, Any] = {"session_id": session_id, "before_turn": before_turn}
    # The whole read is the old path, kept as it was (rows built without validation); the
    # windowed one below validates from JSON in Rust, which costs less than building.
    if policy is None:
        return [
            Message.model_construct(role=r.role, content=r.content)
            for r in await conn.execute(_CONVERSATION, params)
        ]
    # One row more than the window: if it comes back, the oldest run read may be cut short,
    # and fit_context() drops it (with the rows after it, it would exceed max_messages anyway).
    limit = policy.max_messages + 1
    folded = (await conn.execute(_window(backend), params | {"limit": limit})).scalar_one()
    rows = (
        _WINDOW_ROWS.validate_json(folded)
        if isinstance(folded, str | bytes)
        else _WINDOW_ROWS.validate_python(folded)  # a driver that decoded the JSON itself
    )
    # An aggregate's order is not promised: put them back newest first.
    rows.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
    runs: list[list[Message]] = []
    key: tuple[int, str] | None = None
    for turn, run_id, _idx, message in rows:
        if (turn, run_id) != key:
            key = (turn, run_id)
            runs.append([])
        runs[-1].append(message)
    for run in runs:
        run.reverse()  # read newest first, sent in order
    return fit_context(runs, policy, complete=len(rows) < limit)


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
