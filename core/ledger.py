"""The cost ledger's shapes: one entry per provider attempt, and totals grouped for reading.

Every attempt a provider was actually called for gets one entry when it ends — completed,
failed, cancelled — with the tokens the stream had reported by then (a provider bills a failed
attempt's tokens too) and its cost at the price table's version of the day
(:mod:`core.prices`). When a later attempt of the run completes, the failed ones before it are
marked ``superseded``. A run with tools calls its model once per loop step (``step``, 1-based),
and each call has its own attempts 1..n, so entries are keyed by ``(run_id, step, attempt)``: a
replayed or retried write is a no-op, and a later step's row is never mistaken for an earlier
one's. Step 0 is the summary a run asked for before its first call (the ``summarize`` context
policy, :mod:`activities.history`). The credential is its alias (the environment variable's
name), never its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_session_manager.core.usage import TokenUsage

#: How an attempt ended, as the ledger says it.
Outcome = Literal["completed", "failed", "cancelled", "superseded"]
#: How ``asm usage`` and :meth:`store.EventStore.usage_totals` group entries.
UsageGroup = Literal["run", "session", "agent", "tenant", "day", "model"]
#: Every usage group, in display order.
USAGE_GROUPS: tuple[UsageGroup, ...] = ("run", "session", "agent", "tenant", "day", "model")


class LedgerEntry(BaseModel):
    """One provider attempt, as billed."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    step: int = Field(
        default=1,
        ge=0,
        description="the agent loop's model call, 1-based; 0: the run's conversation summary",
    )
    attempt: int = Field(ge=1)
    session_id: str
    agent_id: str
    tenant: str | None = None
    provider: str
    model: str | None = None
    credential: str | None = Field(default=None, description="the secret's name, never its value")
    usage: TokenUsage = Field(default_factory=TokenUsage)
    thinking_tokens: int | None = Field(
        default=None, ge=0, description="reasoning tokens, where reported (inside output)"
    )
    cost_micros: int | None = Field(default=None, description="None: no price for the model")
    price_version: str | None = None
    outcome: Outcome
    error_code: str | None = None
    day: str = Field(description="the UTC day the attempt ended, YYYY-MM-DD")
    created_at: datetime | None = None


class UsageTotal(BaseModel):
    """The ledger summed over one group (``key`` is the group's value: a run id, a day …)."""

    group: UsageGroup
    key: str | None
    attempts: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    thinking_tokens: int = 0
    cost_micros: int = 0
    unpriced_attempts: int = Field(default=0, description="attempts of models with no price")


__all__ = ["USAGE_GROUPS", "LedgerEntry", "Outcome", "UsageGroup", "UsageTotal"]
