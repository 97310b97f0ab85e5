"""Fleet-wide slots and rate state in SQL: the one durable component every worker shares.

Every decision that counts slots runs in one write transaction that first takes the limits
lock — ``pg_advisory_xact_lock`` on PostgreSQL, the database write lock (``BEGIN IMMEDIATE``)
on SQLite — so two workers never both see the last free slot. In it: expired leases are
deleted (their holder stopped renewing: killed, partitioned), the caller's row is inserted or
refreshed, and :func:`core.limits.grant_slots` decides which waiters get a slot, fairly across
tenants; granted rows become ``held``. Waiters granted by another worker's transaction find
themselves ``held`` on their next poll.

Times are epoch seconds from the callers' clocks (workers keep NTP time; a skew of a few
seconds only shifts when a dead holder's lease is reclaimed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.errors import ConcurrencyError
from agent_session_manager.core.limits import (
    LimitSlot,
    SlotGrant,
    bucket_take,
    grant_slots,
    queue_position,
)
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import RATE_STATE, SESSIONS, SLOT_LEASES

#: The advisory lock every slot decision takes on PostgreSQL (an arbitrary, fixed number).
_PG_LOCK_KEY = 0x61736D6C  # "asml"

#: Session statuses that no longer hold a session slot.
_SESSION_ENDED = ("completed", "failed", "cancelled")

Kind = Literal["run", "session"]


@dataclass(frozen=True)
class SlotRequest:
    """A run (or session) asking for a slot in ``scopes`` (scope -> limit)."""

    lease_id: str
    kind: Kind
    holder: str
    scopes: dict[str, int]
    tenant: str = ""
    session_id: str = ""


@dataclass(frozen=True)
class SlotState:
    """Where a request stands: holding its slot, or waiting at ``position`` (1 = next)."""

    held: bool
    position: int | None = None
    #: Scopes that are full for this request right now (why it waits).
    blocked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LeaseInfo:
    lease_id: str
    kind: str
    holder: str
    session_id: str
    tenant: str
    scopes: dict[str, int]
    state: str
    enqueued_at: float
    acquired_at: float | None
    expires_at: float | None


@dataclass(frozen=True)
class RateInfo:
    key: str
    cooldown_until: float
    reason: str
    tokens: float
    updated_at: float


async def _lock(conn: AsyncConnection, backend: Backend) -> None:
    if backend == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: the writer's BEGIN IMMEDIATE already holds the database's write lock.


async def _expire(conn: AsyncConnection, now: float) -> None:
    c = SLOT_LEASES.c
    await conn.execute(sa.delete(SLOT_LEASES).where(c.expires_at.is_not(None), c.expires_at < now))


async def acquire(
    conn: AsyncConnection, backend: Backend, req: SlotRequest, now: float, expires_at: float | None
) -> SlotState:
    """Insert or refresh ``req``'s row, grant what fits, and say where ``req`` stands."""
    await _lock(conn, backend)
    await _expire(conn, now)
    c = SLOT_LEASES.c
    own = (await conn.execute(sa.select(c.state).where(c.lease_id == req.lease_id))).first()
    if own is None:
        await conn.execute(
            sa.insert(SLOT_LEASES).values(
                lease_id=req.lease_id,
                kind=req.kind,
                holder=req.holder,
                session_id=req.session_id,
                tenant=req.tenant,
                scopes=req.scopes,
                state="waiting",
                enqueued_at=now,
                acquired_at=None,
                expires_at=expires_at,
            )
        )
    else:
        # The same run again (a retried attempt, maybe on another worker after this one's
        # holder died): it takes over its own row, so one run never counts twice.
        await conn.execute(
            sa.update(SLOT_LEASES)
            .where(c.lease_id == req.lease_id)
            .values(holder=req.holder, expires_at=expires_at, scopes=req.scopes)
        )
        if own.state == "held":
            return SlotState(held=True)
    slots, decision = await _grant(conn, backend, req.kind, now)
    if req.lease_id in decision.granted:
        return SlotState(held=True)
    in_use: dict[str, int] = {}
    for s in slots:
        if s.held or s.id in decision.granted:
            for k in s.scopes:
                in_use[k] = in_use.get(k, 0) + 1
    blocked = [k for k, n in req.scopes.items() if in_use.get(k, 0) >= n]
    place = queue_position(decision.order, req.lease_id)
    return SlotState(held=False, position=place, blocked=blocked)


async def _grant(
    conn: AsyncConnection, backend: Backend, kind: str, now: float
) -> tuple[list[LimitSlot], SlotGrant]:
    """Grant what fits among ``kind``'s waiters (caller holds the limits lock)."""
    c = SLOT_LEASES.c
    rows = (
        await conn.execute(
            sa.select(c.lease_id, c.tenant, c.scopes, c.enqueued_at, c.state).where(c.kind == kind)
        )
    ).all()
    slots = [
        LimitSlot(
            id=r.lease_id,
            tenant=r.tenant,
            scopes=dict(r.scopes or {}),
            enqueued_at=float(r.enqueued_at),
            held=r.state == "held",
        )
        for r in rows
    ]
    served = await _served(conn, kind, {s.tenant for s in slots})
    decision = grant_slots(slots, served)
    if decision.granted:
        await conn.execute(
            sa.update(SLOT_LEASES)
            .where(c.lease_id.in_(decision.granted))
            .values(state="held", acquired_at=now)
        )
        await _set_served(conn, backend, kind, served, decision.served)
    return slots, decision


def _served_key(kind: str, tenant: str) -> str:
    return f"served/{kind}/{tenant}"


async def _served(conn: AsyncConnection, kind: str, tenants: set[str]) -> dict[str, float]:
    """When each tenant was last granted a slot (an ordinal kept in ``tokens``)."""
    r = RATE_STATE.c
    keys = {_served_key(kind, t): t for t in tenants}
    rows = (await conn.execute(sa.select(r.key, r.tokens).where(r.key.in_(list(keys))))).all()
    return {keys[row.key]: float(row.tokens) for row in rows}


async def _set_served(
    conn: AsyncConnection,
    backend: Backend,
    kind: str,
    before: dict[str, float],
    after: dict[str, float],
) -> None:
    for tenant, tick in after.items():
        if before.get(tenant) == tick:
            continue
        stmt = dialect_insert(backend, RATE_STATE).values(
            key=_served_key(kind, tenant),
            cooldown_until=0.0,
            reason="",
            tokens=tick,
            updated_at=0.0,
        )
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["key"], set_={"tokens": tick})
        )


async def renew(conn: AsyncConnection, lease_id: str, holder: str, expires_at: float) -> bool:
    """Push the lease's expiry out; ``False`` when it is gone or held by someone else."""
    c = SLOT_LEASES.c
    result = await conn.execute(
        sa.update(SLOT_LEASES)
        .where(c.lease_id == lease_id, c.holder == holder)
        .values(expires_at=expires_at)
    )
    return bool(result.rowcount)


async def release(
    conn: AsyncConnection, backend: Backend, lease_id: str, holder: str | None, now: float
) -> None:
    """Delete the lease (only the holder's own, when ``holder`` is given) and hand the freed
    slot to the next waiter in the same commit: waiters only read their row to learn it."""
    await _lock(conn, backend)
    c = SLOT_LEASES.c
    stmt = sa.delete(SLOT_LEASES).where(c.lease_id == lease_id)
    if holder is not None:
        stmt = stmt.where(c.holder == holder)
    result = await conn.execute(stmt)
    if result.rowcount:
        await _expire(conn, now)
        await _grant(conn, backend, "run", now)


async def slot_state(conn: AsyncConnection, lease_id: str, holder: str) -> str | None:
    """``held`` or ``waiting`` for the holder's own row; None when it is not (or no longer)
    theirs. A plain read: a waiter polls with it, without the limits lock."""
    c = SLOT_LEASES.c
    row = (
        await conn.execute(sa.select(c.state).where(c.lease_id == lease_id, c.holder == holder))
    ).first()
    return None if row is None else str(row.state)


async def admit_session(
    conn: AsyncConnection, backend: Backend, req: SlotRequest, now: float
) -> None:
    """Hold a session slot for ``req``, or raise ``max_sessions_exceeded``.

    Idempotent: a session that holds its slot holds it still (a replayed claim). A session
    whose row says it ended no longer counts, whether or not its lease was deleted (a
    terminated workflow never records its end: its lease is reclaimed here).
    """
    await _lock(conn, backend)
    c = SLOT_LEASES.c
    if (await conn.execute(sa.select(c.lease_id).where(c.lease_id == req.lease_id))).first():
        return
    ended = sa.select(SESSIONS.c.session_id).where(
        SESSIONS.c.session_id == c.session_id, SESSIONS.c.status.in_(_SESSION_ENDED)
    )
    await conn.execute(sa.delete(SLOT_LEASES).where(c.kind == "session", ended.exists()))
    rows = (await conn.execute(sa.select(c.scopes).where(c.kind == "session"))).all()
    for scope, limit in req.scopes.items():
        used = sum(1 for r in rows if scope in (r.scopes or {}))
        if used >= limit:
            raise ConcurrencyError(
                "max_sessions_exceeded",
                f"{used} of {limit} sessions active in scope {scope!r}: complete or cancel a "
                "session first, or ask the operator to raise the limit (asm limits)",
                details={"scope": scope, "limit": limit, "active": used},
            )
    await conn.execute(
        sa.insert(SLOT_LEASES).values(
            lease_id=req.lease_id,
            kind="session",
            holder=req.holder,
            session_id=req.session_id,
            tenant=req.tenant,
            scopes=req.scopes,
            state="held",
            enqueued_at=now,
            acquired_at=now,
            expires_at=None,
        )
    )


async def set_cooldown(
    conn: AsyncConnection, backend: Backend, key: str, until: float, reason: str
) -> float:
    """Extend ``key``'s cooldown to ``until`` (never shortens it); the cooldown that stands."""
    r = RATE_STATE.c
    stmt = dialect_insert(backend, RATE_STATE).values(
        key=key, cooldown_until=until, reason=reason[:255], tokens=0.0, updated_at=0.0
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "cooldown_until": sa.case(
                (r.cooldown_until < stmt.excluded.cooldown_until, stmt.excluded.cooldown_until),
                else_=r.cooldown_until,
            ),
            "reason": sa.case(
                (r.cooldown_until < stmt.excluded.cooldown_until, stmt.excluded.reason),
                else_=r.reason,
            ),
        },
    )
    await conn.execute(stmt)
    row = (await conn.execute(sa.select(r.cooldown_until).where(r.key == key))).one()
    return float(row.cooldown_until)


async def cooldown(conn: AsyncConnection, keys: list[str]) -> float:
    """The latest cooldown among ``keys`` (0 when none)."""
    r = RATE_STATE.c
    row = (
        await conn.execute(sa.select(sa.func.max(r.cooldown_until)).where(r.key.in_(keys)))
    ).first()
    return float(row[0]) if row is not None and row[0] is not None else 0.0


async def take_token(
    conn: AsyncConnection, backend: Backend, key: str, rpm: int, now: float
) -> float:
    """Take one call from ``key``'s per-minute budget; 0, or seconds until one is there."""
    await _lock(conn, backend)
    r = RATE_STATE.c
    row = (await conn.execute(sa.select(r.tokens, r.updated_at).where(r.key == key))).first()
    if row is None or row.updated_at == 0.0:
        tokens, updated = float(rpm), now  # a new bucket starts full, as the provider's does
    else:
        tokens, updated = float(row.tokens), float(row.updated_at)
    tokens, updated, wait = bucket_take(tokens, updated, now, rpm)
    stmt = dialect_insert(backend, RATE_STATE).values(
        key=key, cooldown_until=0.0, reason="", tokens=tokens, updated_at=updated
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["key"], set_={"tokens": tokens, "updated_at": updated}
        )
    )
    return wait


async def leases(conn: AsyncConnection, now: float) -> list[LeaseInfo]:
    """Every live lease and waiter (expired ones left out)."""
    c = SLOT_LEASES.c
    rows = (
        await conn.execute(
            sa.select(SLOT_LEASES)
            .where(sa.or_(c.expires_at.is_(None), c.expires_at >= now))
            .order_by(c.enqueued_at)
        )
    ).all()
    return [
        LeaseInfo(
            lease_id=r.lease_id,
            kind=r.kind,
            holder=r.holder,
            session_id=r.session_id,
            tenant=r.tenant,
            scopes=dict(r.scopes or {}),
            state=r.state,
            enqueued_at=float(r.enqueued_at),
            acquired_at=None if r.acquired_at is None else float(r.acquired_at),
            expires_at=None if r.expires_at is None else float(r.expires_at),
        )
        for r in rows
    ]


async def rate_states(conn: AsyncConnection) -> list[RateInfo]:
    r = RATE_STATE.c
    rows = (
        await conn.execute(sa.select(RATE_STATE).where(r.key.not_like("served/%")).order_by(r.key))
    ).all()
    return [
        RateInfo(
            key=x.key,
            cooldown_until=float(x.cooldown_until),
            reason=x.reason,
            tokens=float(x.tokens),
            updated_at=float(x.updated_at),
        )
        for x in rows
    ]


def release_session_stmt(session_id: str) -> Any:
    """The delete that frees a session's slot (run with its terminal record)."""
    return sa.delete(SLOT_LEASES).where(SLOT_LEASES.c.lease_id == session_lease_id(session_id))


def session_lease_id(session_id: str) -> str:
    return f"session:{session_id}"[:255]
