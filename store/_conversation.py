"""Conversation continuity: each run's messages, and the conversation of earlier runs."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.context import fit_runs
from agent_session_manager.core.contract import ContextPolicy, Message
from agent_session_manager.core.errors import StateError
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store._context_version import RUN_EXCLUDED_FROM_CONVERSATION, bump
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._read_models import new_run
from agent_session_manager.store._schema import COUNTERS, MESSAGES, RUNS

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
        RUNS.c.status.not_in(RUN_EXCLUDED_FROM_CONVERSATION),
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
        index_elements=["run_id"],
        set_={"session_id": RUNS.c.session_id, "context_version": ins.excluded.context_version},
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

    Bumps the session's conversation version and stamps the run with it
    (``store._context_version``). ``run_mismatch`` if the run belongs to another session.
    """
    row = new_run(run_id, session_id, now) | {
        "turn": turn,
        "status": RunStatus.RUNNING.value,
        "started_at": now,
        "context_version": await bump(conn, backend, session_id),
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
#: JSON array. One value to fetch and parse (``_WINDOW_ROWS``) instead of a driver row per
#: message. Each row carries its run's ``context_version``, so a reader keeping the window
#: (``store._context_cache``) knows which later changes it has already seen.
_NEWEST = (
    sa.select(
        MESSAGES.c.turn,
        MESSAGES.c.run_id,
        MESSAGES.c.idx,
        RUNS.c.context_version,
        MESSAGES.c.role,
        MESSAGES.c.content,
    )
    .select_from(MESSAGES.join(RUNS, RUNS.c.run_id == MESSAGES.c.run_id))
    .where(
        MESSAGES.c.session_id == sa.bindparam("session_id"),
        MESSAGES.c.turn < sa.bindparam("before_turn"),
        RUNS.c.rolled_back.is_(False),
        RUNS.c.status.not_in(RUN_EXCLUDED_FROM_CONVERSATION),
    )
    # The index's order, so the database walks it backwards and stops at ``limit``: only the
    # last run read can be cut short, and fit_context() drops it.
    .order_by(MESSAGES.c.turn.desc(), MESSAGES.c.run_id.desc(), MESSAGES.c.idx.desc())
    .limit(sa.bindparam("limit"))
    .subquery()
)


@functools.cache
def _window(backend: Backend) -> Any:
    w = _NEWEST.c
    if backend == "postgresql":
        msg = sa.func.jsonb_build_object("role", w.role, "content", w.content)
        row = sa.func.jsonb_build_array(w.turn, w.run_id, w.idx, w.context_version, msg)
        return sa.select(sa.func.coalesce(sa.func.jsonb_agg(row), sa.text("'[]'::jsonb")))
    msg = sa.func.json_object("role", w.role, "content", sa.func.json(w.content))
    row = sa.func.json_array(w.turn, w.run_id, w.idx, w.context_version, msg)
    return sa.select(sa.func.json_group_array(row))


#: A saved run's part of the conversation: its turn, id, version and messages in order.
class SavedRun(NamedTuple):
    turn: int
    run_id: str
    version: int
    messages: list[Message]


#: The window's rows as the database folded them: ``[turn, run_id, idx, version, message]``.
#: Parsed and validated in one pass by pydantic's JSON parser: cheaper than ``json.loads`` and
#: then a ``Message.model_construct`` per row (which runs in Python).
_WINDOW_ROWS: TypeAdapter[list[tuple[int, str, int, int, Message]]] = TypeAdapter(
    list[tuple[int, str, int, int, Message]]
)


def _folded(value: Any) -> list[tuple[int, str, int, int, Message]]:
    if isinstance(value, str | bytes):
        return _WINDOW_ROWS.validate_json(value)
    return _WINDOW_ROWS.validate_python(value)  # a driver that decoded the JSON itself


async def window(
    conn: AsyncConnection, backend: Backend, session_id: str, before_turn: int, limit: int
) -> tuple[list[SavedRun], bool]:
    """The newest ``limit`` counting messages below ``before_turn``, as runs newest first;
    and whether that is all of them (False: the last run given may be cut short)."""
    params = {"session_id": session_id, "before_turn": before_turn, "limit": limit}
    rows = _folded((await conn.execute(_window(backend), params)).scalar_one())
    # An aggregate's order is not promised: put them back newest first.
    rows.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
    runs: list[SavedRun] = []
    for turn, run_id, _idx, version, message in rows:
        if not runs or runs[-1].run_id != run_id or runs[-1].turn != turn:
            runs.append(SavedRun(turn, run_id, version, []))
        runs[-1].messages.append(message)
    for run in runs:
        run.messages.reverse()  # read newest first, sent in order
    return runs, len(rows) < limit


async def conversation(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    before_turn: int,
    policy: ContextPolicy | None,
) -> list[Message]:
    """Saved messages of the session's runs before ``before_turn`` that count (see the store):
    all of them (``policy`` None), or the newest whole runs within ``policy``."""
    # The whole read is the old path, kept as it was (rows built without validation); the
    # windowed one below validates from JSON in Rust, which costs less than building.
    if policy is None:
        params = {"session_id": session_id, "before_turn": before_turn}
        return [
            Message.model_construct(role=r.role, content=r.content)
            for r in await conn.execute(_CONVERSATION, params)
        ]
    runs = await fitted(conn, backend, session_id, before_turn, policy)
    return [m for run in runs for m in run.messages]


async def fitted(
    conn: AsyncConnection,
    backend: Backend,
    session_id: str,
    before_turn: int,
    policy: ContextPolicy,
) -> list[SavedRun]:
    """The newest whole runs before ``before_turn`` within ``policy``, oldest first."""
    # One row more than the window: if it comes back, the oldest run read may be cut short,
    # and fit_runs() drops it (with the rows after it, it would exceed max_messages anyway).
    runs, complete = await window(conn, backend, session_id, before_turn, policy.max_messages + 1)
    return runs[: fit_runs([r.messages for r in runs], policy, complete=complete)][::-1]


_VERSION = sa.select(COUNTERS.c.context_version).where(
    COUNTERS.c.session_id == sa.bindparam("session_id")
)


async def version(conn: AsyncConnection, session_id: str) -> int:
    """The session's conversation version (0 before its first change)."""
    found = (await conn.execute(_VERSION, {"session_id": session_id})).scalar_one_or_none()
    return int(found or 0)


#: Runs of the session stamped after a version, with their messages (none for a run that no
#: longer counts): the index on ``(session_id, context_version)`` makes it touch only them.
_CHANGED = (
    sa.select(
        RUNS.c.run_id,
        RUNS.c.context_version,
        sa.or_(
            RUNS.c.rolled_back.is_(True), RUNS.c.status.in_(RUN_EXCLUDED_FROM_CONVERSATION)
        ).label("gone"),
        MESSAGES.c.turn,
        MESSAGES.c.role,
        MESSAGES.c.content,
    )
    .select_from(RUNS.outerjoin(MESSAGES, MESSAGES.c.run_id == RUNS.c.run_id))
    .where(
        RUNS.c.session_id == sa.bindparam("session_id"),
        RUNS.c.context_version > sa.bindparam("after"),
    )
    .order_by(RUNS.c.run_id, MESSAGES.c.idx)
)


async def changed_runs(
    conn: AsyncConnection, session_id: str, after: int
) -> list[tuple[str, int, SavedRun | None]]:
    """Runs whose part of the conversation changed after version ``after``: ``(run_id,
    version, run)``, ``run`` None when the run no longer counts or has no messages."""
    out: list[tuple[str, int, SavedRun | None]] = []
    for r in await conn.execute(_CHANGED, {"session_id": session_id, "after": after}):
        if not out or out[-1][0] != r.run_id:
            counts = not r.gone and r.turn is not None
            run = SavedRun(r.turn, r.run_id, r.context_version, []) if counts else None
            out.append((r.run_id, r.context_version, run))
        run = out[-1][2]
        if run is not None:
            run.messages.append(Message.model_construct(role=r.role, content=r.content))
    return out


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


async def mark_rolled_back(
    conn: AsyncConnection, backend: Backend, run_id: str, now: datetime
) -> bool:
    """Exclude the run's messages from the conversation; False if the run is unknown."""
    session_id = (
        await conn.execute(sa.select(RUNS.c.session_id).where(RUNS.c.run_id == run_id))
    ).scalar_one_or_none()
    if session_id is None:
        return False
    version = await bump(conn, backend, session_id)  # the counter first, then the run row
    stmt = (
        sa.update(RUNS)
        .where(RUNS.c.run_id == run_id)
        .values(rolled_back=True, context_version=version, updated_at=now)
    )
    return bool((await conn.execute(stmt)).rowcount)
