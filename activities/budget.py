"""The budget check the provider activity makes before every provider call.

Which budgets apply to a run, what the ledger says they have spent, and the decision
(:func:`core.budget.judge`): a call that would pass one fails the attempt with
``budget_exceeded`` (final: the run fails, nothing is sent to the provider); one that
reaches a budget's ``warn_at`` records a warning first. Without any budget the check reads
nothing. The reads ride out a store outage like every other store call of the attempt.

The warning is a ``token_usage_updated`` event whose data is ``{"budget": {...}}`` (scope,
key, limit, spent, projected call): a usage signal, not a failure — ``error_occurred`` would
tell clients that the attempt failed, and a new event type would change the closed list of
25 that every consumer knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_session_manager.activities.sink import StoreSink
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.budget import Budget, BudgetPolicy, Scope, Spend, exceeded, judge
from agent_session_manager.core.contract import RunSpec
from agent_session_manager.core.events import EventType
from agent_session_manager.store import EventStore


@dataclass
class Budgets:
    """The worker's budget policy and the store its spend is read from."""

    store: EventStore
    policy: BudgetPolicy = field(default_factory=BudgetPolicy)

    def applying(self, spec: RunSpec) -> list[tuple[Scope, str, Budget, dict[str, Any]]]:
        """The budgets over ``spec``'s call: scope, key, limit and the ledger filter."""
        day = datetime.now(UTC).date().isoformat()
        found: list[tuple[Scope, str, Budget, dict[str, Any]]] = []
        if (own := spec.budget or self.policy.session) is not None:
            found.append(("session", spec.session_id, own, {"session_id": spec.session_id}))
        if (agent := self.policy.agent(spec.agent_id)) is not None:
            found.append(("agent", spec.agent_id, agent, {"agent_id": spec.agent_id, "day": day}))
        if spec.tenant is not None and (tenant := self.policy.tenant(spec.tenant)) is not None:
            found.append(("tenant", spec.tenant, tenant, {"tenant": spec.tenant, "day": day}))
        return found

    async def check(self, spec: RunSpec, sink: StoreSink, outage: StoreOutage) -> None:
        """Raise ``budget_exceeded`` if the next call would pass a budget; warn near one."""
        budgets = self.applying(spec)
        if not budgets:
            return
        next_call = await outage.outlast(
            lambda: self.store.last_call(spec.session_id), "reading the session's last call"
        )
        warnings: list[dict[str, Any]] = []
        for scope, key, limit, filters in budgets:
            spent: Spend = await outage.outlast(
                lambda f=filters: self.store.spend(**f),  # type: ignore[misc]
                f"reading the {scope} budget's spend",
            )
            verdict = judge(limit, spent, next_call)
            if verdict == "exceeded":
                raise exceeded(scope, key, limit, spent, next_call)
            if verdict == "warn":
                warnings.append(
                    {
                        "scope": scope,
                        "key": key,
                        "limit": limit.model_dump(),
                        "spent": spent.model_dump(),
                        "projected_call": next_call.model_dump(),
                    }
                )
        for warning in warnings:
            await sink.emit(EventType.TOKEN_USAGE_UPDATED, {"budget": warning})


__all__ = ["Budgets"]
