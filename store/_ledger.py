"""The cost ledger's writes and read models (``core.ledger``): one row per provider attempt.

Writes are idempotent: a row is inserted once per ``(run_id, step, attempt)`` (``DO NOTHING`` on a
second write: the first one is the attempt's word, a retried write after a commit in doubt
changes nothing), and marking earlier failed attempts ``superseded`` is a set. Totals are
``SUM``/``COUNT`` over indexed ranges; nothing is cached, so a total is never stale.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.budget import Spend
from agent_session_manager.core.ledger import USAGE_GROUPS, LedgerEntry, UsageGroup, UsageTotal
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store._engine import Backend, dialect_insert
from agent_session_manager.store._schema import LEDGER

GROUPS = USAGE_GROUPS
#: Filter values land in ``varchar(255)`` comparisons.
MAX_KEY_CHARS = 255
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

_GROUP_COLUMNS: dict[UsageGroup, sa.ColumnElement[Any]] = {
    "run": LEDGER.c.run_id,
    "session": LEDGER.c.session_id,
    "agent": LEDGER.c.agent_id,
    "tenant": LEDGER.c.tenant,
    "day": LEDGER.c.day,
    "model": LEDGER.c.model,
}

_SUMS = (
    sa.func.count().label("attempts"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.input_tokens), 0).label("input_tokens"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.output_tokens), 0).label("output_tokens"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.cache_write_tokens), 0).label("cache_write"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.cache_read_tokens), 0).label("cache_read"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.thinking_tokens), 0).label("thinking"),
    sa.func.coalesce(sa.func.sum(LEDGER.c.cost_micros), 0).label("cost_micros"),
    sa.func.count().filter(LEDGER.c.cost_micros.is_(None)).label("unpriced"),
)


@functools.cache
def _insert(backend: Backend) -> Any:
    return dialect_insert(backend, LEDGER).on_conflict_do_nothing(
        index_elements=["run_id", "step", "attempt"]
    )


def _row(entry: LedgerEntry, now: datetime) -> dict[str, Any]:
    usage = entry.usage
    return {
        "run_id": entry.run_id,
        "step": entry.step,
        "attempt": entry.attempt,
        "session_id": entry.session_id,
        "agent_id": entry.agent_id,
        "tenant": entry.tenant,
        "provider": entry.provider,
        "model": entry.model,
        "credential": entry.credential,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_write_tokens": usage.cache_creation_input_tokens,
        "cache_read_tokens": usage.cache_read_input_tokens,
        "thinking_tokens": entry.thinking_tokens,
        "total_tokens": usage.total_tokens,
        "cost_micros": entry.cost_micros,
        "price_version": entry.price_version,
        "outcome": entry.outcome,
        "error_code": entry.error_code,
        "day": entry.day,
        "created_at": now,
    }


def _total(group: UsageGroup, key: str | None, row: Any) -> UsageTotal:
    return UsageTotal(
        group=group,
        key=key,
        attempts=int(row.attempts),
        usage=TokenUsage(
            input_tokens=int(row.input_tokens),
            output_tokens=int(row.output_tokens),
            cache_creation_input_tokens=int(row.cache_write),
            cache_read_input_tokens=int(row.cache_read),
        ),
        thinking_tokens=int(row.thinking),
        cost_micros=int(row.cost_micros),
        unpriced_attempts=int(row.unpriced),
    )


async def bill(
    conn: AsyncConnection, backend: Backend, entry: LedgerEntry, now: datetime, *, alone: bool
) -> UsageTotal:
    """Write ``entry`` (once); on a completed attempt mark the failed attempts before it of
    the same model call (step) superseded. Returns the run's total over every step and
    attempt. ``alone=False``: the run may have a row before its first call's first attempt
    (a summary's, step 0)."""
    inserted = (await conn.execute(_insert(backend), _row(entry, now))).rowcount == 1
    if entry.outcome == "completed" and entry.attempt > 1:  # a first attempt has none before it
        await conn.execute(
            LEDGER.update()
            .where(
                LEDGER.c.run_id == entry.run_id,
                LEDGER.c.step == entry.step,
                LEDGER.c.attempt < entry.attempt,
                LEDGER.c.outcome == "failed",
            )
            .values(outcome="superseded")
        )
    if inserted and alone and entry.step == 1 and entry.attempt == 1:
        # The run's first row (every later call and attempt comes after it): the total is
        # this row, no need to read it back. A repeated write (nothing inserted) reads.
        return _entry_total(entry)
    return await run_total(conn, entry.run_id)


def _entry_total(entry: LedgerEntry) -> UsageTotal:
    """``run_total`` of a run whose only row is ``entry``."""
    return UsageTotal(
        group="run",
        key=entry.run_id,
        attempts=1,
        usage=TokenUsage(
            input_tokens=entry.usage.input_tokens,
            output_tokens=entry.usage.output_tokens,
            cache_creation_input_tokens=entry.usage.cache_creation_input_tokens,
            cache_read_input_tokens=entry.usage.cache_read_input_tokens,
        ),
        thinking_tokens=entry.thinking_tokens or 0,
        cost_micros=entry.cost_micros or 0,
        unpriced_attempts=1 if entry.cost_micros is None else 0,
    )


async def run_total(conn: AsyncConnection, run_id: str) -> UsageTotal:
    """Every step and attempt of ``run_id`` summed."""
    row = (await conn.execute(sa.select(*_SUMS).where(LEDGER.c.run_id == run_id))).one()
    return _total("run", run_id, row)


def _filters(
    *,
    run_id: str | None = None,
    session_id: str | None = None,
    agent_id: str | None = None,
    tenant: str | None = None,
    day: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    for column, value in (
        (LEDGER.c.run_id, run_id),
        (LEDGER.c.session_id, session_id),
        (LEDGER.c.agent_id, agent_id),
        (LEDGER.c.tenant, tenant),
        (LEDGER.c.day, day),
    ):
        if value is not None:
            conds.append(column == value)
    if since is not None:
        conds.append(LEDGER.c.day >= since)
    if until is not None:
        conds.append(LEDGER.c.day <= until)
    return conds


async def spend(conn: AsyncConnection, **filters: str | None) -> Spend:
    """Tokens and money spent by the attempts matching ``filters`` (see :func:`_filters`)."""
    stmt = sa.select(
        sa.func.coalesce(sa.func.sum(LEDGER.c.total_tokens), 0),
        sa.func.coalesce(sa.func.sum(LEDGER.c.cost_micros), 0),
    ).where(*_filters(**filters))
    tokens, cost = (await conn.execute(stmt)).one()
    return Spend(tokens=int(tokens), cost_micros=int(cost))


async def last_call(conn: AsyncConnection, session_id: str) -> Spend:
    """The session's most recent attempt (what a budget check projects the next call at)."""
    stmt = (
        sa.select(LEDGER.c.total_tokens, LEDGER.c.cost_micros)
        .where(LEDGER.c.session_id == session_id)
        .order_by(LEDGER.c.created_at.desc(), LEDGER.c.step.desc(), LEDGER.c.attempt.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).one_or_none()
    if row is None:
        return Spend()
    return Spend(tokens=int(row[0]), cost_micros=int(row[1] or 0))


async def totals(
    conn: AsyncConnection, group: UsageGroup, limit: int, **filters: str | None
) -> list[UsageTotal]:
    """The matching attempts summed per ``group``, most expensive first (then most tokens)."""
    column = _GROUP_COLUMNS[group]
    cost = sa.func.coalesce(sa.func.sum(LEDGER.c.cost_micros), 0)
    tokens = sa.func.coalesce(sa.func.sum(LEDGER.c.total_tokens), 0)
    stmt = (
        sa.select(column.label("key"), *_SUMS)
        .where(*_filters(**filters))
        .group_by(column)
        .order_by(cost.desc(), tokens.desc(), column)
        .limit(limit)
    )
    rows = (await conn.execute(stmt)).all()
    return [_total(group, None if r.key is None else str(r.key), r) for r in rows]


async def entries(conn: AsyncConnection, limit: int, **filters: str | None) -> list[LedgerEntry]:
    """The matching rows, oldest first."""
    stmt = (
        sa.select(LEDGER)
        .where(*_filters(**filters))
        .order_by(LEDGER.c.created_at, LEDGER.c.run_id, LEDGER.c.step, LEDGER.c.attempt)
        .limit(limit)
    )
    return [
        LedgerEntry(
            run_id=r.run_id,
            step=r.step,
            attempt=r.attempt,
            session_id=r.session_id,
            agent_id=r.agent_id,
            tenant=r.tenant,
            provider=r.provider,
            model=r.model,
            credential=r.credential,
            usage=TokenUsage(
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                cache_creation_input_tokens=r.cache_write_tokens,
                cache_read_input_tokens=r.cache_read_tokens,
            ),
            thinking_tokens=r.thinking_tokens,
            cost_micros=r.cost_micros,
            price_version=r.price_version,
            outcome=r.outcome,
            error_code=r.error_code,
            day=r.day,
            created_at=r.created_at,
        )
        for r in (await conn.execute(stmt)).all()
    ]
