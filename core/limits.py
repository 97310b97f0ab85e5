"""Fleet-wide limits: the configuration, the scopes a run or session counts against, and the
fair grant decision, as pure code (the store applies it under its lock, :mod:`store._limits`).

Limits are per deployment (``ASM_LIMITS`` / ``ASM_LIMITS_FILE``, read by every worker), not per
session: a session's own ``max_concurrent_runs`` still applies first, inside the session.

Scopes::

    sessions                    every active session
    sessions/agent/<agent_id>   active sessions of one agent
    sessions/tenant/<tenant>    active sessions of one tenant
    runs                        every run calling a provider
    runs/provider/<provider>    …of one provider
    runs/model/<provider>/<m>   …of one model
    runs/credential/<id>        …with one credential (a hash of the worker's key and base URL)
    runs/tenant/<tenant>        …of one tenant

A session's tenant is the value of its tag ``tenant:<name>`` (:func:`core.budget.tenant_of`); a
session without one is in the default tenant ``""``.

Grant order (:func:`grant_slots`): among the waiters whose every scope has room, the one whose
tenant holds the fewest slots goes first; among tenants holding as many, the one served least
recently (so tenants take turns, whoever queued more or first); within a tenant, FIFO. So a
tenant with a hundred queued runs gets no more slots than a tenant with one, as long as both
wait. A waiter blocked by a scope of its own (its model is full) does not
block a waiter behind it (the grant is work-conserving).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agent_session_manager.core.config_text import parse_config

#: A limit at most: far above any real fleet, far below an integer column's range.
MAX_LIMIT = 1_000_000
#: Per-provider and per-model limit tables hold at most this many entries.
MAX_LIMIT_ENTRIES = 256
#: A scope key at most (the store's column is varchar(512)).
MAX_SCOPE_CHARS = 512

#: What a start past a session limit does.
SessionOverflow = Literal["reject", "queue"]

_Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]


def _names(v: dict[str, int]) -> dict[str, int]:
    if len(v) > MAX_LIMIT_ENTRIES:
        raise ValueError(f"at most {MAX_LIMIT_ENTRIES} entries, got {len(v)}")
    for name in v:
        if not name.strip() or len(name) > 255:
            raise ValueError(f"names are 1 to 255 characters, got {name[:80]!r}")
    return v


_LimitTable = Annotated[dict[str, _Limit], AfterValidator(_names)]


class Limits(BaseModel):
    """The deployment's limits; every one is off (``None`` / empty) unless configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_sessions: _Limit | None = Field(default=None, description="active sessions in all")
    max_sessions_per_agent: _Limit | None = Field(default=None, description="…per agent_id")
    max_sessions_per_tenant: _Limit | None = Field(default=None, description="…per tenant")
    session_overflow: SessionOverflow = Field(
        default="reject",
        description="a start past a session limit: 'reject' (max_sessions_exceeded) or 'queue' "
        "(the session stays pending until a slot frees)",
    )
    max_runs: _Limit | None = Field(default=None, description="concurrent provider calls in all")
    max_runs_per_provider: _LimitTable = Field(default_factory=dict)
    max_runs_per_model: _LimitTable = Field(
        default_factory=dict, description="keys are '<provider>/<model>'"
    )
    max_runs_per_credential: _Limit | None = None
    max_runs_per_tenant: _Limit | None = None
    rpm_per_credential: _Limit | None = Field(
        default=None, description="provider calls per minute per credential (token bucket)"
    )
    default_cooldown_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        allow_inf_nan=False,
        description="cooldown after a 429/529 that named no retry-after",
    )
    share_cooldowns: bool = Field(
        default=True,
        description="a 429/529 seen by one worker makes every worker wait (one read per call)",
    )
    poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=60,
        allow_inf_nan=False,
        description="how often a waiting run asks the store again",
    )

    @property
    def runs_limited(self) -> bool:
        """Whether any run slot, cooldown budget or RPM budget needs the store."""
        return bool(
            self.max_runs
            or self.max_runs_per_provider
            or self.max_runs_per_model
            or self.max_runs_per_credential
            or self.max_runs_per_tenant
        )

    @property
    def active(self) -> bool:
        """Whether the provider activity consults the store at all."""
        return self.runs_limited or bool(self.rpm_per_credential) or self.share_cooldowns

    @property
    def sessions_limited(self) -> bool:
        """Whether a session start needs a session slot."""
        return bool(
            self.max_sessions or self.max_sessions_per_agent or self.max_sessions_per_tenant
        )


def parse_limits(text: str | None, origin: str, *, toml: bool = False) -> Limits:
    """The limits in ``text`` (JSON, or TOML for a ``.toml`` file; blank: none); a
    ``validation_error`` naming ``origin`` otherwise."""
    return parse_config(
        Limits,
        text,
        origin,
        expected='a limits configuration like {"max_runs": 5, "rpm_per_credential": 50} '
        "(see docs/limits.md)",
        syntax="toml" if toml else "json",
    )


def credential_id(provider: str, secrets: Mapping[str, str]) -> str:
    """A stable, non-secret name for the credential a worker calls ``provider`` with.

    Every worker holding the same key and base URL for a provider computes the same id, so
    they share its cooldowns and budgets; the id is a short digest, never the key.
    """
    digest = hashlib.sha256(provider.encode())
    for name in sorted(secrets):
        digest.update(b"\0" + name.encode() + b"=" + secrets[name].encode())
    return f"{provider[:64]}:{digest.hexdigest()[:16]}"


def _scope(*parts: str) -> str:
    return "/".join(parts)[:MAX_SCOPE_CHARS]


def run_scopes(
    limits: Limits, *, provider: str, model: str, credential: str, tenant: str
) -> dict[str, int]:
    """The scopes a provider call counts against, each with its limit (configured ones only)."""
    scopes: dict[str, int] = {}
    if limits.max_runs:
        scopes["runs"] = limits.max_runs
    if (n := limits.max_runs_per_provider.get(provider)) is not None:
        scopes[_scope("runs", "provider", provider)] = n
    if (n := limits.max_runs_per_model.get(f"{provider}/{model}")) is not None:
        scopes[_scope("runs", "model", provider, model)] = n
    if limits.max_runs_per_credential:
        scopes[_scope("runs", "credential", credential)] = limits.max_runs_per_credential
    if limits.max_runs_per_tenant:
        scopes[_scope("runs", "tenant", tenant)] = limits.max_runs_per_tenant
    return scopes


def session_scopes(limits: Limits, *, agent_id: str, tenant: str) -> dict[str, int]:
    """The scopes an active session counts against, each with its limit."""
    scopes: dict[str, int] = {}
    if limits.max_sessions:
        scopes["sessions"] = limits.max_sessions
    if limits.max_sessions_per_agent:
        scopes[_scope("sessions", "agent", agent_id)] = limits.max_sessions_per_agent
    if limits.max_sessions_per_tenant:
        scopes[_scope("sessions", "tenant", tenant)] = limits.max_sessions_per_tenant
    return scopes


def cooldown_key(credential: str, model: str) -> str:
    """Where a rate-limit cooldown is kept: per credential and model."""
    return _scope(credential, model)


@dataclass(frozen=True)
class LimitSlot:
    """A lease or a waiter as the grant sees it."""

    id: str
    tenant: str
    scopes: Mapping[str, int]
    enqueued_at: float
    held: bool = False


@dataclass(frozen=True)
class SlotGrant:
    """What :func:`grant_slots` decides: waiters to grant now, and the order of the rest."""

    granted: list[str] = field(default_factory=list)
    #: The waiters left, in the order they would be served if slots freed one by one.
    order: list[LimitSlot] = field(default_factory=list)
    #: Each tenant's last service (an ordinal): ``served`` as it stands after these grants.
    served: dict[str, float] = field(default_factory=dict)


def _limit_of(slots: Sequence[LimitSlot]) -> dict[str, int]:
    # Workers may disagree (a deploy rolling out a new limit): the strictest one counts.
    limits: dict[str, int] = {}
    for s in slots:
        for scope, n in s.scopes.items():
            limits[scope] = min(n, limits.get(scope, n))
    return limits


def grant_slots(slots: Sequence[LimitSlot], served: Mapping[str, float] | None = None) -> SlotGrant:
    """Which waiters get a slot now, fairly across tenants (see the module docstring).

    ``served``: when each tenant was last granted a slot (never: absent); the grants made
    here count as later than all of them, in order.
    """
    last = dict(served or {})
    tick = max(last.values(), default=0.0)
    limits = _limit_of(slots)
    in_use: Counter[str] = Counter()
    by_tenant: Counter[str] = Counter()
    for s in slots:
        if s.held:
            in_use.update(s.scopes.keys())
            by_tenant[s.tenant] += 1
    waiting = sorted((s for s in slots if not s.held), key=lambda s: (s.enqueued_at, s.id))
    granted: list[str] = []
    while True:
        fits = [s for s in waiting if all(in_use[k] < limits[k] for k in s.scopes)]
        if not fits:
            break
        # min() keeps the first of equals: within a tenant, the earliest arrival.
        chosen = min(fits, key=lambda s: (by_tenant[s.tenant], last.get(s.tenant, -1.0)))
        waiting.remove(chosen)
        granted.append(chosen.id)
        in_use.update(chosen.scopes.keys())
        by_tenant[chosen.tenant] += 1
        tick += 1.0
        last[chosen.tenant] = tick
    order: list[LimitSlot] = []
    virtual, virtual_last = Counter(by_tenant), dict(last)
    rest = list(waiting)
    while rest:
        chosen = min(rest, key=lambda s: (virtual[s.tenant], virtual_last.get(s.tenant, -1.0)))
        rest.remove(chosen)
        virtual[chosen.tenant] += 1
        tick += 1.0
        virtual_last[chosen.tenant] = tick
        order.append(chosen)
    return SlotGrant(granted=granted, order=order, served=last)


def queue_position(order: Sequence[LimitSlot], slot_id: str) -> int | None:
    """A waiter's place in ``order`` (1: next) among the waiters it competes with: those
    sharing one of its scopes. None when it is not waiting."""
    ahead = 0
    mine = next((s for s in order if s.id == slot_id), None)
    if mine is None:
        return None
    for s in order:
        if s.id == slot_id:
            return ahead + 1
        if not mine.scopes.keys().isdisjoint(s.scopes.keys()):
            ahead += 1
    return None


def bucket_take(
    tokens: float, updated_at: float, now: float, rpm: int
) -> tuple[float, float, float]:
    """A request-per-minute token bucket (capacity ``rpm``, refilled continuously, as the
    providers count): ``(tokens_after, updated_at_after, wait_seconds)``. ``wait_seconds`` is
    0 when a token was taken, else how long until one is there (nothing taken)."""
    rate = rpm / 60.0
    elapsed = max(0.0, now - updated_at)
    level = min(float(rpm), tokens + elapsed * rate)
    if level >= 1.0:
        return level - 1.0, now, 0.0
    return level, now, max((1.0 - level) / rate, 0.001)


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index of ``values``: 1 when equal, 1/n when one takes everything."""
    if not values or not any(values):
        return 1.0
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def finite_delay(seconds: float | None, default: float, cap: float = 3600.0) -> float:
    """A provider's retry-after as a usable delay: ``default`` when absent, capped."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return default
    return min(seconds, cap)
