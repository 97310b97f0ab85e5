"""Spending budgets, and the pure decision whether a provider call may go ahead.

A budget limits tokens, money (micro-dollars), or both, over a window:

* **per session** — the session's whole life: ``SessionSpec.budget``, or the worker's
  :attr:`BudgetPolicy.session` for every session that has none;
* **per agent per day** — :attr:`BudgetPolicy.agents` (key: the agent id, ``"*"`` for any
  agent), over the UTC day;
* **per tenant per day** — :attr:`BudgetPolicy.tenants` (key: the tenant, ``"*"`` for any);
  a session's tenant is its tag ``tenant:<name>`` (:func:`tenant_of`).

The provider activity checks every budget that applies *before each call* (so before each
turn of an agent loop, which calls the activity once per model turn). What a call will cost is
not known before it is made; the check projects it as the session's last call (a conversation
only grows, so its next call is at least as large) and refuses the call when the spend so far
plus that projection would pass a limit — or when the limit is already reached. A session's
first call is projected as free, so without history one call can pass a limit by its own size;
every later one is stopped before it would. Spend comes from the cost ledger, which counts
every attempt (failed, cancelled and superseded ones too): what the providers bill.

A refused call fails its run with ``budget_exceeded`` (resource, non-retryable). At
``warn_at`` of a limit (projected), the attempt records a budget warning.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_session_manager.core.config_text import parse_config
from agent_session_manager.core.errors import AsmError, error

#: Token and money limits: positive, and inside the ledger's 64-bit columns with room to add.
_MAX_LIMIT = 2**62
#: The prefix of the session tag that names its tenant.
TENANT_TAG_PREFIX = "tenant:"
#: Agent ids and tenants are names (``varchar(255)`` in the ledger); ``"*"`` matches any.
_Key = Annotated[str, Field(min_length=1, max_length=255)]
#: How many agent or tenant budgets one policy may hold (each is a ledger query per call).
_MAX_KEYS = 1000

#: What a budget applies to: one session (its whole life), an agent or a tenant (per UTC day).
Scope = Literal["session", "agent", "tenant"]
#: What :func:`judge` decides about the next provider call.
Verdict = Literal["ok", "warn", "exceeded"]


class Budget(BaseModel):
    """A limit in tokens and/or micro-dollars, and the fraction at which to warn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int | None = Field(default=None, ge=1, le=_MAX_LIMIT, description="token limit")
    cost_micros: int | None = Field(
        default=None, ge=1, le=_MAX_LIMIT, description="money limit in micro-dollars ($1 = 10^6)"
    )
    warn_at: float = Field(
        default=0.8, gt=0, le=1, description="warn when the projected spend reaches this fraction"
    )

    @field_validator("warn_at")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("warn_at must be a finite fraction in (0, 1]")
        return v

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.tokens is None and self.cost_micros is None:
            raise ValueError("a budget needs tokens, cost_micros, or both")
        return self


class BudgetPolicy(BaseModel):
    """The worker's budgets (``ASM_BUDGETS``, JSON): see the module docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session: Budget | None = Field(default=None, description="every session without its own")
    agents: dict[_Key, Budget] = Field(default_factory=dict, max_length=_MAX_KEYS)
    tenants: dict[_Key, Budget] = Field(default_factory=dict, max_length=_MAX_KEYS)

    def agent(self, agent_id: str) -> Budget | None:
        """The daily budget of ``agent_id`` (its own, else ``"*"``'s)."""
        return self.agents.get(agent_id) or self.agents.get("*")

    def tenant(self, tenant: str | None) -> Budget | None:
        """The daily budget of ``tenant`` (its own, else ``"*"``'s); none without a tenant."""
        if tenant is None:
            return None
        return self.tenants.get(tenant) or self.tenants.get("*")


class Spend(BaseModel):
    """Tokens and micro-dollars spent (or projected)."""

    model_config = ConfigDict(frozen=True)

    tokens: int = Field(default=0, ge=0)
    cost_micros: int = Field(default=0, ge=0)

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            tokens=self.tokens + other.tokens, cost_micros=self.cost_micros + other.cost_micros
        )


def judge(limit: Budget, spent: Spend, next_call: Spend) -> Verdict:
    """Whether a call projected to cost ``next_call`` may go, given ``spent`` so far.

    ``exceeded`` when the limit is already reached or ``spent + next_call`` would pass it;
    ``warn`` when that projection reaches ``warn_at`` of a limit; else ``ok``.
    """
    projected = spent + next_call
    verdict: Verdict = "ok"
    for cap, used, would in (
        (limit.tokens, spent.tokens, projected.tokens),
        (limit.cost_micros, spent.cost_micros, projected.cost_micros),
    ):
        if cap is None:
            continue
        if used >= cap or would > cap:
            return "exceeded"
        if would >= limit.warn_at * cap:
            verdict = "warn"
    return verdict


def tenant_of(tags: list[str]) -> str | None:
    """The session's tenant: its first ``tenant:<name>`` tag, or ``None``."""
    for tag in tags:
        if tag.startswith(TENANT_TAG_PREFIX) and len(tag) > len(TENANT_TAG_PREFIX):
            return tag[len(TENANT_TAG_PREFIX) :]
    return None


def exceeded(scope: Scope, key: str, limit: Budget, spent: Spend, next_call: Spend) -> AsmError:
    """``budget_exceeded`` saying which budget, what was spent, and what to do."""
    window = "in total" if scope == "session" else "today (UTC)"
    return error(
        "budget_exceeded",
        f"the {scope} budget of {key!r} is spent {window}: {spent.tokens} tokens / "
        f"{spent.cost_micros} micro-dollars used, the next call is projected at "
        f"{next_call.tokens} tokens / {next_call.cost_micros} micro-dollars, limit "
        f"{limit.tokens} tokens / {limit.cost_micros} micro-dollars; raise the budget "
        "(SessionSpec.budget or ASM_BUDGETS) or wait for the next day",
        details={
            "scope": scope,
            "key": key,
            "limit": limit.model_dump(),
            "spent": spent.model_dump(),
            "projected_call": next_call.model_dump(),
        },
        retryable=False,
    )


def parse_budgets(text: str | None, origin: str) -> BudgetPolicy:
    """A budget policy from JSON ``text`` (blank: none); ``validation_error`` naming ``origin``
    otherwise."""
    return parse_config(
        BudgetPolicy,
        text,
        origin,
        expected='JSON like {"session": {"tokens": 100000}, "agents": {"*": {"cost_micros": '
        '5000000}}, "tenants": {"acme": {"tokens": 1000000, "warn_at": 0.9}}}',
    )


__all__ = [
    "TENANT_TAG_PREFIX",
    "Budget",
    "BudgetPolicy",
    "Scope",
    "Spend",
    "Verdict",
    "exceeded",
    "judge",
    "parse_budgets",
    "tenant_of",
]
