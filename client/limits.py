"""What the fleet-wide limits look like right now: ``asm limits`` and ``asm session show``.

The configuration is the deployment's (``ASM_LIMITS`` / ``ASM_LIMITS_FILE``, as the workers
read it); the state is the store's: held slots and waiters per scope, cooldowns and per-minute
budgets per credential. Read-only: nothing here takes or frees a slot.
"""

from __future__ import annotations

import time
from collections import Counter

from pydantic import BaseModel, Field

from agent_session_manager.core.limits import Limits
from agent_session_manager.store import EventStore, LeaseInfo


class ScopeUse(BaseModel):
    """One scope: its limit, the slots held and the waiters."""

    scope: str
    limit: int
    held: int
    waiting: int
    #: Per tenant: slots held and waiters (tenant ``""`` is the default tenant).
    tenants: dict[str, tuple[int, int]] = Field(default_factory=dict)


class RateUse(BaseModel):
    """One credential (and model): its cooldown left and its per-minute budget left."""

    key: str
    cooldown_seconds: float
    reason: str
    tokens: float | None = None


class Waiter(BaseModel):
    """A lease or waiter of one session's run (``asm session show``)."""

    lease_id: str
    state: str
    tenant: str
    scopes: list[str]
    waited_seconds: float


class LimitsReport(BaseModel):
    """Configuration and live state of the fleet-wide limits."""

    limits: Limits
    sessions: list[ScopeUse] = Field(default_factory=list)
    runs: list[ScopeUse] = Field(default_factory=list)
    rates: list[RateUse] = Field(default_factory=list)


def _scopes(leases: list[LeaseInfo], kind: str) -> list[ScopeUse]:
    limit: dict[str, int] = {}
    held: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    tenants: dict[str, dict[str, list[int]]] = {}
    for x in leases:
        if x.kind != kind:
            continue
        for scope, n in x.scopes.items():
            limit[scope] = min(n, limit.get(scope, n))
            counts = tenants.setdefault(scope, {}).setdefault(x.tenant, [0, 0])
            if x.state == "held":
                held[scope] += 1
                counts[0] += 1
            else:
                waiting[scope] += 1
                counts[1] += 1
    return [
        ScopeUse(
            scope=s,
            limit=limit[s],
            held=held[s],
            waiting=waiting[s],
            tenants={t: (c[0], c[1]) for t, c in sorted(tenants[s].items())},
        )
        for s in sorted(limit)
    ]


async def limits_report(store: EventStore, limits: Limits) -> LimitsReport:
    """The limits ``limits`` and what the store holds against them now."""
    now = time.time()
    leases = await store.leases(now=now)
    rates = [
        RateUse(
            key=r.key,
            cooldown_seconds=round(max(r.cooldown_until - now, 0.0), 3),
            reason=r.reason if r.cooldown_until > now else "",
            tokens=round(r.tokens, 3) if r.updated_at else None,
        )
        for r in await store.rate_states()
    ]
    return LimitsReport(
        limits=limits,
        sessions=_scopes(leases, "session"),
        runs=_scopes(leases, "run"),
        rates=[r for r in rates if r.cooldown_seconds > 0 or r.tokens is not None],
    )


async def session_waiters(store: EventStore, session_id: str) -> list[Waiter]:
    """The run slots a session's runs hold or wait for (its session slot too)."""
    now = time.time()
    return [
        Waiter(
            lease_id=x.lease_id,
            state=x.state,
            tenant=x.tenant,
            scopes=sorted(x.scopes),
            waited_seconds=round(max(now - x.enqueued_at, 0.0), 1),
        )
        for x in await store.leases(now=now)
        if x.session_id == session_id
    ]
